// Reaching a workspace: dial the relay, ask the coordinator for the workspace's agent, bring the
// tunnel up and say hello with the user's token. Commands then open streams on link().
//
// The relay link reconnects by itself; after a reconnect the workspace is dialled again and the
// tunnel's stream session resumes, so open streams carry on without losing a byte. A restarted
// relay knows the workspace only once its agent is back: until then the dial is refused, and it
// is retried (1 s, backing off to 5 s) rather than left for a grant that never comes.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <uv.h>

#include "cli/commands.hpp"
#include "common/net/tunnel_node.hpp"
#include "common/net/uv.hpp"

namespace airlock::cli {

class WorkspaceConnection {
 public:
  WorkspaceConnection(uv_loop_t* loop, ClientOptions options, std::string workspace);
  ~WorkspaceConnection();

  Status start();
  void stop();

  // Called once, when the agent accepted the hello. `info` is the agent's answer.
  std::function<void(net::PeerLink& link, const nlohmann::json& info)> on_ready;
  // Something that ends the command: the relay refused the dial, the agent refused the hello, ...
  std::function<void(const std::string& error)> on_error;
  // Progress a person may want to see ("connecting to wss://...", "relay restarting").
  std::function<void(const std::string& line)> on_progress;

  net::PeerLink* link();
  net::TunnelNode& node() { return *node_; }
  const std::string& workspace() const { return workspace_; }

 private:
  void dial();
  void redial_later();
  void on_control(const nlohmann::json& m);
  void say_hello(net::PeerLink& link);
  void fail(const std::string& error);

  uv_loop_t* loop_;
  ClientOptions options_;
  std::string workspace_;
  std::unique_ptr<net::TunnelNode> node_;
  net::Timer redial_timer_;
  std::chrono::milliseconds redial_delay_{0};
  std::optional<crypto::Key> agent_key_;
  int dial_id_ = 0;
  bool ready_ = false;
  bool failed_ = false;
};

// Runs a command body on a fresh loop with a connection to the workspace; returns its exit code.
// body gets the link once hello succeeded and sets `exit_code` / calls `finish` when done.
struct CommandContext {
  uv_loop_t* loop;
  WorkspaceConnection* connection;
  std::function<void(int exit_code)> finish;
  // Ctrl-C: when set, the command winds down itself (prints a summary, then calls finish).
  std::function<void()> on_interrupt;
  // The command's own objects (stream handlers with timers, listeners): they outlive the
  // connection (whose teardown still calls their on_closed) and die before the loop closes.
  std::vector<std::shared_ptr<void>>* owned = nullptr;
  template <typename T>
  T* own(std::unique_ptr<T> object) {
    T* raw = object.get();
    owned->push_back(std::shared_ptr<T>(std::move(object)));
    return raw;
  }
};
int run_workspace_command(const ClientOptions& flags, const std::string& workspace, bool quiet,
                          std::function<void(CommandContext&, net::PeerLink&, const nlohmann::json&)> body);

// A human-readable reason for a reset stream.
std::string describe_reset(uint32_t code, std::string_view reason);

}  // namespace airlock::cli
