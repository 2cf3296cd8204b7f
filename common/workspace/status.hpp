// The workspace status document: what the agent knows about its workspace, as one JSON object.
// The agent builds it; the relay serves it (GET /api/v2/workspaces/{name}), `airlock status`
// prints it and a Backstage workspace card reads it. docs/AGENT.md documents every field; keep
// the two in step and bump kStatusSchema when a field changes meaning or goes away.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/workspace/health.hpp"

namespace airlock::workspace {

inline constexpr int kStatusSchema = 1;

using TimePoint = std::chrono::system_clock::time_point;

// created -> starting -> ready | start_error | start_timeout -> shutting_down
//         -> off | shutdown_error | shutdown_timeout
enum class LifecycleState {
  created,
  starting,
  ready,
  start_error,
  start_timeout,
  shutting_down,
  off,
  shutdown_error,
  shutdown_timeout,
};
const char* lifecycle_state_name(LifecycleState s);
// The states a workspace rests in after its startup script (a login is no longer held back).
bool startup_finished(LifecycleState s);
// The three ends of the lifecycle.
bool lifecycle_final(LifecycleState s);

enum class ScriptState {
  none,         // the manifest has no such script
  pending,      // not started yet
  running,
  succeeded,    // exit status 0
  failed,       // non-zero exit, killed by a signal, or could not be started
  timed_out,    // ran past its timeout and was killed
};
const char* script_state_name(ScriptState s);

struct ScriptResult {
  ScriptState state = ScriptState::none;
  std::chrono::seconds timeout{0};  // 0: none
  bool blocks_login = false;        // startup script only
  std::optional<int> exit_code;
  std::optional<int> signal;        // the signal that ended it, if one did
  std::optional<TimePoint> started_at;
  std::optional<TimePoint> finished_at;
  std::string error;                // why it failed, for a person
  std::string log_path;
  uint64_t log_lines = 0;
  std::vector<std::string> log_tail;  // the last few lines (the agent keeps more for `airlock logs`)
};

struct AppStatus {
  std::string slug;
  std::string display_name;
  std::string url;
  std::string healthcheck_url;  // empty: health checks disabled
  std::chrono::seconds interval{0};
  int threshold = 0;
  HealthState health = HealthState::disabled;
  std::string detail;           // the last check's outcome: "200", "status 503", "connection refused", ...
  int consecutive_failures = 0;
  uint64_t checks = 0;
  std::optional<TimePoint> last_check_at;
  std::optional<TimePoint> changed_at;
};

struct MetadataStatus {
  std::string key;
  std::string display_name;
  std::chrono::seconds interval{0};
  std::chrono::seconds timeout{0};
  std::string value;            // trimmed output, at most 4 KiB
  std::string error;            // empty when the last run succeeded
  std::optional<TimePoint> collected_at;
};

struct ListeningPort {
  uint16_t port = 0;
  std::string network;  // "tcp" or "tcp6"
  std::string address;  // "0.0.0.0", "127.0.0.1", "::"
  std::string process;  // comm of the owning process, "" if unknown (another user's)
  int pid = 0;          // 0 if unknown
};

struct PeerLatency {
  std::string peer;     // the peer's public key (base64)
  double latency_ms = 0;
  TimePoint measured_at;
};

struct TrafficStats {
  uint64_t bytes_in = 0;   // from peers to the workspace
  uint64_t bytes_out = 0;  // from the workspace to peers
  std::map<std::string, uint64_t> sessions_open;   // "ssh", "pty", "tcp", ... -> open now
  std::map<std::string, uint64_t> sessions_total;  // ... -> opened since the agent started
  std::vector<PeerLatency> peers;
};

struct AgentInfo {
  std::string version;
  int pid = 0;
  bool pid1 = false;         // the container's init: reaps every orphan in the container
  bool subreaper = false;    // PR_SET_CHILD_SUBREAPER: reaps orphans of its own descendants
  TimePoint started_at;
  bool relay_configured = false;
  bool connected = false;    // relay link up (set by the relay connection)
  std::string relay_url;
  uint64_t reaped_orphans = 0;
};

struct LifecycleStatus {
  LifecycleState state = LifecycleState::created;
  TimePoint changed_at;
  std::optional<TimePoint> starting_at;
  std::optional<TimePoint> ready_at;        // when the startup phase ended (ready or an error)
  std::optional<TimePoint> shutting_down_at;
  std::optional<TimePoint> finished_at;     // off / shutdown_error / shutdown_timeout
  bool login_blocked = false;               // a login now waits for the startup script
};

struct WorkspaceStatus {
  AgentInfo agent;
  LifecycleStatus lifecycle;
  ScriptResult startup;
  ScriptResult shutdown;
  std::vector<AppStatus> apps;
  std::vector<MetadataStatus> metadata;
  std::vector<ListeningPort> listening_ports;
  TrafficStats stats;
  TimePoint updated_at;
};

nlohmann::ordered_json to_json(const WorkspaceStatus& status);
nlohmann::ordered_json to_json(const ScriptResult& script);
nlohmann::ordered_json to_json(const AppStatus& app);
nlohmann::ordered_json to_json(const MetadataStatus& item);
nlohmann::ordered_json to_json(const ListeningPort& port);
nlohmann::ordered_json to_json(const TrafficStats& stats);

// RFC 3339 in UTC with milliseconds: "2026-11-23T09:30:00.123Z".
std::string format_time(TimePoint t);

}  // namespace airlock::workspace
