// The agent's side of the tunnel: it dials the relay, accepts the peers the relay announces,
// checks each peer's `hello` (the user's own token, verified here against the issuer key, not
// taken on the relay's word), and hands every later stream to its service.
//
// Services on a stream (the open frame's service name and JSON arguments):
//   hello      {"token"}                          must come first; answers {"workspace", "user", "agent"}
//   ping       {}                                  echoes every byte back
//   tcp        {"port"}                            joins the stream to 127.0.0.1:port, under the port policy
//   speedtest  {"direction": "down"|"up", "duration_ms"}   sends or swallows bulk bytes
//   ssh        {}                                  an SSH server session (libssh) on the stream
//   pty        {"session", "cols", "rows", "command"?}  a reconnecting terminal
//   status     {}                                  the workspace status document (JSON), then EOF
//   logs       {"follow": bool}                    the startup/shutdown script log; follow streams on
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include <uv.h>

#include "agent/agent.hpp"
#include "agent/service.hpp"
#include "common/crypto/crypto.hpp"
#include "common/net/tunnel_node.hpp"
#include "common/token/token.hpp"
#include "common/util/result.hpp"

namespace airlock::agent {

class Agent;
namespace ssh { class SshServer; }
namespace pty { class PtySessions; }

class TunnelServer {
 public:
  TunnelServer(uv_loop_t* loop, Agent& agent);
  ~TunnelServer();
  TunnelServer(const TunnelServer&) = delete;
  TunnelServer& operator=(const TunnelServer&) = delete;

  // Loads (or creates) the tunnel key, checks the agent's own token and starts dialing.
  Status start();
  void stop();

  const crypto::Key& public_key() const;

  struct Client;  // one peer the relay announced

 private:
  void on_control(const nlohmann::json& message);
  void on_open(Client& client, net::IncomingStream in);
  void serve_hello(Client& client, net::IncomingStream& in);
  void serve_tcp(Client& client, net::IncomingStream& in);
  void serve_socket_service(Client& client, net::IncomingStream& in);
  void serve_status(Client& client, net::IncomingStream& in);
  void serve_logs(Client& client, net::IncomingStream& in);
  void serve_speedtest(Client& client, net::IncomingStream& in);
  void forget_later(const crypto::Key& key);
  void audit(const Identity& who, AuditNote note);
  void schedule_status_push();
  void push_status();
  void collect_stats();

  static constexpr std::chrono::milliseconds kStatusPushSpacing{250};

  uv_loop_t* loop_;
  Agent& agent_;
  crypto::Key issuer_public_{};
  token::Claims agent_claims_;
  std::unique_ptr<net::TunnelNode> node_;
  std::map<crypto::Key, std::unique_ptr<Client>> clients_;
  std::unique_ptr<ssh::SshServer> ssh_;
  std::unique_ptr<pty::PtySessions> pty_;
  std::unique_ptr<net::Timer> push_timer_;
  std::unique_ptr<net::Timer> stats_timer_;
  Agent::Subscription status_subscription_;
  std::chrono::steady_clock::time_point last_push_{};
};

}  // namespace airlock::agent
