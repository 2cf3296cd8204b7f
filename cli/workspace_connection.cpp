#include "cli/workspace_connection.hpp"

#include <csignal>
#include <iostream>

#include "cli/client_config.hpp"
#include "common/net/uv.hpp"
#include "common/util/log.hpp"

namespace airlock::cli {

namespace {

// Collects the agent's answer to hello.
class HelloHandler final : public net::StreamHandler {
 public:
  HelloHandler(net::PeerLink& link, std::function<void(Result<nlohmann::json>)> done)
      : link_(link), done_(std::move(done)) {}
  stream::StreamId id = 0;
  void on_data(ByteView data) override {
    text_.append(as_chars(data));
    link_.consume(id, data.size());
  }
  void on_finished() override {
    auto j = nlohmann::json::parse(text_, nullptr, false);
    report(j.is_discarded() ? Result<nlohmann::json>(make_error("the agent's hello answer is not JSON"))
                            : Result<nlohmann::json>(j));
  }
  void on_reset(uint32_t code, std::string_view reason) override {
    report(make_error("the workspace refused you: " + std::string(reason)));
  }
  void on_closed() override {
    report(make_error("the hello stream closed without an answer"));
    delete this;
  }

 private:
  void report(Result<nlohmann::json> r) {
    if (!done_) return;
    auto done = std::move(done_);
    done_ = nullptr;
    done(std::move(r));
  }
  net::PeerLink& link_;
  std::function<void(Result<nlohmann::json>)> done_;
  std::string text_;
};

}  // namespace

std::string describe_reset(uint32_t code, std::string_view reason) {
  if (!reason.empty()) return std::string(reason);
  return "stream reset (code " + std::to_string(code) + ")";
}

namespace {
constexpr std::chrono::milliseconds kRedialFirst{1000};
constexpr std::chrono::milliseconds kRedialMax{5000};
}  // namespace

WorkspaceConnection::WorkspaceConnection(uv_loop_t* loop, ClientOptions options, std::string workspace)
    : loop_(loop), options_(std::move(options)), workspace_(std::move(workspace)), redial_timer_(loop) {}

WorkspaceConnection::~WorkspaceConnection() = default;

Status WorkspaceConnection::start() {
  net::RelayClient::Options o;
  o.url = options_.url;
  o.token = options_.token;
  // A fresh key per command: the relay and the agent know this client only for this session.
  o.private_key = crypto::x25519_generate();
  o.ca_file = options_.ca_file;
  o.meta = {{"program", "airlock"}};
  node_ = std::make_unique<net::TunnelNode>(loop_, std::move(o));
  node_->on_control = [this](const nlohmann::json& m) { on_control(m); };
  node_->on_relay_state = [this](net::LinkState state, std::string_view reason) {
    if (state == net::LinkState::connected) {
      dial();
    } else if (!failed_) {
      std::string why(reason);
      // A refused hello is final: retrying with the same token cannot help.
      if (why.find("token") != std::string::npos || why.find("refused") != std::string::npos) {
        if (!ready_) return fail("the relay refused the connection: " + why);
      }
      if (on_progress) on_progress("relay link down (" + why + "); reconnecting...");
    }
  };
  node_->on_peer_gone = [this](const crypto::Key& key, std::string_view reason) {
    if (agent_key_ && key == *agent_key_ && on_progress)
      on_progress("workspace agent went away (" + std::string(reason) + "); waiting for it to come back...");
  };
  node_->on_peer_present = [this](const crypto::Key& key) {
    if (agent_key_ && key == *agent_key_) dial();
  };
  if (on_progress) on_progress("connecting to " + options_.url + "...");
  return node_->start();
}

void WorkspaceConnection::stop() {
  redial_timer_.stop();
  if (node_) node_->stop("done");
}

net::PeerLink* WorkspaceConnection::link() { return agent_key_ ? node_->find_peer(*agent_key_) : nullptr; }

void WorkspaceConnection::dial() {
  redial_timer_.stop();
  ++dial_id_;
  (void)node_->relay().send_control({{"type", "dial"}, {"id", dial_id_}, {"workspace", workspace_}});
}

// After a relay restart the agent may not be back yet: ask again until it is (or the relay link
// drops, whose reconnect dials anyway).
void WorkspaceConnection::redial_later() {
  if (failed_) return;
  redial_delay_ = redial_delay_.count() == 0 ? kRedialFirst : std::min(redial_delay_ * 2, kRedialMax);
  redial_timer_.start(redial_delay_, [this] {
    if (!failed_ && node_->relay().connected()) dial();
  });
}

void WorkspaceConnection::fail(const std::string& error) {
  if (failed_) return;
  failed_ = true;
  if (on_error) on_error(error);
}

void WorkspaceConnection::on_control(const nlohmann::json& m) {
  std::string type = m.value("type", "");
  if (type == "dial_error" || type == "error") {
    if (!ready_) return fail(m.value("reason", "the relay refused the dial"));
    if (on_progress && redial_delay_.count() == 0) on_progress("relay: " + m.value("reason", "") + "; retrying...");
    if (type == "dial_error") redial_later();
    return;
  }
  if (type != "dial_ok") return;
  redial_delay_ = std::chrono::milliseconds(0);
  auto key = crypto::key_from_base64(m.value("agent_key", ""));
  if (!key) return fail("the relay answered with a bad agent key");
  if (agent_key_ && *agent_key_ != *key) {
    // The agent restarted with a new key: its streams are gone; start over with the new one.
    node_->remove_peer(*agent_key_, "the workspace agent restarted");
    if (ready_) return fail("the workspace agent restarted; run the command again");
  }
  bool first = !agent_key_;
  agent_key_ = *key;
  net::PeerLink& link = node_->add_peer(*key, stream::Role::initiator);
  if (!first) return;
  if (on_progress) on_progress("workspace " + workspace_ + " found; opening the tunnel...");
  link.on_ready = [this, &link] { say_hello(link); };
  link.on_broken = [this](std::string_view reason) { fail(std::string(reason)); };
  node_->connect(*key);
}

void WorkspaceConnection::say_hello(net::PeerLink& link) {
  auto* h = new HelloHandler(link, [this, &link](Result<nlohmann::json> r) {
    if (!r) return fail(r.error().message);
    ready_ = true;
    if (on_ready) on_ready(link, *r);
  });
  h->id = link.open("hello", {{"token", options_.token}}, stream::Priority::interactive, h);
}

int run_workspace_command(const ClientOptions& flags, const std::string& workspace, bool quiet,
                          std::function<void(CommandContext&, net::PeerLink&, const nlohmann::json&)> body) {
  auto options = resolve_client_options(flags);
  if (!options) {
    std::cerr << "airlock: " << options.error().message << "\n";
    return 2;
  }
  net::Loop loop;
  int exit_code = 1;
  bool finished = false;
  {
    // Destroyed in reverse: the connection first (its teardown still calls the command's stream
    // handlers, which may call ctx.finish), then the context, then the command's own objects.
    std::vector<std::shared_ptr<void>> owned;
    CommandContext ctx{loop, nullptr, nullptr, nullptr, &owned};
    WorkspaceConnection conn(loop, *options, workspace);
    ctx.connection = &conn;
    ctx.finish = [&](int code) {
      if (finished) return;
      finished = true;
      exit_code = code;
      conn.stop();
      uv_stop(loop);
    };
    conn.on_error = [&](const std::string& e) {
      std::cerr << "airlock: " << e << "\n";
      ctx.finish(1);
    };
    if (!quiet) conn.on_progress = [](const std::string& line) { std::cerr << line << "\n"; };
    conn.on_ready = [&](net::PeerLink& link, const nlohmann::json& info) { body(ctx, link, info); };
    net::Signal sigint(loop), sigterm(loop);
    sigint.start(SIGINT, [&](int) {
      if (ctx.on_interrupt) ctx.on_interrupt();
      else ctx.finish(130);
    });
    sigterm.start(SIGTERM, [&](int) { ctx.finish(143); });
    if (auto s = conn.start(); !s) {
      std::cerr << "airlock: " << s.error().message << "\n";
      return 2;
    }
    uv_run(loop, UV_RUN_DEFAULT);
  }
  return exit_code;
}

}  // namespace airlock::cli
