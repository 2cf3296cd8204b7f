// airlock-agent's settings: each one from a flag, else its environment variable, else a default.
// Resolution is pure (flags and environment in, settings or an error out) so that every mistake
// is caught before anything starts, and the error names the flag or variable that was used:
//   configuration: AIRLOCK_RELAY_URL: "http://relay:8080" must be a wss:// URL (ws:// only to a loopback relay)
// The table below is the single list: main registers one CLI11 option per row and --help shows
// the variable next to the flag.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "common/util/result.hpp"

namespace airlock::workspace {

struct SettingSpec {
  const char* key;   // the flag without "--": "relay-url"
  const char* env;   // "AIRLOCK_RELAY_URL"
  const char* help;
};
const std::vector<SettingSpec>& agent_setting_specs();

struct AgentSettings {
  std::string relay_url;      // empty: not connected (the lifecycle still runs)
  std::string token;          // the agent's control-plane token
  std::string issuer_public_key;  // base64 Ed25519 key that users' tokens are checked against
  std::string manifest_path;  // empty: no manifest (no scripts, apps or metadata)
  std::string state_dir;
  std::string ca_file;        // PEM bundle to trust for wss:// (empty: the system's)
  std::string log_level = "info";
  std::string status_file;    // rewritten atomically on every change
  std::chrono::milliseconds stop_grace{5000};      // SIGTERM -> SIGKILL for leftovers at shutdown
  std::chrono::milliseconds ports_interval{5000};  // listening-port scan period
  size_t log_file_bytes = 5 * 1024 * 1024;  // script log rotation size
  int log_files = 3;                        // current file + rotated ones kept
};

struct SettingsInput {
  std::map<std::string, std::string> flags;  // key ("relay-url") -> value, only flags given
  std::map<std::string, std::string> env;    // only the AIRLOCK_* variables that are set
  bool running_as_root = false;
  std::string home;  // $HOME, for the default state directory of a non-root agent
};

Result<AgentSettings> resolve_agent_settings(const SettingsInput& input);

}  // namespace airlock::workspace
