#include "agent/tunnel_server.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "agent/agent.hpp"
#include "agent/pty/pty_sessions.hpp"
#include "agent/ssh/ssh_server.hpp"
#include "common/net/stream_bridge.hpp"
#include "common/util/log.hpp"

namespace airlock::agent {

using net::IncomingStream;
using net::PeerLink;
using net::StreamHandler;
using stream::StreamId;

struct TunnelServer::Client {
  crypto::Key key{};
  Identity identity;        // from the relay's announcement until hello, then from the token
  bool hello_done = false;
  std::unique_ptr<net::Timer> forget_timer;
  std::vector<IncomingStream> held;  // logins waiting for the startup script (login gate)
  uint64_t counted_in = 0, counted_out = 0;  // bytes already added to the agent's stats
};

namespace {

constexpr auto kForgetAfter = std::chrono::minutes(2);  // a peer gone this long loses its streams
constexpr uint32_t kResetNotAllowed = stream::kResetServiceBase + 1;
constexpr uint32_t kResetUnavailable = stream::kResetServiceBase + 2;

std::string key_text(const crypto::Key& k) { return crypto::key_to_base64(k); }

// Writes a buffer into a stream as credit allows, then half-closes it (unless told to stay open).
class BufferWriter final : public StreamHandler {
 public:
  BufferWriter(PeerLink& link, bool finish_when_done) : link_(link), finish_(finish_when_done) {}
  void start(StreamId id) {
    id_ = id;
    flush();
  }
  void append(std::string_view text) {
    if (closed_) return;
    buffer_.insert(buffer_.end(), text.begin(), text.end());
    if (id_) flush();
  }
  void on_data(ByteView data) override { link_.consume(id_, data.size()); }
  void on_writable() override { flush(); }
  void on_closed() override { delete this; }
  std::function<void()> on_close_hook;

 private:
  ~BufferWriter() override {
    if (on_close_hook) on_close_hook();
  }
  void flush() {
    while (offset_ < buffer_.size()) {
      size_t n = link_.write(id_, ByteView(buffer_.data() + offset_, buffer_.size() - offset_));
      if (n == 0) return;
      offset_ += n;
    }
    buffer_.clear();
    offset_ = 0;
    if (finish_ && !finished_) {
      finished_ = true;
      link_.finish(id_);
    }
  }
  PeerLink& link_;
  StreamId id_ = 0;
  bool finish_;
  bool finished_ = false;
  bool closed_ = false;
  Bytes buffer_;
  size_t offset_ = 0;
};

// `ping`: every byte comes back. Credit is returned only for bytes echoed, so a client that does
// not read its echoes stops itself rather than growing our buffer.
class Echo final : public StreamHandler {
 public:
  explicit Echo(PeerLink& link) : link_(link) {}
  StreamId id = 0;
  void on_data(ByteView data) override {
    pending_.insert(pending_.end(), data.begin(), data.end());
    flush();
  }
  void on_writable() override { flush(); }
  void on_finished() override {
    peer_done_ = true;
    flush();
  }
  void on_closed() override { delete this; }

 private:
  void flush() {
    size_t n = pending_.empty() ? 0 : link_.write(id, pending_);
    if (n) {
      pending_.erase(pending_.begin(), pending_.begin() + static_cast<long>(n));
      link_.consume(id, n);
    }
    if (peer_done_ && pending_.empty() && !finished_) {
      finished_ = true;
      link_.finish(id);
    }
  }
  PeerLink& link_;
  Bytes pending_;
  bool peer_done_ = false, finished_ = false;
};

// `speedtest` download: fills the stream with bulk bytes for the duration, then half-closes.
class SpeedSource final : public StreamHandler {
 public:
  SpeedSource(PeerLink& link, std::chrono::milliseconds duration)
      : link_(link), end_(std::chrono::steady_clock::now() + duration), chunk_(16 * 1024, 0x5a) {}
  StreamId id = 0;
  void start() { on_writable(); }
  void on_data(ByteView data) override { link_.consume(id, data.size()); }
  void on_writable() override {
    if (done_) return;
    for (int i = 0; i < 64; ++i) {
      if (std::chrono::steady_clock::now() >= end_) {
        done_ = true;
        link_.finish(id);
        return;
      }
      if (link_.write(id, chunk_) < chunk_.size()) return;  // out of credit: wait for on_writable
    }
    // Still writable after a burst: come back on the next loop turn instead of hogging it.
    link_.schedule_writable(id);
  }
  void on_closed() override { delete this; }

 private:
  PeerLink& link_;
  std::chrono::steady_clock::time_point end_;
  Bytes chunk_;
  bool done_ = false;
};

// `speedtest` upload: swallows bytes; at the client's EOF answers {"bytes", "seconds"}.
class SpeedSink final : public StreamHandler {
 public:
  explicit SpeedSink(PeerLink& link) : link_(link), start_(std::chrono::steady_clock::now()) {}
  StreamId id = 0;
  void on_data(ByteView data) override {
    bytes_ += data.size();
    link_.consume(id, data.size());
  }
  void on_finished() override {
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    // A few dozen bytes: always within the stream's initial credit.
    std::string reply = nlohmann::json{{"bytes", bytes_}, {"seconds", seconds}}.dump();
    link_.write(id, as_bytes(reply));
    link_.finish(id);
  }
  void on_closed() override { delete this; }

 private:
  PeerLink& link_;
  std::chrono::steady_clock::time_point start_;
  uint64_t bytes_ = 0;
};

Result<crypto::SecretKey> load_or_create_key(const std::string& path) {
  std::ifstream in(path);
  if (in) {
    std::string line;
    std::getline(in, line);
    auto key = crypto::key_from_base64(line);
    if (!key) return make_error(path + ": " + key.error().message + " (delete it to make a new tunnel key)");
    return crypto::SecretKey(*key);
  }
  crypto::SecretKey key = crypto::x25519_generate();
  std::string text = crypto::key_to_base64(key) + "\n";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return make_error("cannot create " + path + ": " + std::strerror(errno));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  crypto::wipe(text.data(), text.size());
  if (!ok) return make_error("cannot write " + path);
  return key;
}

}  // namespace

TunnelServer::TunnelServer(uv_loop_t* loop, Agent& agent) : loop_(loop), agent_(agent) {}

TunnelServer::~TunnelServer() { stop(); }

const crypto::Key& TunnelServer::public_key() const { return node_->public_key(); }

Status TunnelServer::start() {
  const auto& settings = agent_.settings();
  auto issuer = crypto::key_from_base64(settings.issuer_public_key);
  if (!issuer) return make_error("issuer public key: " + issuer.error().message);
  issuer_public_ = *issuer;
  auto claims = token::verify(settings.token, issuer_public_, std::time(nullptr));
  if (!claims) return make_error("the agent's token: " + claims.error().message);
  if (claims->role != token::Role::agent)
    return make_error("the agent's token has role " + std::string(token::role_name(claims->role)) +
                      ": mint one with --role agent --workspace NAME --workspace-id ID --owner USER");
  agent_claims_ = *claims;

  auto key = load_or_create_key(settings.state_dir + "/tunnel.key");
  if (!key) return key.error();

  net::RelayClient::Options o;
  o.url = settings.relay_url;
  o.token = settings.token;
  o.private_key = *key;
  o.ca_file = settings.ca_file;
  o.meta = {{"program", "airlock-agent"}};
  node_ = std::make_unique<net::TunnelNode>(loop_, std::move(o));
  node_->on_control = [this](const nlohmann::json& m) { on_control(m); };
  node_->on_relay_state = [this](net::LinkState state, std::string_view reason) {
    bool up = state == net::LinkState::connected;
    agent_.set_connected(up);
    if (up) push_status();
    if (up) LOG_INFO("agent", "connected to relay %s as workspace %s", agent_.settings().relay_url.c_str(),
                     agent_claims_.workspace_name.c_str());
    else LOG_WARN("agent", "relay link down (%.*s); reconnecting", static_cast<int>(reason.size()), reason.data());
  };
  node_->on_peer_gone = [this](const crypto::Key& key, std::string_view) { forget_later(key); };
  node_->on_peer_present = [this](const crypto::Key& key) {
    if (auto it = clients_.find(key); it != clients_.end()) it->second->forget_timer.reset();
  };

  // The shells both services fork are claimed in the agent's child registry, so its SIGCHLD
  // reaper leaves their exit status to the service.
  auto claim_child = [this](int pid) -> std::shared_ptr<void> {
    return std::make_shared<ChildRegistry::Registration>(agent_.children().claim(pid));
  };
  ssh::SshConfig sc;
  sc.host_key_path = settings.state_dir + "/ssh_host_ed25519_key";
  sc.env = agent_.manifest().env;
  sc.directory = agent_.manifest().directory;
  sc.policy = agent_.manifest().policy;
  sc.audit = [this](const Identity& who, AuditNote note) { audit(who, std::move(note)); };
  sc.claim_child = claim_child;
  auto ssh = ssh::SshServer::create(loop_, std::move(sc));
  if (!ssh) return make_error("ssh service: " + ssh.error().message);
  ssh_ = std::move(*ssh);

  pty::PtyConfig pc;
  pc.env = agent_.manifest().env;
  pc.directory = agent_.manifest().directory;
  pc.audit = [this](const Identity& who, AuditNote note) { audit(who, std::move(note)); };
  pc.claim_child = claim_child;
  pty_ = std::make_unique<pty::PtySessions>(loop_, std::move(pc));

  // The relay serves the status document to the control plane (GET /api/v2/workspaces/NAME):
  // every change goes out at once, at most one push per kStatusPushSpacing.
  push_timer_ = std::make_unique<net::Timer>(loop_);
  // Traffic and latency per peer feed the status document's stats once a second.
  stats_timer_ = std::make_unique<net::Timer>(loop_);
  stats_timer_->start(std::chrono::seconds(1), [this] { collect_stats(); }, std::chrono::seconds(1));
  status_subscription_ = agent_.subscribe([this](StatusChange) { schedule_status_push(); });
  return node_->start();
}

void TunnelServer::collect_stats() {
  for (auto& [key, client] : clients_) {
    net::PeerLink* link = node_->find_peer(key);
    if (!link) continue;
    uint64_t in = link->bytes_in(), out = link->bytes_out();
    if (in > client->counted_in) agent_.add_bytes_in(in - client->counted_in);
    if (out > client->counted_out) agent_.add_bytes_out(out - client->counted_out);
    client->counted_in = in;
    client->counted_out = out;
    auto srtt = link->session_stats().srtt;
    if (srtt.count() > 0)
      agent_.set_peer_latency(crypto::key_to_base64(key), std::chrono::duration_cast<std::chrono::microseconds>(srtt));
  }
}

void TunnelServer::schedule_status_push() {
  if (!push_timer_ || push_timer_->active()) return;
  auto since = std::chrono::steady_clock::now() - last_push_;
  if (since >= kStatusPushSpacing) {
    push_status();
    return;
  }
  push_timer_->start(std::chrono::duration_cast<std::chrono::milliseconds>(kStatusPushSpacing - since) +
                         std::chrono::milliseconds(1),
                     [this] { push_status(); });
}

void TunnelServer::push_status() {
  if (!node_ || !node_->relay().connected()) return;
  last_push_ = std::chrono::steady_clock::now();
  nlohmann::json doc = agent_.status_document();
  // A control message holds 16 KiB: a workspace with very many listening ports is cut short.
  std::string text = doc.dump();
  if (text.size() > relay::kMaxControlSize - 256 && doc.contains("listening_ports")) {
    auto& ports = doc["listening_ports"];
    size_t total = ports.size();
    while (!ports.empty() && doc.dump().size() > relay::kMaxControlSize - 256) ports.erase(ports.size() - 1);
    doc["listening_ports_truncated_from"] = total;
  }
  if (auto s = node_->relay().send_control({{"type", "status"}, {"status", doc}}); !s)
    LOG_DEBUG("agent", "status not pushed to the relay: %s", s.error().message.c_str());
}

void TunnelServer::stop() {
  status_subscription_ = {};
  push_timer_.reset();
  stats_timer_.reset();
  if (node_) node_->stop("agent stopping");
  clients_.clear();
}

void TunnelServer::audit(const Identity& who, AuditNote note) {
  LOG_INFO("audit", "%s user=%s source=%s session=%s %s", note.event_type.c_str(), who.user_id.c_str(),
           who.source_ip.c_str(), note.session_id.c_str(), note.details.dump().c_str());
}

void TunnelServer::on_control(const nlohmann::json& m) {
  if (m.value("type", "") != "peer_incoming") return;
  auto key = crypto::key_from_base64(m.value("peer_key", ""));
  if (!key) {
    LOG_WARN("agent", "relay announced a peer with a bad key: %s", m.dump().c_str());
    return;
  }
  auto& slot = clients_[*key];
  if (!slot) {
    slot = std::make_unique<Client>();
    slot->key = *key;
  }
  Client& c = *slot;
  c.forget_timer.reset();
  const auto& user = m.contains("user") && m["user"].is_object() ? m["user"] : nlohmann::json::object();
  if (!c.hello_done) {
    c.identity.user_id = user.value("sub", "");
    c.identity.user_email = user.value("email", "");
    c.identity.role = user.value("role", "");
  }
  std::string source = m.value("source", "");
  c.identity.source_ip = source.substr(0, source.rfind(':'));
  c.identity.peer_key = key_text(*key);
  LOG_INFO("agent", "peer %s incoming for %s from %s", log::short_key(c.identity.peer_key).c_str(),
           c.identity.user_id.c_str(), source.c_str());
  PeerLink& link = node_->add_peer(*key, stream::Role::responder);
  link.on_open = [this, &c](IncomingStream in) { on_open(c, std::move(in)); };
  link.on_broken = [this, k = *key](std::string_view reason) {
    LOG_WARN("agent", "dropping peer %s: %.*s", log::short_key(key_text(k)).c_str(), static_cast<int>(reason.size()),
             reason.data());
    // Not from inside the link's own callback: the node removes it on the next loop turn.
    forget_later(k);
  };
}

void TunnelServer::forget_later(const crypto::Key& key) {
  auto it = clients_.find(key);
  if (it == clients_.end()) return;
  auto& timer = it->second->forget_timer;
  if (!timer) timer = std::make_unique<net::Timer>(loop_);
  timer->start(std::chrono::duration_cast<std::chrono::milliseconds>(kForgetAfter), [this, key] {
    LOG_INFO("agent", "forgetting peer %s", log::short_key(key_text(key)).c_str());
    node_->remove_peer(key, "peer gone");
    agent_.forget_peer(key_text(key));
    clients_.erase(key);
  });
}

void TunnelServer::on_open(Client& c, IncomingStream in) {
  PeerLink* link = node_->find_peer(c.key);
  if (!link) return;
  if (in.service == "hello") return serve_hello(c, in);
  if (!c.hello_done) {
    link->refuse(in.id, kResetNotAllowed, "say hello first: the first stream must present your token");
    return;
  }
  const auto& policy = agent_.manifest().policy;
  if (in.service == "ping") {
    auto* e = new Echo(*link);
    e->id = in.id;
    link->accept(in.id, e);
  } else if (in.service == "tcp") {
    if (!policy.tcp) return link->refuse(in.id, kResetNotAllowed, "port-forwarding is disabled in this workspace by policy");
    serve_tcp(c, in);
  } else if (in.service == "ssh" || in.service == "pty") {
    if (in.service == "ssh" && !policy.ssh)
      return link->refuse(in.id, kResetNotAllowed, "ssh is disabled in this workspace by policy");
    if (in.service == "pty" && !policy.pty)
      return link->refuse(in.id, kResetNotAllowed, "terminals are disabled in this workspace by policy");
    LoginGate gate = agent_.login_gate();
    if (gate.wait) {
      LOG_INFO("agent", "holding a %s login until the startup script finishes", in.service.c_str());
      c.held.push_back(std::move(in));
      if (c.held.size() == 1) {
        auto sub = std::make_shared<Agent::Subscription>();
        *sub = agent_.subscribe([this, &c, sub](StatusChange change) {
          if (change != StatusChange::lifecycle || agent_.login_gate().wait) return;
          auto held = std::move(c.held);
          c.held.clear();
          for (auto& h : held) serve_socket_service(c, h);
          sub->reset();
        });
      }
      return;
    }
    serve_socket_service(c, in);
  } else if (in.service == "status") {
    serve_status(c, in);
  } else if (in.service == "logs") {
    serve_logs(c, in);
  } else if (in.service == "speedtest") {
    serve_speedtest(c, in);
  } else {
    link->refuse(in.id, stream::kResetRefused, "no service named \"" + in.service + "\" on this agent");
  }
}

void TunnelServer::serve_hello(Client& c, IncomingStream& in) {
  PeerLink& link = *node_->find_peer(c.key);
  if (c.hello_done) return link.refuse(in.id, kResetNotAllowed, "hello was already said on this tunnel");
  std::string token_text = in.args.is_object() ? in.args.value("token", "") : "";
  auto claims = token::verify(token_text, issuer_public_, std::time(nullptr));
  std::string refusal;
  if (!claims) {
    refusal = claims.error().message;
  } else if (claims->role == token::Role::owner) {
    // owners reach every workspace
  } else if (claims->role == token::Role::member) {
    if (claims->sub != agent_claims_.owner)
      refusal = "member " + claims->sub + " may not reach " + agent_claims_.owner + "'s workspace " +
                agent_claims_.workspace_name;
  } else {
    refusal = "role " + std::string(token::role_name(claims->role)) + " may not reach workspaces";
  }
  if (refusal.empty() && !c.identity.user_id.empty() && claims->sub != c.identity.user_id)
    refusal = "the token names " + claims->sub + " but the relay announced " + c.identity.user_id;
  if (!refusal.empty()) {
    LOG_WARN("agent", "refused hello from %s: %s", log::short_key(c.identity.peer_key).c_str(), refusal.c_str());
    audit(c.identity, {"connect_refused", "", {{"reason", refusal}}});
    return link.refuse(in.id, kResetNotAllowed, refusal);
  }
  c.hello_done = true;
  c.identity.user_id = claims->sub;
  c.identity.user_email = claims->email;
  c.identity.role = std::string(token::role_name(claims->role));
  audit(c.identity, {"connect", "", {{"workspace", agent_claims_.workspace_name}}});
  auto* w = new BufferWriter(link, true);
  link.accept(in.id, w);
  w->append(nlohmann::json{{"workspace",
                            {{"id", agent_claims_.workspace_id},
                             {"name", agent_claims_.workspace_name},
                             {"owner", agent_claims_.owner}}},
                           {"user", c.identity.user_id},
                           {"agent", "airlock-agent"}}
                .dump());
  w->start(in.id);
}

void TunnelServer::serve_tcp(Client& c, IncomingStream& in) {
  PeerLink& link = *node_->find_peer(c.key);
  int port = in.args.is_object() && in.args.contains("port") && in.args["port"].is_number_integer()
                 ? in.args["port"].get<int>()
                 : 0;
  if (port < 1 || port > 65535) return link.refuse(in.id, stream::kResetMalformedOpen, "tcp needs {\"port\": 1-65535}");
  if (!agent_.manifest().policy.ports.permits(static_cast<uint16_t>(port)))
    return link.refuse(in.id, kResetNotAllowed,
                       "port " + std::to_string(port) + " is not allowed by this workspace's port policy");

  struct Connect {
    uv_connect_t req;
    uv_tcp_t* tcp;
    TunnelServer* self;
    crypto::Key peer;
    StreamId id;
    int port;
    Identity who;
  };
  auto* tcp = new uv_tcp_t;
  uv_tcp_init(loop_, tcp);
  auto* conn = new Connect{{}, tcp, this, c.key, in.id, port, c.identity};
  conn->req.data = conn;
  sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  int rc = uv_tcp_connect(&conn->req, tcp, reinterpret_cast<sockaddr*>(&addr), [](uv_connect_t* req, int status) {
    auto* conn = static_cast<Connect*>(req->data);
    std::unique_ptr<Connect> owner(conn);
    PeerLink* link = conn->self->node_->find_peer(conn->peer);
    if (status != 0 || !link) {
      uv_close(reinterpret_cast<uv_handle_t*>(conn->tcp), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
      if (link)
        link->refuse(conn->id, kResetUnavailable,
                     "cannot connect to 127.0.0.1:" + std::to_string(conn->port) + " in the workspace: " +
                         uv_strerror(status));
      return;
    }
    uv_tcp_nodelay(conn->tcp, 1);
    Agent& agent = conn->self->agent_;
    agent.session_opened("tcp");
    auto* bridge = new net::StreamBridge(*link, reinterpret_cast<uv_stream_t*>(conn->tcp),
                                         reinterpret_cast<uv_stream_t*>(conn->tcp),
                                         [&agent](const std::string&) { agent.session_closed("tcp"); });
    link->accept(conn->id, bridge);
    bridge->start(conn->id);
  });
  if (rc != 0) {
    delete conn;
    uv_close(reinterpret_cast<uv_handle_t*>(tcp), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    link.refuse(in.id, kResetUnavailable, std::string("cannot connect: ") + uv_strerror(rc));
  }
}

void TunnelServer::serve_socket_service(Client& c, IncomingStream& in) {
  PeerLink* link = node_->find_peer(c.key);
  if (!link) return;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
    return link->refuse(in.id, kResetUnavailable, std::string("socketpair: ") + std::strerror(errno));
  std::string error;
  uv_stream_t* ours = net::StreamBridge::wrap_fd(loop_, sv[0], &error);
  if (!ours) {
    ::close(sv[0]);
    ::close(sv[1]);
    return link->refuse(in.id, kResetUnavailable, "cannot bridge the stream: " + error);
  }
  // The service takes sv[1] whatever happens; on failure it has closed it and our side sees EOF.
  Status served = in.service == "ssh" ? ssh_->serve(sv[1], c.identity) : pty_->attach(sv[1], in.args, c.identity);
  if (!served) LOG_WARN("agent", "%s for %s: %s", in.service.c_str(), c.identity.user_id.c_str(),
                        served.error().message.c_str());
  std::string type = in.service;
  agent_.session_opened(type);
  auto* bridge = new net::StreamBridge(*link, ours, ours, [this, type](const std::string&) { agent_.session_closed(type); });
  link->accept(in.id, bridge);
  bridge->start(in.id);
}

void TunnelServer::serve_status(Client& c, IncomingStream& in) {
  PeerLink& link = *node_->find_peer(c.key);
  auto* w = new BufferWriter(link, true);
  link.accept(in.id, w);
  w->append(agent_.status_document().dump(2) + "\n");
  w->start(in.id);
}

void TunnelServer::serve_logs(Client& c, IncomingStream& in) {
  PeerLink& link = *node_->find_peer(c.key);
  bool follow = in.args.is_object() && in.args.value("follow", false);
  auto* w = new BufferWriter(link, !follow);
  link.accept(in.id, w);
  std::string text;
  for (auto kind : {ScriptKind::startup, ScriptKind::shutdown})
    for (const auto& line : agent_.script_log(kind, 10000))
      text += std::string(script_kind_name(kind)) + ": " + line + "\n";
  w->append(text);
  if (follow) {
    auto sub = std::make_shared<Agent::Subscription>(agent_.subscribe_output([w](ScriptKind kind, std::string_view line) {
      w->append(std::string(script_kind_name(kind)) + ": " + std::string(line) + "\n");
    }));
    w->on_close_hook = [sub] { sub->reset(); };
  }
  w->start(in.id);
}

void TunnelServer::serve_speedtest(Client& c, IncomingStream& in) {
  PeerLink& link = *node_->find_peer(c.key);
  std::string direction = in.args.is_object() ? in.args.value("direction", "down") : "down";
  int64_t ms = in.args.is_object() ? in.args.value("duration_ms", 5000) : 5000;
  if (ms < 100 || ms > 60000) return link.refuse(in.id, stream::kResetMalformedOpen, "duration_ms must be 100-60000");
  if (direction == "down") {
    auto* s = new SpeedSource(link, std::chrono::milliseconds(ms));
    s->id = in.id;
    link.accept(in.id, s);
    s->start();
  } else if (direction == "up") {
    auto* s = new SpeedSink(link);
    s->id = in.id;
    link.accept(in.id, s);
  } else {
    link.refuse(in.id, stream::kResetMalformedOpen, "direction must be \"up\" or \"down\"");
  }
}

}  // namespace airlock::agent
