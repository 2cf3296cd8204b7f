#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "common/workspace/status.hpp"

using namespace airlock::workspace;
using namespace std::chrono;

TEST_CASE("times are RFC 3339 UTC with milliseconds") {
  CHECK(format_time(system_clock::time_point(milliseconds(0))) == "1970-01-01T00:00:00.000Z");
  CHECK(format_time(system_clock::time_point(milliseconds(1795426200123))) == "2026-11-23T09:30:00.123Z");
}

TEST_CASE("the status document has every documented section, in order") {
  WorkspaceStatus s;
  s.agent.version = "0.1.0";
  s.lifecycle.state = LifecycleState::start_timeout;
  s.startup.state = ScriptState::timed_out;
  s.startup.timeout = seconds(5);
  s.startup.signal = 9;
  s.startup.started_at = system_clock::time_point(seconds(10));
  s.startup.finished_at = system_clock::time_point(seconds(15));
  AppStatus app;
  app.slug = "code-server";
  app.healthcheck_url = "http://127.0.0.1:13337/healthz";
  app.interval = seconds(5);
  app.threshold = 3;
  app.health = HealthState::healthy;
  s.apps.push_back(app);
  s.listening_ports.push_back({13337, "tcp", "127.0.0.1", "node", 42});
  s.stats.sessions_open["ssh"] = 2;
  auto doc = to_json(s);
  std::vector<std::string> keys;
  for (auto& [k, _] : doc.items()) keys.push_back(k);
  CHECK(keys == std::vector<std::string>{"schema", "updated_at", "agent", "lifecycle", "startup_script", "shutdown_script",
                                         "apps", "metadata", "listening_ports", "stats"});
  CHECK(doc["schema"] == kStatusSchema);
  CHECK(doc["lifecycle"]["state"] == "start_timeout");
  CHECK(doc["lifecycle"]["ready_at"].is_null());
  CHECK(doc["startup_script"]["state"] == "timed_out");
  CHECK(doc["startup_script"]["duration_ms"] == 5000);
  CHECK(doc["startup_script"]["exit_code"].is_null());
  CHECK(doc["startup_script"]["signal"] == 9);
  CHECK(doc["shutdown_script"]["state"] == "none");
  CHECK(doc["apps"][0]["health"] == "healthy");
  CHECK(doc["apps"][0]["healthcheck"]["interval_s"] == 5);
  CHECK(doc["listening_ports"][0]["process"] == "node");
  CHECK(doc["stats"]["sessions_open"]["ssh"] == 2);
}

TEST_CASE("lifecycle state names and groups") {
  CHECK(std::string(lifecycle_state_name(LifecycleState::shutting_down)) == "shutting_down");
  CHECK(startup_finished(LifecycleState::ready));
  CHECK(startup_finished(LifecycleState::start_error));
  CHECK_FALSE(startup_finished(LifecycleState::starting));
  CHECK(lifecycle_final(LifecycleState::shutdown_timeout));
  CHECK_FALSE(lifecycle_final(LifecycleState::shutting_down));
}
