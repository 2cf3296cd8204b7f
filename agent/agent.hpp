// airlock-agent's core: the workspace lifecycle on one libuv loop, and the status document.
//
// An Agent runs the startup script, watches apps, metadata and listening ports, reaps orphans,
// and on SIGTERM/SIGINT runs the shutdown script, stops what is left and reports how it ended.
// It knows nothing of the relay or the tunnel; they plug in through these seams:
//
//   read      status() / status_document()   the whole status document (docs/AGENT.md)
//             script_log(kind, n)            the last n lines of a script's output (`airlock logs`)
//             login_gate()                   whether a login now waits for the startup script
//   subscribe subscribe(cb)                  called at once on every change, with what changed
//             subscribe_output(cb)           every line of startup/shutdown script output
//   feed      add_bytes_in/out, session_opened/closed, set_peer_latency, forget_peer, set_connected
//   children  children()                     the child registry: services that fork register
//                                            their children here (rule in child_registry.hpp)
//   end       shutdown(signal)               what SIGTERM does; on_finished(exit code) at the end
//
// Everything is loop-thread only.
#pragma once

#include <signal.h>
#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/lifecycle/child_registry.hpp"
#include "agent/lifecycle/health_monitor.hpp"
#include "agent/lifecycle/listening_ports.hpp"
#include "agent/lifecycle/log_file.hpp"
#include "agent/lifecycle/metadata_collector.hpp"
#include "agent/lifecycle/script_process.hpp"
#include "common/config/manifest.hpp"
#include "common/net/uv_handle.hpp"
#include "common/util/result.hpp"
#include "common/workspace/agent_settings.hpp"
#include "common/workspace/script_output.hpp"
#include "common/workspace/status.hpp"

namespace airlock::agent {

enum class ScriptKind { startup, shutdown };
const char* script_kind_name(ScriptKind kind);

// What a change notification is about; the status document has the new values.
enum class StatusChange { lifecycle, startup_script, shutdown_script, apps, metadata, listening_ports, stats, connection };
const char* status_change_name(StatusChange change);

// What an SSH or terminal login should do right now. The services hold a login while `wait`
// is true and go on when a lifecycle change makes it false; `message` (if any) is shown to
// the user either way.
struct LoginGate {
  bool blocks_login = false;  // the manifest's startup.blocks_login
  workspace::LifecycleState state = workspace::LifecycleState::created;
  bool wait = false;
  std::string message;
};

// Exit statuses of airlock-agent.
inline constexpr int kExitOff = 0;             // shut down cleanly
inline constexpr int kExitShutdownFailed = 1;  // shutdown script failed or timed out
inline constexpr int kExitConfiguration = 2;   // bad flags, environment or manifest: nothing started
inline constexpr int kExitInternal = 70;       // could not set itself up (EX_SOFTWARE)

class Agent {
 public:
  struct Options {
    workspace::AgentSettings settings;
    config::Manifest manifest;
    bool pid1 = false;
    bool subreaper = false;
    std::string version;
  };

  // Unsubscribes when destroyed. The Agent must outlive its subscriptions.
  class Subscription {
   public:
    Subscription() = default;
    explicit Subscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
    ~Subscription() { reset(); }
    Subscription(Subscription&& o) noexcept : cancel_(std::exchange(o.cancel_, nullptr)) {}
    Subscription& operator=(Subscription&& o) noexcept {
      if (this != &o) {
        reset();
        cancel_ = std::exchange(o.cancel_, nullptr);
      }
      return *this;
    }
    void reset() {
      if (cancel_) std::exchange(cancel_, nullptr)();
    }

   private:
    std::function<void()> cancel_;
  };

  using ChangeCallback = std::function<void(StatusChange)>;
  using OutputCallback = std::function<void(ScriptKind, std::string_view line)>;

  Agent(uv_loop_t* loop, Options options);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // created -> starting: starts reaping, signal handling, the startup script, health checks,
  // metadata and port scans. An error here means the agent could not set itself up.
  Status start();

  // starting/ready/... -> shutting_down: forwards `signal` to a startup script still running,
  // runs the shutdown script, then sends `signal` to every process left and SIGKILL after
  // the stop grace. A second call while shutting down forwards the signal again.
  void shutdown(int signal);
  // Called once, when the lifecycle has ended; the argument is the process's exit status.
  void set_on_finished(std::function<void(int exit_code)> cb) { on_finished_ = std::move(cb); }

  workspace::WorkspaceStatus status() const;
  nlohmann::ordered_json status_document() const;
  std::vector<std::string> script_log(ScriptKind kind, size_t max_lines) const;
  LoginGate login_gate() const;
  workspace::LifecycleState state() const { return lifecycle_.state; }

  [[nodiscard]] Subscription subscribe(ChangeCallback cb);
  [[nodiscard]] Subscription subscribe_output(OutputCallback cb);

  // Stats, fed by the tunnel and services. Stats changes are pushed at most once a second.
  void add_bytes_in(uint64_t n);
  void add_bytes_out(uint64_t n);
  void session_opened(std::string_view type);  // "ssh", "pty", "tcp", ...
  void session_closed(std::string_view type);
  void set_peer_latency(std::string_view peer_key, std::chrono::microseconds latency);
  void forget_peer(std::string_view peer_key);
  // The relay connection reports whether its link is up.
  void set_connected(bool connected);

  ChildRegistry& children() { return registry_; }
  const workspace::AgentSettings& settings() const { return options_.settings; }
  const config::Manifest& manifest() const { return options_.manifest; }

 private:
  struct ScriptLog {
    std::unique_ptr<RotatingLog> file;
    workspace::LineSplitter splitter;
    workspace::LogTail tail;
  };

  void set_state(workspace::LifecycleState next);
  void notify(StatusChange change);
  void schedule_status_write();
  void write_status_now();
  void mark_stats_changed();

  void run_startup_script();
  void startup_done(const ScriptOutcome& outcome);
  void run_shutdown_script();
  void shutdown_script_done(const ScriptOutcome& outcome);
  void stop_leftovers();
  void check_leftovers();
  void finish();

  ScriptSpec script_spec(ScriptKind kind, const config::Script& script) const;
  void on_script_output(ScriptKind kind, std::string_view bytes);
  void on_script_line(ScriptKind kind, std::string_view line);
  ScriptLog& log_of(ScriptKind kind) { return kind == ScriptKind::startup ? startup_log_ : shutdown_log_; }
  const ScriptLog& log_of(ScriptKind kind) const { return kind == ScriptKind::startup ? startup_log_ : shutdown_log_; }
  static void record_outcome(workspace::ScriptResult& result, const ScriptOutcome& outcome);

  uv_loop_t* loop_;
  Options options_;
  std::string script_directory_;
  std::vector<std::string> script_env_;

  ChildRegistry registry_;
  net::UvHandle<uv_signal_t> sigterm_;
  net::UvHandle<uv_signal_t> sigint_;
  std::unique_ptr<HealthMonitor> health_;
  std::unique_ptr<MetadataCollector> metadata_;
  std::unique_ptr<ListeningPortScanner> ports_;
  std::unique_ptr<ScriptProcess> startup_run_;
  std::unique_ptr<ScriptProcess> shutdown_run_;
  ScriptLog startup_log_;
  ScriptLog shutdown_log_;

  workspace::AgentInfo info_;
  workspace::LifecycleStatus lifecycle_;
  workspace::ScriptResult startup_;
  workspace::ScriptResult shutdown_;
  workspace::TrafficStats stats_;

  int shutdown_signal_ = SIGTERM;
  std::chrono::steady_clock::time_point leftovers_since_;
  bool leftovers_killed_ = false;
  net::UvHandle<uv_timer_t> leftovers_timer_;
  net::UvHandle<uv_timer_t> status_write_timer_;
  net::UvHandle<uv_timer_t> stats_timer_;
  bool finished_ = false;
  std::function<void(int)> on_finished_;

  uint64_t next_subscription_ = 1;
  std::list<std::pair<uint64_t, ChangeCallback>> change_subscribers_;
  std::list<std::pair<uint64_t, OutputCallback>> output_subscribers_;
};

}  // namespace airlock::agent
