#include <doctest/doctest.h>

#include "common/workspace/agent_settings.hpp"

using namespace airlock::workspace;

namespace {
std::string error_of(const SettingsInput& in) {
  auto r = resolve_agent_settings(in);
  REQUIRE_FALSE(r.ok());
  return r.error().message;
}
SettingsInput base() {
  SettingsInput in;
  in.home = "/home/coder";
  return in;
}
}  // namespace

TEST_CASE("defaults: no relay, state under the home directory or /var/lib as root") {
  auto r = resolve_agent_settings(base());
  REQUIRE(r.ok());
  CHECK(r->relay_url.empty());
  CHECK(r->state_dir == "/home/coder/.local/state/airlock-agent");
  CHECK(r->status_file == "/home/coder/.local/state/airlock-agent/status.json");
  CHECK(r->log_level == "info");
  CHECK(r->stop_grace.count() == 5000);
  auto root = base();
  root.running_as_root = true;
  CHECK(resolve_agent_settings(root)->state_dir == "/var/lib/airlock-agent");
}

TEST_CASE("a flag wins over its variable") {
  auto in = base();
  in.env["AIRLOCK_AGENT_STATE_DIR"] = "/from/env";
  in.flags["state-dir"] = "/from/flag/";
  in.env["AIRLOCK_LOG_LEVEL"] = "debug";
  in.env["AIRLOCK_AGENT_STOP_GRACE"] = "2s";
  auto r = resolve_agent_settings(in);
  REQUIRE(r.ok());
  CHECK(r->state_dir == "/from/flag");
  CHECK(r->log_level == "debug");
  CHECK(r->stop_grace.count() == 2000);
}

TEST_CASE("relay URL and token go together and are checked") {
  auto in = base();
  in.env["AIRLOCK_RELAY_URL"] = "wss://relay.example.com";
  CHECK(error_of(in) ==
        "configuration: AIRLOCK_AGENT_TOKEN (or --token): is required when AIRLOCK_RELAY_URL is set (the agent's "
        "token from the control plane)");
  in.env["AIRLOCK_AGENT_TOKEN"] = "eyJzdWIiOiJ4In0.c2ln";
  CHECK(error_of(in).find("configuration: AIRLOCK_ISSUER_PUBLIC_KEY (or --issuer-public-key): is required when "
                          "AIRLOCK_RELAY_URL is set") == 0);
  in.env["AIRLOCK_ISSUER_PUBLIC_KEY"] = "not-a-key";
  CHECK(error_of(in).find("configuration: AIRLOCK_ISSUER_PUBLIC_KEY: is not a public key") == 0);
  in.env["AIRLOCK_ISSUER_PUBLIC_KEY"] = "77I/xMBtNamQmap8ro8ly9AErCrHoO1mRtXGlrlM/rA=";
  auto r = resolve_agent_settings(in);
  REQUIRE(r.ok());
  CHECK(r->token == "eyJzdWIiOiJ4In0.c2ln");

  in.env["AIRLOCK_AGENT_TOKEN"] = "not a token";
  CHECK(error_of(in).find("configuration: AIRLOCK_AGENT_TOKEN: is not a token") == 0);

  in.env["AIRLOCK_AGENT_TOKEN"] = "a.b";
  in.env["AIRLOCK_RELAY_URL"] = "ws://relay.example.com";
  CHECK(error_of(in).find("configuration: AIRLOCK_RELAY_URL: \"ws://relay.example.com\" is plain ws://") == 0);
  in.env["AIRLOCK_RELAY_URL"] = "ws://127.0.0.1:8443";
  CHECK(resolve_agent_settings(in).ok());
  in.flags["relay-url"] = "https://relay";
  CHECK(error_of(in).find("configuration: --relay-url: \"https://relay\" must be a wss:// URL") == 0);

  auto token_only = base();
  token_only.flags["token"] = "a.b";
  CHECK(error_of(token_only).find("configuration: AIRLOCK_RELAY_URL (or --relay-url): is required when --token") == 0);
}

TEST_CASE("paths, levels and durations are checked, naming the setting") {
  auto in = base();
  in.flags["state-dir"] = "relative";
  CHECK(error_of(in) == "configuration: --state-dir: \"relative\" must be an absolute path");
  in = base();
  in.env["AIRLOCK_LOG_LEVEL"] = "verbose";
  CHECK(error_of(in) == "configuration: AIRLOCK_LOG_LEVEL: \"verbose\" is not a level: use debug, info, warn or error");
  in = base();
  in.flags["ports-interval"] = "10ms";
  CHECK(error_of(in).find("configuration: --ports-interval: \"10ms\" is too short") == 0);
  in = base();
  in.flags["stop-grace"] = "soon";
  CHECK(error_of(in).find("configuration: --stop-grace: \"soon\" is not a duration") == 0);
  in = base();
  in.env["AIRLOCK_CA"] = "ca.pem";
  CHECK(error_of(in).find("configuration: AIRLOCK_CA:") == 0);
  in = base();
  in.env["AIRLOCK_AGENT_MANIFEST"] = "";
  CHECK(error_of(in).find("configuration: AIRLOCK_AGENT_MANIFEST: is empty") == 0);
  in = base();
  in.home = "";
  CHECK(error_of(in).find("configuration: AIRLOCK_AGENT_STATE_DIR (or --state-dir): is not set and $HOME") == 0);
}
