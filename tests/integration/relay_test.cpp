// The real airlock-relay binary on loopback (--dev), driven by RelayClients and by a raw
// WebSocket client built on the frame codec (for the frames a well-behaved client never sends).
// Every case runs over ws:// and over wss:// (the --dev certificate, verified).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/net/relay_client.hpp"
#include "common/net/uv.hpp"
#include "common/relay/handshake.hpp"
#include "common/relay/protocol.hpp"
#include "common/token/token.hpp"
#include "tests/support/loopback.hpp"
#include "tests/support/process.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define AIRLOCK_LEAK_CHECK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AIRLOCK_LEAK_CHECK 1
#endif
#endif
#if defined(AIRLOCK_LEAK_CHECK)
#include <sanitizer/lsan_interface.h>
#endif

using namespace airlock;
using namespace std::chrono_literals;
using nlohmann::json;
using relay::PeerKey;

namespace {

constexpr auto kStartTimeout = 20s;

std::string relay_binary() { return AIRLOCK_BINARY_DIR "/relay/airlock-relay"; }

std::string make_temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "airlock-relay-test-XXXXXX").string();
  REQUIRE(mkdtemp(tmpl.data()) != nullptr);
  return tmpl;
}

int64_t now_unix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// ---- the relay process ------------------------------------------------------------------------

struct RelayProcess {
  std::string state_dir;
  bool own_dir = false;
  int port = 0;
  std::string owner_token;
  std::string agent_token;
  std::unique_ptr<test::Process> proc;

  ~RelayProcess() {
    proc.reset();
    if (own_dir) std::filesystem::remove_all(state_dir);
  }

  std::string url(bool tls) const { return std::string(tls ? "wss" : "ws") + "://127.0.0.1:" + std::to_string(port) + "/"; }
  std::string cert() const { return state_dir + "/tls-cert.pem"; }

  token::IssuerKey issuer() const {
    auto k = token::load_issuer_key(state_dir + "/issuer.key");
    REQUIRE_MESSAGE(k.ok(), k.error().message);
    return *k;
  }

  std::string mint(const std::string& sub, token::Role role, int64_t ttl = 3600, int64_t issued_ago = 0) const {
    token::Claims c;
    c.sub = sub;
    c.email = sub + "@example.com";
    c.role = role;
    c.iat = now_unix() - issued_ago;
    c.exp = c.iat + ttl;
    return token::mint(issuer(), c);
  }
  std::string mint_agent(const std::string& ws_id, const std::string& name, const std::string& owner) const {
    token::Claims c;
    c.sub = "agent-" + name;
    c.role = token::Role::agent;
    c.workspace_id = ws_id;
    c.workspace_name = name;
    c.owner = owner;
    c.iat = now_unix();
    c.exp = c.iat + 3600;
    return token::mint(issuer(), c);
  }
};

std::unique_ptr<RelayProcess> start_relay(std::vector<std::string> extra = {}, std::string state_dir = "", int port = 0) {
  auto r = std::make_unique<RelayProcess>();
  if (state_dir.empty()) {
    r->state_dir = make_temp_dir();
    r->own_dir = true;
  } else {
    r->state_dir = state_dir;
  }
  std::vector<std::string> args = {"--dev", "--state-dir", r->state_dir, "--listen", "127.0.0.1:" + std::to_string(port)};
  args.insert(args.end(), extra.begin(), extra.end());
  r->proc = test::Process::start(relay_binary(), args);
  REQUIRE(r->proc);
  auto p = r->proc->wait_for_match(R"(listening on 127\.0\.0\.1:(\d+))", kStartTimeout);
  REQUIRE_MESSAGE(p, r->proc->output());
  r->port = std::stoi(*p);
  auto owner = r->proc->wait_for_match(R"(^AIRLOCK_OWNER_TOKEN=(\S+))", 5s);
  auto agent = r->proc->wait_for_match(R"(^AIRLOCK_AGENT_TOKEN=(\S+))", 5s);
  REQUIRE_MESSAGE(owner, r->proc->output());
  REQUIRE_MESSAGE(agent, r->proc->output());
  r->owner_token = *owner;
  r->agent_token = *agent;
  return r;
}

// ---- a RelayClient that records what happens ----------------------------------------------------

struct Received {
  PeerKey src;
  uint8_t flags;
  Bytes bytes;
};

struct TestPeer {
  std::unique_ptr<net::RelayClient> link;
  std::vector<Received> packets;
  std::vector<json> controls;
  std::vector<std::pair<PeerKey, relay::PeerGoneReason>> gone;
  std::vector<std::string> gone_text;
  std::vector<PeerKey> present;
  std::vector<std::pair<net::LinkState, std::string>> states;
  int connects = 0;
  int restarting = 0;
  int writable_events = 0;

  TestPeer(uv_loop_t* loop, const RelayProcess& relay, bool tls, std::string token, const std::string& program) {
    net::RelayClient::Options o;
    o.url = relay.url(tls);
    o.token = std::move(token);
    o.private_key = crypto::x25519_generate();
    o.meta = {{"program", program}, {"version", "test"}};
    if (tls) o.ca_file = relay.cert();
    o.backoff_initial = 100ms;
    o.backoff_max = 1s;
    link = std::make_unique<net::RelayClient>(loop, std::move(o));
    link->on_packet = [this](const PeerKey& src, uint8_t flags, ByteView b) {
      packets.push_back({src, flags, Bytes(b.begin(), b.end())});
    };
    link->on_control = [this](const json& j) { controls.push_back(j); };
    link->on_peer_gone = [this](const PeerKey& k, relay::PeerGoneReason r, std::string_view text) {
      gone.emplace_back(k, r);
      gone_text.emplace_back(text);
    };
    link->on_peer_present = [this](const PeerKey& k) { present.push_back(k); };
    link->on_state = [this](net::LinkState s, std::string_view reason) {
      states.emplace_back(s, std::string(reason));
      if (s == net::LinkState::connected) ++connects;
    };
    link->on_restarting = [this](std::chrono::milliseconds) { ++restarting; };
    link->on_writable = [this] { ++writable_events; };
    REQUIRE(link->start().ok());
  }

  const PeerKey& key() const { return link->public_key(); }
  std::string last_reason() const { return states.empty() ? "" : states.back().second; }

  std::optional<json> control_of_type(const std::string& type) const {
    for (auto& c : controls)
      if (c.value("type", "") == type) return c;
    return std::nullopt;
  }
};

bool wait(uv_loop_t* loop, const std::function<bool()>& cond, std::chrono::milliseconds timeout = 15s) {
  return net::run_until(loop, cond, timeout);
}

PeerKey key_from_b64(const std::string& b64) {
  auto k = crypto::key_from_base64(b64);
  REQUIRE(k.ok());
  return *k;
}

// Dials `workspace` from `client` and waits for the answer.
json dial(uv_loop_t* loop, TestPeer& client, const std::string& workspace, int id) {
  REQUIRE(client.link->send_control({{"type", "dial"}, {"id", id}, {"workspace", workspace}}).ok());
  json answer;
  REQUIRE(wait(loop, [&] {
    for (auto& c : client.controls) {
      if (c.value("id", -1) == id && (c.value("type", "") == "dial_ok" || c.value("type", "") == "dial_error")) {
        answer = c;
        return true;
      }
    }
    return false;
  }));
  return answer;
}

// ---- a raw TCP/TLS connection, and a WebSocket client on it -----------------------------------

class Conn {
 public:
  ~Conn() { close(); }
  bool open(int port, bool tls, const std::string& ca_file) {
    fd_ = test::connect_loopback(port);
    if (fd_ < 0) return false;
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!tls) return true;
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    if (SSL_CTX_load_verify_locations(ctx_, ca_file.c_str(), nullptr) != 1) return false;
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    SSL_set1_host(ssl_, "127.0.0.1");
    SSL_set_tlsext_host_name(ssl_, "localhost");
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), "127.0.0.1");
    return SSL_connect(ssl_) == 1;
  }
  void close() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
    ssl_ = nullptr;
    ctx_ = nullptr;
    fd_ = -1;
  }
  bool write_all(const void* data, size_t n) {
    auto* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
      ssize_t w = ssl_ ? SSL_write(ssl_, p, static_cast<int>(n)) : ::send(fd_, p, n, MSG_NOSIGNAL);
      if (w <= 0) return false;
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }
  // Up to n bytes; 0 on EOF or timeout, -1 on error.
  ssize_t read_some(uint8_t* buf, size_t n, std::chrono::milliseconds timeout) {
    if (!(ssl_ && SSL_pending(ssl_) > 0)) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
        timed_out_ = true;
        return 0;
      }
    }
    timed_out_ = false;
    return ssl_ ? SSL_read(ssl_, buf, static_cast<int>(n)) : ::recv(fd_, buf, n, 0);
  }
  bool timed_out() const { return timed_out_; }

 private:
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  bool timed_out_ = false;
};

struct HttpReply {
  int status = 0;
  std::string body;
};

HttpReply http_get(const RelayProcess& relay, bool tls, const std::string& path, const std::string& auth = "") {
  Conn c;
  REQUIRE(c.open(relay.port, tls, relay.cert()));
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!auth.empty()) req += "Authorization: " + auth + "\r\n";
  req += "\r\n";
  REQUIRE(c.write_all(req.data(), req.size()));
  std::string all;
  uint8_t buf[16384];
  while (true) {
    ssize_t n = c.read_some(buf, sizeof buf, 5s);
    if (n <= 0) break;
    all.append(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
    size_t head = all.find("\r\n\r\n");
    if (head != std::string::npos) {
      std::smatch m;
      std::string headers = all.substr(0, head);
      if (std::regex_search(headers, m, std::regex(R"(content-length: (\d+))", std::regex::icase)) &&
          all.size() >= head + 4 + std::stoul(m[1].str()))
        break;
    }
  }
  HttpReply r;
  if (all.size() > 12) r.status = std::stoi(all.substr(9, 3));
  size_t head = all.find("\r\n\r\n");
  if (head != std::string::npos) r.body = all.substr(head + 4);
  return r;
}

class RawWs {
 public:
  struct Message {
    int opcode = 0;  // 2 binary, 8 close
    Bytes data;
  };

  bool open(const RelayProcess& relay, bool tls) {
    if (!conn_.open(relay.port, tls, relay.cert())) return false;
    std::string req =
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(relay.port) +
        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: airlock-relay.v1\r\n\r\n";
    if (!conn_.write_all(req.data(), req.size())) return false;
    std::string head;
    uint8_t c;
    while (head.find("\r\n\r\n") == std::string::npos) {
      if (conn_.read_some(&c, 1, 5s) != 1) return false;
      head += static_cast<char>(c);
    }
    return head.rfind("HTTP/1.1 101", 0) == 0;
  }

  bool send(ByteView payload, uint8_t opcode = 2, bool fin = true) {
    Bytes f;
    f.push_back(static_cast<uint8_t>((fin ? 0x80 : 0) | opcode));
    if (payload.size() < 126) {
      f.push_back(static_cast<uint8_t>(0x80 | payload.size()));
    } else if (payload.size() < 65536) {
      f.push_back(0x80 | 126);
      f.push_back(static_cast<uint8_t>(payload.size() >> 8));
      f.push_back(static_cast<uint8_t>(payload.size()));
    } else {
      f.push_back(0x80 | 127);
      for (int i = 7; i >= 0; --i) f.push_back(static_cast<uint8_t>(static_cast<uint64_t>(payload.size()) >> (8 * i)));
    }
    uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    f.insert(f.end(), mask, mask + 4);
    for (size_t i = 0; i < payload.size(); ++i) f.push_back(payload[i] ^ mask[i % 4]);
    return conn_.write_all(f.data(), f.size());
  }

  // The next message (binary or close); nullopt on timeout or EOF.
  std::optional<Message> recv(std::chrono::milliseconds timeout = 10s) {
    while (true) {
      if (auto m = parse()) return m;
      uint8_t buf[65536];
      ssize_t n = conn_.read_some(buf, sizeof buf, timeout);
      if (n <= 0) return std::nullopt;
      in_.insert(in_.end(), buf, buf + n);
    }
  }

  // The next relay frame as bytes (skips nothing); nullopt if a close or nothing arrives.
  std::optional<Bytes> recv_frame(std::chrono::milliseconds timeout = 10s) {
    auto m = recv(timeout);
    if (!m || m->opcode != 2) {
      last_close_ = m ? m->data : Bytes();
      return std::nullopt;
    }
    return m->data;
  }

  // Reads until the relay closes: the error frame's text (if one came) and whether it closed.
  struct Closing {
    std::string error_text;
    bool closed = false;
  };
  Closing until_closed(std::chrono::milliseconds timeout = 10s) {
    Closing c;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = recv(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
      if (!m) {
        c.closed = !conn_.timed_out();  // EOF
        return c;
      }
      if (m->opcode == 8) {
        c.closed = true;
        return c;
      }
      auto f = relay::decode(m->data);
      if (f.ok() && relay::frame_type(*f) == relay::FrameType::error)
        c.error_text = std::string(std::get<relay::ErrorFrame>(*f).text);
    }
    return c;
  }

  // The whole handshake with a real key; true once the welcome arrived.
  bool hello(const std::string& token, const crypto::SecretKey& key) {
    auto sh = recv_frame();
    if (!sh) return false;
    auto f = relay::decode(*sh);
    if (!f.ok()) return false;
    auto reply = relay::make_client_hello(std::get<relay::ServerHello>(*f), key, token, "");
    if (!reply.ok() || !send(*reply)) return false;
    auto w = recv_frame();
    if (!w) return false;
    auto wf = relay::decode(*w);
    return wf.ok() && relay::frame_type(*wf) == relay::FrameType::server_welcome;
  }

 private:
  std::optional<Message> parse() {
    while (true) {
      if (in_.size() < 2) return std::nullopt;
      bool fin = in_[0] & 0x80;
      int opcode = in_[0] & 0x0f;
      uint64_t len = in_[1] & 0x7f;
      size_t pos = 2;
      if (len == 126) {
        if (in_.size() < 4) return std::nullopt;
        len = load_be16(&in_[2]);
        pos = 4;
      } else if (len == 127) {
        if (in_.size() < 10) return std::nullopt;
        len = load_be64(&in_[2]);
        pos = 10;
      }
      if (in_.size() < pos + len) return std::nullopt;
      Bytes payload(in_.begin() + static_cast<std::ptrdiff_t>(pos), in_.begin() + static_cast<std::ptrdiff_t>(pos + len));
      in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(pos + len));
      if (opcode == 9 || opcode == 10) continue;  // ping/pong: not relay frames
      if (opcode != 0) partial_opcode_ = opcode;
      partial_.insert(partial_.end(), payload.begin(), payload.end());
      if (!fin) continue;
      Message m{partial_opcode_, std::move(partial_)};
      partial_.clear();
      return m;
    }
  }

  Conn conn_;
  Bytes in_;
  Bytes partial_;
  int partial_opcode_ = 0;
  Bytes last_close_;
};

// An agent for workspace demo and an owner client that has dialed it.
struct DialedPair {
  std::unique_ptr<TestPeer> agent;
  std::unique_ptr<TestPeer> client;
};

DialedPair connect_pair(uv_loop_t* loop, const RelayProcess& relay, bool tls, const std::string& client_token = "") {
  DialedPair p;
  p.agent = std::make_unique<TestPeer>(loop, relay, tls, relay.agent_token, "test-agent");
  p.client = std::make_unique<TestPeer>(loop, relay, tls, client_token.empty() ? relay.owner_token : client_token, "test-cli");
  REQUIRE_MESSAGE(wait(loop, [&] { return p.agent->link->connected() && p.client->link->connected(); }),
                  "agent: " << p.agent->last_reason() << " client: " << p.client->last_reason() << "\n"
                            << relay.proc->output());
  json ok = dial(loop, *p.client, "demo", 1);
  REQUIRE_MESSAGE(ok["type"] == "dial_ok", ok.dump());
  REQUIRE(wait(loop, [&] { return p.agent->control_of_type("peer_incoming").has_value(); }));
  return p;
}

Bytes numbered(uint32_t n, size_t size) {
  Bytes b(size, static_cast<uint8_t>(n));
  store_be32(b.data(), n);
  return b;
}

double metric(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

#define FOR_EACH_TRANSPORT(tls)         \
  bool tls = false;                     \
  SUBCASE("ws://") { tls = false; }     \
  SUBCASE("wss://") { tls = true; }     \
  CAPTURE(tls)

}  // namespace

TEST_CASE("packets flow both ways after a dial, and not before") {
  FOR_EACH_TRANSPORT(tls);
  auto relay = start_relay();
  net::Loop loop;
  TestPeer agent(loop, *relay, tls, relay->agent_token, "test-agent");
  TestPeer client(loop, *relay, tls, relay->owner_token, "test-cli");
  REQUIRE_MESSAGE(wait(loop, [&] { return agent.link->connected() && client.link->connected(); }),
                  agent.last_reason() << " / " << client.last_reason() << "\n" << relay->proc->output());
  CHECK(client.link->observed_address().rfind("127.0.0.1:", 0) == 0);
  CHECK(client.link->welcome_info()["role"] == "owner");
  CHECK(agent.link->welcome_info()["workspace"]["name"] == "demo");

  // Before a dial the relay refuses, visibly.
  Bytes hello{1, 2, 3};
  REQUIRE(client.link->send_packet(agent.key(), 0, hello).ok());
  REQUIRE(wait(loop, [&] { return !client.gone.empty(); }));
  CHECK(client.gone[0].first == agent.key());
  CHECK(client.gone[0].second == relay::PeerGoneReason::not_allowed);
  CHECK(agent.packets.empty());

  json ok = dial(loop, client, "demo", 7);
  REQUIRE_MESSAGE(ok["type"] == "dial_ok", ok.dump());
  CHECK(key_from_b64(ok["agent_key"]) == agent.key());
  CHECK(ok["workspace"] == json{{"id", "ws-demo"}, {"name", "demo"}, {"owner", "admin"}});
  REQUIRE(wait(loop, [&] { return agent.control_of_type("peer_incoming").has_value(); }));
  json incoming = *agent.control_of_type("peer_incoming");
  CHECK(key_from_b64(incoming["peer_key"]) == client.key());
  CHECK(incoming["user"]["sub"] == "admin");
  CHECK(incoming["user"]["role"] == "owner");
  CHECK(incoming["source"].get<std::string>().rfind("127.0.0.1:", 0) == 0);

  Bytes big(relay::kMaxPacketSize, 0x5a);
  REQUIRE(client.link->send_packet(agent.key(), relay::kFlagInteractive, hello).ok());
  REQUIRE(client.link->send_packet(agent.key(), 0, big).ok());
  REQUIRE(agent.link->send_packet(client.key(), 0, Bytes{9, 8, 7}).ok());
  REQUIRE(wait(loop, [&] { return agent.packets.size() == 2 && client.packets.size() == 1; }));
  CHECK(agent.packets[0].src == client.key());
  CHECK(agent.packets[0].flags == relay::kFlagInteractive);
  CHECK(agent.packets[0].bytes == hello);
  CHECK(agent.packets[1].bytes == big);
  CHECK(client.packets[0].src == agent.key());
  CHECK(client.packets[0].bytes == Bytes{9, 8, 7});

  // A packet over the size limit never leaves the client.
  CHECK_FALSE(client.link->send_packet(agent.key(), 0, Bytes(relay::kMaxPacketSize + 1)).ok());
  CHECK_FALSE(client.link->send_packet(agent.key(), 0x02, hello).ok());

  // Ping measures a round trip.
  std::optional<Result<std::chrono::microseconds>> rtt;
  client.link->ping([&](Result<std::chrono::microseconds> r) { rtt = r; });
  REQUIRE(wait(loop, [&] { return rtt.has_value(); }));
  CHECK(rtt->ok());

  // When the agent leaves, the client is told.
  const PeerKey agent_key = agent.key();
  agent.link.reset();
  REQUIRE(wait(loop, [&] {
    for (auto& [k, r] : client.gone)
      if (k == agent_key && r == relay::PeerGoneReason::disconnected) return true;
    return false;
  }));
  // An unknown control message gets an error answer, not a disconnect.
  REQUIRE(client.link->send_control({{"type", "frobnicate"}, {"id", 3}}).ok());
  REQUIRE(wait(loop, [&] { return client.control_of_type("error").has_value(); }));
  CHECK(client.link->connected());
}

TEST_CASE("interactive packets overtake queued bulk") {
  FOR_EACH_TRANSPORT(tls);
  auto relay = start_relay({"--queue-high-bytes", "512KiB", "--queue-low-bytes", "128KiB"});
  net::Loop loop;
  auto pair = connect_pair(loop, *relay, tls);
  TestPeer second(loop, *relay, tls, relay->owner_token, "test-cli-2");
  REQUIRE(wait(loop, [&] { return second.link->connected(); }));
  REQUIRE(dial(loop, second, "demo", 2)["type"] == "dial_ok");

  auto& agent = *pair.agent;
  auto& bulk = *pair.client;
  agent.link->set_receiving(false);
  // Fill every buffer between the bulk sender and the agent until the sender is held back.
  uint32_t sent = 0;
  auto last_progress = std::chrono::steady_clock::now();
  wait(loop, [&] {
    while (bulk.link->writable()) {
      REQUIRE(bulk.link->send_packet(agent.key(), 0, numbered(sent, 16 * 1024)).ok());
      ++sent;
      last_progress = std::chrono::steady_clock::now();
    }
    return std::chrono::steady_clock::now() - last_progress > 1500ms;
  }, 60s);
  REQUIRE(sent > 0);
  Bytes key_press{0xff, 'k'};
  REQUIRE(second.link->send_packet(agent.key(), relay::kFlagInteractive, key_press).ok());
  net::run_for(loop, 300ms);
  agent.link->set_receiving(true);
  wait(loop, [&] { return agent.packets.size() >= sent + 1; }, 60s);
  REQUIRE(agent.packets.size() == sent + 1);
  size_t at = 0;
  while (at < agent.packets.size() && agent.packets[at].bytes != key_press) ++at;
  REQUIRE(at < agent.packets.size());
  MESSAGE("bulk packets sent: " << sent << ", the interactive packet arrived at position " << at);
  // At least the relay's queue for the agent (the high watermark, 512 KiB = 32 packets) was
  // overtaken; only what the kernel and lws already held was ahead of it.
  CHECK(at + 32 <= sent);
}

TEST_CASE("roles: a member reaches only their own workspaces, an auditor none") {
  FOR_EACH_TRANSPORT(tls);
  auto relay = start_relay();
  net::Loop loop;
  TestPeer agent(loop, *relay, tls, relay->agent_token, "agent-demo");
  TestPeer bobs_agent(loop, *relay, tls, relay->mint_agent("ws2", "bobdev", "bob"), "agent-bob");
  TestPeer alice(loop, *relay, tls, relay->mint("alice", token::Role::member), "cli-alice");
  TestPeer auditor(loop, *relay, tls, relay->mint("carol", token::Role::auditor), "cli-carol");
  TestPeer admin_member(loop, *relay, tls, relay->mint("admin", token::Role::member), "cli-admin");
  REQUIRE(wait(loop, [&] {
    return agent.link->connected() && bobs_agent.link->connected() && alice.link->connected() &&
           auditor.link->connected() && admin_member.link->connected();
  }));

  json a = dial(loop, alice, "bobdev", 1);
  CHECK(a["type"] == "dial_error");
  CHECK(a["reason"] == "member alice may not reach bob's workspace bobdev");
  json a2 = dial(loop, alice, "demo", 2);
  CHECK(a2["reason"] == "member alice may not reach admin's workspace demo");
  json c = dial(loop, auditor, "demo", 3);
  CHECK(c["type"] == "dial_error");
  CHECK(c["reason"] == "role auditor may not reach workspaces");
  json missing = dial(loop, admin_member, "nope", 4);
  CHECK(missing["reason"] == "workspace nope is not connected");
  json own = dial(loop, admin_member, "demo", 5);
  CHECK(own["type"] == "dial_ok");
  // The agent token itself reaches nothing.
  json ag = dial(loop, agent, "bobdev", 6);
  CHECK(ag["reason"] == "role agent may not reach workspaces");

  // A refused dial grants nothing: packets get peer_gone(not_allowed).
  REQUIRE(alice.link->send_packet(bobs_agent.key(), 0, Bytes{1}).ok());
  REQUIRE(wait(loop, [&] { return !alice.gone.empty(); }));
  CHECK(alice.gone[0].second == relay::PeerGoneReason::not_allowed);
  net::run_for(loop, 200ms);
  CHECK(bobs_agent.packets.empty());
}

TEST_CASE("expired and forged tokens are refused with the reason visible to the client") {
  FOR_EACH_TRANSPORT(tls);
  auto relay = start_relay();
  net::Loop loop;
  TestPeer expired(loop, *relay, tls, relay->mint("dave", token::Role::owner, 60, 7200), "cli-expired");
  token::Claims c;
  c.sub = "mallory";
  c.role = token::Role::owner;
  c.iat = now_unix();
  c.exp = c.iat + 3600;
  TestPeer forged(loop, *relay, tls, token::mint(token::IssuerKey::generate(), c), "cli-forged");
  REQUIRE(wait(loop, [&] { return !expired.states.empty() && !forged.states.empty(); }));
  expired.link->stop();
  forged.link->stop();
  CHECK(expired.connects == 0);
  CHECK(forged.connects == 0);
  INFO(expired.last_reason());
  INFO(forged.last_reason());
  CHECK(expired.states[0].second.find("relay: hello refused: token expired at") != std::string::npos);
  CHECK(forged.states[0].second.find("relay: hello refused: token signature does not verify") != std::string::npos);
}

TEST_CASE("a client that claims a key it does not hold fails the hello") {
  FOR_EACH_TRANSPORT(tls);
  auto relay = start_relay();
  RawWs ws;
  REQUIRE(ws.open(*relay, tls));
  auto sh = ws.recv_frame();
  REQUIRE(sh);
  auto f = relay::decode(*sh);
  REQUIRE(f.ok());
  auto& server_hello = std::get<relay::ServerHello>(*f);
  crypto::SecretKey mine = crypto::x25519_generate();
  PeerKey victim = crypto::x25519_public(crypto::x25519_generate());
  auto proof = relay::hello_proof(mine, server_hello.relay_key, server_hello.challenge, crypto::x25519_public(mine));
  REQUIRE(proof.ok());
  relay::ClientHello h{relay::kProtocolVersion, victim, *proof, relay->owner_token, ""};
  REQUIRE(ws.send(relay::encode(h)));
  auto closing = ws.until_closed();
  CHECK(closing.closed);
  CHECK(closing.error_text.find("hello refused: the hello's proof does not match its key") != std::string::npos);
}

TEST_CASE("bad frames close only the link that sent them") {
  FOR_EACH_TRANSPORT(tls);
  auto relay = start_relay({"--hello-timeout", "1s"});
  net::Loop loop;
  auto pair = connect_pair(loop, *relay, tls);
  auto& agent = *pair.agent;
  auto& client = *pair.client;
  uint32_t sent = 0;
  auto exchange = [&](int n) {
    for (int i = 0; i < n; ++i) {
      REQUIRE(client.link->send_packet(agent.key(), 0, numbered(sent++, 100)).ok());
      REQUIRE(agent.link->send_packet(client.key(), 0, Bytes{1, 2}).ok());
    }
    REQUIRE(wait(loop, [&] { return agent.packets.size() == sent && client.packets.size() == sent; }));
  };
  exchange(5);

  struct Case {
    const char* name;
    std::function<void(RawWs&)> misbehave;
    const char* expected_error;
    bool after_hello;
  };
  auto token = relay->owner_token;
  std::vector<Case> cases = {
      {"unknown frame type", [](RawWs& w) { w.send(Bytes{0x13, 0, 0}); }, "frame type 0x13 is unknown", true},
      {"truncated send_packet", [](RawWs& w) { w.send(Bytes(20, 0x04)); }, "send_packet is truncated", true},
      {"reserved flag bits", [](RawWs& w) {
         Bytes b(40, 0);
         b[0] = 0x04;
         b[33] = 0x40;
         w.send(b);
       }, "reserved bits", true},
      {"oversized frame", [](RawWs& w) { w.send(Bytes(70000, 0x04)); }, "exceeds", true},
      {"text message", [](RawWs& w) { w.send(as_bytes("{\"type\":\"dial\"}"), 1); }, "binary", true},
      {"relay-only frame from a peer", [](RawWs& w) { w.send(relay::encode(relay::Restarting{1, 1})); },
       "relay-to-peer frame", true},
      {"truncated client hello", [](RawWs& w) {
         w.recv_frame();
         w.send(Bytes{0x02, 0x01, 0x00});
       }, "client_hello is truncated", false},
      {"frame before the hello", [](RawWs& w) {
         w.recv_frame();
         w.send(relay::encode(relay::KeepAlive{}));
       }, "expected a client hello first", false},
      {"hello that never comes", [](RawWs& w) { w.recv_frame(); }, "no client hello within 1000 ms", false},
  };
  for (auto& c : cases) {
    CAPTURE(c.name);
    RawWs ws;
    REQUIRE(ws.open(*relay, tls));
    if (c.after_hello) REQUIRE(ws.hello(token, crypto::x25519_generate()));
    c.misbehave(ws);
    // Keep the good pair busy while the relay deals with the bad link.
    exchange(3);
    auto closing = ws.until_closed(5s);
    CHECK(closing.closed);
    CHECK_MESSAGE(closing.error_text.find(c.expected_error) != std::string::npos, closing.error_text);
  }
  exchange(20);
  CHECK(agent.link->connected());
  CHECK(client.link->connected());
  CHECK(agent.connects == 1);
  CHECK(client.connects == 1);
  // Every packet of the good pair arrived, in order.
  for (uint32_t i = 0; i < sent; ++i) CHECK(load_be32(agent.packets[i].bytes.data()) == i);

  std::string m = http_get(*relay, tls, "/metrics").body;
  CHECK(metric(m, "airlock_relay_disconnects_total{reason=\"frame_malformed\"}") >= 5);
  CHECK(metric(m, "airlock_relay_disconnects_total{reason=\"frame_too_big\"}") >= 1);
  CHECK(metric(m, "airlock_relay_disconnects_total{reason=\"hello_timeout\"}") >= 1);
  CHECK(metric(m, "airlock_relay_disconnects_total{reason=\"hello_failed\"}") >= 1);
}

TEST_CASE("backpressure: a receiver that stops reading pauses the sender; nothing is lost") {
  FOR_EACH_TRANSPORT(tls);
  auto relay = start_relay({"--queue-high-bytes", "512KiB", "--queue-low-bytes", "128KiB", "--queue-hard-cap-bytes",
                            "4MiB"});
  net::Loop loop;
  auto pair = connect_pair(loop, *relay, tls);
  auto& receiver = *pair.agent;
  auto& sender = *pair.client;
  receiver.link->set_receiving(false);

  constexpr size_t kSize = 16 * 1024;
  uint32_t sent = 0;
  auto pump = [&] {
    while (sender.link->writable()) {
      REQUIRE(sender.link->send_packet(receiver.key(), 0, numbered(sent, kSize)).ok());
      ++sent;
    }
  };
  sender.link->on_writable = pump;
  auto last = std::chrono::steady_clock::now();
  uint32_t seen = 0;
  bool stalled = wait(loop, [&] {
    pump();
    if (sent != seen) {
      seen = sent;
      last = std::chrono::steady_clock::now();
    }
    return std::chrono::steady_clock::now() - last > 2s;
  }, 90s);
  REQUIRE_MESSAGE(stalled, "the sender was never held back; sent " << sent);
  CHECK_FALSE(sender.link->writable());
  const uint32_t before = sent;
  MESSAGE("sender held back after " << sent << " packets (" << sent * kSize / 1024 << " KiB)");

  std::string m = http_get(*relay, tls, "/metrics").body;
  double queued = metric(m, "airlock_relay_queue_bytes");
  CHECK(metric(m, "airlock_relay_backpressure_events_total{event=\"pause\"}") >= 1);
  CHECK(queued > 0);
  CHECK(queued <= 512 * 1024 + 2 * (relay::kMaxFrameSize + 64));  // bounded: the high watermark plus a frame
  CHECK(metric(m, "airlock_relay_disconnects_total{reason=\"queue_overflow\"}") == 0);
  CHECK(receiver.packets.empty());
  CHECK(sender.link->connected());

  // The receiver reads again: every packet arrives, once, in order; the sender resumes by itself.
  receiver.link->set_receiving(true);
  REQUIRE(wait(loop, [&] { return receiver.packets.size() >= before && sent > before + 10; }, 60s));
  sender.link->on_writable = nullptr;
  REQUIRE(wait(loop, [&] { return receiver.packets.size() == sent; }, 60s));
  for (uint32_t i = 0; i < sent; ++i) {
    if (load_be32(receiver.packets[i].bytes.data()) != i) {
      FAIL("packet " << i << " arrived as " << load_be32(receiver.packets[i].bytes.data()));
      break;
    }
  }
  CHECK(receiver.packets.size() == sent);
  MESSAGE("all " << sent << " packets arrived in order");
  m = http_get(*relay, tls, "/metrics").body;
  CHECK(metric(m, "airlock_relay_backpressure_events_total{event=\"resume\"}") >= 1);
}

TEST_CASE("SIGTERM sends restarting, and clients reconnect to the new relay by themselves") {
  FOR_EACH_TRANSPORT(tls);
  std::string dir = make_temp_dir();
  auto relay = start_relay({}, dir);
  const int port = relay->port;
  net::Loop loop;
  auto pair = connect_pair(loop, *relay, tls);
  relay->proc->signal(SIGTERM);
  REQUIRE(wait(loop, [&] { return pair.client->restarting > 0 && pair.agent->restarting > 0; }, 10s));
  auto code = relay->proc->wait(10s);
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(relay->proc->wait_for_line("shutting down", 1s));
  REQUIRE(wait(loop, [&] { return !pair.client->link->connected() && !pair.agent->link->connected(); }, 10s));
  CHECK_MESSAGE(pair.client->last_reason().find("relay restarting") != std::string::npos, pair.client->last_reason());

  auto started = std::chrono::steady_clock::now();
  auto second = start_relay({}, dir, port);
  REQUIRE(second->port == port);
  REQUIRE_MESSAGE(wait(loop, [&] { return pair.client->connects == 2 && pair.agent->connects == 2; }, 20s),
                  pair.client->last_reason());
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  MESSAGE("both peers back " << took.count() << " ms after the new relay started");
  CHECK(took < 10s);
  // The new relay knows nothing of old grants: dial again, and packets flow.
  REQUIRE(dial(loop, *pair.client, "demo", 9)["type"] == "dial_ok");
  REQUIRE(pair.client->link->send_packet(pair.agent->key(), 0, Bytes{4, 2}).ok());
  REQUIRE(wait(loop, [&] { return !pair.agent->packets.empty(); }));
  second.reset();
  std::filesystem::remove_all(dir);
}

// lws 4.1 on its own freed the client TLS context of only the most recently created lws context
// in the process; every other wss client leaked its SSL_CTX and the trust store loaded into it.
TEST_CASE("wss clients free their TLS state whichever order they go in") {
  auto relay = start_relay();
  {
    net::Loop loop;
    std::vector<std::unique_ptr<TestPeer>> peers;
    for (int i = 0; i < 3; ++i)
      peers.push_back(std::make_unique<TestPeer>(loop, *relay, true, relay->owner_token, "cli-" + std::to_string(i)));
    REQUIRE(wait(loop, [&] {
      for (auto& p : peers)
        if (!p->link->connected()) return false;
      return true;
    }));
    peers.erase(peers.begin());  // the oldest goes first, while newer contexts exist
    net::run_for(loop, 200ms);
    peers.clear();
  }  // the loop's destructor lets every lws context finish tearing down
#if defined(AIRLOCK_LEAK_CHECK)
  CHECK_MESSAGE(__lsan_do_recoverable_leak_check() == 0, "leaks reported above");
#endif
}

TEST_CASE("wss: only a relay certificate the client trusts is accepted") {
  auto relay = start_relay();
  auto other = start_relay();  // its own --dev certificate, which does not vouch for `relay`
  net::Loop loop;
  auto link_with = [&](const std::string& ca_file, bool insecure) {
    net::RelayClient::Options o;
    o.url = relay->url(true);
    o.token = relay->owner_token;
    o.private_key = crypto::x25519_generate();
    o.ca_file = ca_file;
    o.insecure_skip_verify = insecure;
    o.backoff_initial = 100ms;
    return std::make_unique<net::RelayClient>(loop, std::move(o));
  };
  struct Case {
    const char* name;
    std::string ca_file;
    bool insecure;
    bool accepted;
  };
  for (const Case& c : {Case{"its own certificate", relay->cert(), false, true},
                        Case{"another relay's certificate", other->cert(), false, false},
                        Case{"the system store", "", false, false},
                        Case{"any certificate (insecure)", "", true, true}}) {
    CAPTURE(c.name);
    auto link = link_with(c.ca_file, c.insecure);
    std::vector<std::string> down;
    link->on_state = [&](net::LinkState s, std::string_view reason) {
      if (s == net::LinkState::disconnected) down.emplace_back(reason);
    };
    REQUIRE(link->start().ok());
    REQUIRE(wait(loop, [&] { return link->connected() || !down.empty(); }));
    CHECK(link->connected() == c.accepted);
    if (!c.accepted) CHECK_MESSAGE(down[0].find("could not connect") != std::string::npos, down[0]);
  }
  auto missing = link_with(relay->state_dir + "/no-such-ca.pem", false);
  auto started = missing->start();
  REQUIRE_FALSE(started.ok());
  CHECK_MESSAGE(started.error().message.find("no-such-ca.pem") != std::string::npos, started.error().message);
}

TEST_CASE("HTTP: /healthz, /metrics, /api/v2/workspaces") {
  FOR_EACH_TRANSPORT(tls);
  auto relay = start_relay();
  net::Loop loop;
  auto pair = connect_pair(loop, *relay, tls);
  for (int i = 0; i < 10; ++i) REQUIRE(pair.client->link->send_packet(pair.agent->key(), 0, Bytes(100, 1)).ok());
  REQUIRE(wait(loop, [&] { return pair.agent->packets.size() == 10; }));

  auto health = http_get(*relay, tls, "/healthz");
  CHECK(health.status == 200);
  CHECK(health.body == "ok\n");

  auto m = http_get(*relay, tls, "/metrics");
  CHECK(m.status == 200);
  for (const char* name : {"# TYPE airlock_relay_connections gauge", "# TYPE airlock_relay_bytes_total counter",
                           "# HELP airlock_relay_packets_total", "airlock_relay_queue_bytes",
                           "airlock_relay_backpressure_events_total", "airlock_relay_disconnects_total{reason=\"closed\"}"})
    CHECK_MESSAGE(m.body.find(name) != std::string::npos, name);
  CHECK(metric(m.body, "airlock_relay_connections{kind=\"agent\"}") == 1);
  CHECK(metric(m.body, "airlock_relay_connections{kind=\"client\"}") == 1);
  CHECK(metric(m.body, "airlock_relay_packets_total{direction=\"in\"}") >= 10);
  CHECK(metric(m.body, "airlock_relay_packets_total{direction=\"out\"}") >= 10);
  CHECK(metric(m.body, "airlock_relay_bytes_total{direction=\"in\"}") > 1000);
  CHECK(metric(m.body, "airlock_relay_dials_total{result=\"ok\"}") == 1);

  auto none = http_get(*relay, tls, "/api/v2/workspaces");
  CHECK(none.status == 401);
  CHECK(json::parse(none.body)["error"].get<std::string>().find("Bearer") != std::string::npos);
  auto bad = http_get(*relay, tls, "/api/v2/workspaces", "Bearer not.a-token");
  CHECK(bad.status == 401);
  auto member = http_get(*relay, tls, "/api/v2/workspaces", "Bearer " + relay->mint("alice", token::Role::member));
  CHECK(member.status == 403);
  CHECK(json::parse(member.body)["error"] == "role member may not list workspaces (owner or template-admin only)");
  for (auto role : {token::Role::owner, token::Role::template_admin}) {
    auto ok = http_get(*relay, tls, "/api/v2/workspaces", "Bearer " + relay->mint("root", role));
    REQUIRE(ok.status == 200);
    json list = json::parse(ok.body);
    REQUIRE(list["count"] == 1);
    json ws = list["workspaces"][0];
    CHECK(ws["id"] == "ws-demo");
    CHECK(ws["name"] == "demo");
    CHECK(ws["owner"] == "admin");
    REQUIRE(ws["agents"].size() == 1);
    CHECK(key_from_b64(ws["agents"][0]["key"]) == pair.agent->key());
    CHECK(ws["agents"][0]["source"].get<std::string>().rfind("127.0.0.1:", 0) == 0);
    CHECK(ws["agents"][0]["connected_at"].get<std::string>().size() == 20);
  }
  CHECK(http_get(*relay, tls, "/nope").status == 404);
}
