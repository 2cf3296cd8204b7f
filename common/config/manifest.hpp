// The workspace manifest: what a workspace template tells its agent (JSON file, usually baked into
// the image and named by AIRLOCK_AGENT_MANIFEST). Parsing checks every field before anything
// starts; an error names the field and the fix:
//   manifest: apps[1].healthcheck.interval: must be a positive number of seconds (got -3)
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/util/result.hpp"

namespace airlock::config {

// An inclusive range of TCP ports, "8080" or "3000-3999" in the manifest.
struct PortRange {
  uint16_t first = 0;
  uint16_t last = 0;
  bool contains(uint16_t port) const { return port >= first && port <= last; }
};

struct PortPolicy {
  std::vector<PortRange> allow;  // empty: every port not denied
  std::vector<PortRange> deny;   // checked first
  bool permits(uint16_t port) const;
};

struct Policy {
  bool pty = true;
  bool ssh = true;
  bool tcp = true;  // port-forward
  PortPolicy ports;
  bool block_file_transfer = false;   // sftp subsystem, scp/rsync/sftp-server over exec
  std::chrono::seconds session_lifetime{0};  // 0: unlimited
};

struct Script {
  std::string script;  // run with /bin/sh -c
  std::chrono::seconds timeout{0};  // 0: none
  bool blocks_login = false;        // startup only: logins wait until the script finished
};

struct App {
  std::string slug;          // [a-z0-9-], unique
  std::string display_name;
  std::string url;           // where the app listens inside the workspace
  std::string healthcheck_url;  // empty: health checks disabled
  std::chrono::seconds interval{5};
  int threshold = 3;         // consecutive failures before unhealthy
};

struct MetadataItem {
  std::string key;
  std::string display_name;
  std::string script;
  std::chrono::seconds interval{10};
  std::chrono::seconds timeout{5};
};

struct Manifest {
  std::string directory;                      // working directory for sessions and scripts
  std::map<std::string, std::string> env;     // added to every session and script
  std::optional<Script> startup;
  std::optional<Script> shutdown;
  std::vector<App> apps;
  std::vector<MetadataItem> metadata;
  Policy policy;
};

// Parses and validates; unknown keys are errors too (a typo must not silently disable a policy).
Result<Manifest> parse_manifest(const nlohmann::json& document);
Result<Manifest> parse_manifest_text(const std::string& text);
Result<Manifest> load_manifest(const std::string& path);

Result<PortRange> parse_port_range(const std::string& text);

}  // namespace airlock::config
