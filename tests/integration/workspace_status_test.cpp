// What the control plane and a person see of a running workspace, through the real relay: the
// status document the agent pushes (GET /api/v2/workspaces/{name}), `airlock status` and
// `airlock logs`. The agent's own behaviour (PID 1, scripts, health rules) is in
// agent_lifecycle_test.cpp; this is about it reaching the outside, at once and to the right people.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/deployment.hpp"
#include "tests/support/health_server.hpp"

using namespace airlock;
using namespace std::chrono_literals;
using nlohmann::json;
using test::HealthServer;

namespace {

json workspace_api(const test::Deployment& d, const std::string& name, const std::string& token) {
  auto [code, body] = d.http_get("/api/v2/workspaces/" + name, token);
  if (code != 200) return json{{"http_status", code}, {"body", body}};
  return json::parse(body, nullptr, false);
}

const json* app(const json& doc, const std::string& slug) {
  if (!doc.contains("status") || !doc["status"].is_object()) return nullptr;
  const json& status = doc["status"];
  if (!status.contains("apps") || !status["apps"].is_array()) return nullptr;
  for (const auto& a : status["apps"])
    if (a.value("slug", "") == slug) return &a;
  return nullptr;
}

}  // namespace

TEST_CASE("app health changes reach the relay's API at once: initializing, healthy, unhealthy after threshold, healthy") {
  HealthServer server;  // answers 503 until told otherwise
  test::Deployment d;
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port());
  d.start_agent("demo", {.manifest_json = R"({"apps": [{"slug": "web", "display_name": "Web", "url": ")" + url +
                                          R"(", "healthcheck": {"url": ")" + url +
                                          R"(/healthz", "interval": 1, "threshold": 3}}]})"});
  REQUIRE_MESSAGE(d.wait_connected("demo"), d.agent("demo")->output());

  // Every (health, consecutive failures) the API showed, in order, without repeats.
  std::vector<std::pair<std::string, int>> seen;
  auto poll_until = [&](const std::string& wanted, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      json doc = workspace_api(d, "demo", d.owner_token());
      if (const json* a = app(doc, "web")) {
        std::pair<std::string, int> now{a->value("health", ""), a->value("consecutive_failures", -1)};
        if (seen.empty() || seen.back() != now) seen.push_back(now);
        if (now.first == wanted) return true;
      }
      std::this_thread::sleep_for(50ms);
    }
    return false;
  };

  REQUIRE(poll_until("initializing", 5s));
  server.set(HealthServer::Mode::ok);
  REQUIRE(poll_until("healthy", 5s));

  server.take_answers();
  server.set(HealthServer::Mode::failing);
  REQUIRE(poll_until("unhealthy", 8s));
  auto seen_at = std::chrono::system_clock::now();
  std::vector<std::chrono::system_clock::time_point> failed_at;
  for (auto& [t, code] : server.take_answers())
    if (code == 503) failed_at.push_back(t);
  INFO("failures answered: " << failed_at.size());
  REQUIRE(failed_at.size() >= 3);
  // Pushed, not polled: the relay had it well within one check interval of the third failure.
  CHECK(seen_at - failed_at[2] < 900ms);
  for (auto& [health, failures] : seen) {
    INFO(health << " after " << failures << " failures");
    if (health == "unhealthy") CHECK(failures == 3);  // exactly the threshold, not one sooner
  }

  server.set(HealthServer::Mode::ok);
  REQUIRE(poll_until("healthy", 5s));
  CHECK(seen.back().second == 0);  // one success heals
}

TEST_CASE("the status API answers the right people: owner, auditor and the owning member; not other members") {
  test::Deployment d;
  d.start_agent("demo", {.owner = "alice"});
  REQUIRE_MESSAGE(d.wait_connected("demo"), d.agent("demo")->output());

  json doc;
  for (int i = 0; i < 50; ++i) {  // the first push follows the connection by a moment
    doc = workspace_api(d, "demo", d.owner_token());
    if (doc.contains("status") && doc["status"].is_object()) break;
    std::this_thread::sleep_for(100ms);
  }
  INFO(doc.dump(2));
  CHECK(doc["name"] == "demo");
  CHECK(doc["owner"] == "alice");
  CHECK(doc["status"]["lifecycle"]["state"] == "ready");
  CHECK(doc["status"]["agent"]["connected"] == true);
  CHECK(doc["agents"].size() == 1);

  CHECK(workspace_api(d, "demo", d.mint_user("alice", token::Role::member)).contains("status"));
  CHECK(workspace_api(d, "demo", d.mint_user("eve", token::Role::auditor)).contains("status"));
  json refused = workspace_api(d, "demo", d.mint_user("bob", token::Role::member));
  CHECK(refused["http_status"] == 403);
  CHECK(refused["body"].get<std::string>().find("member bob may not read alice's workspace demo") != std::string::npos);
  CHECK(workspace_api(d, "demo", "")["http_status"] == 401);
  CHECK(workspace_api(d, "demo", d.mint_user("admin", token::Role::owner, 60, 3600))["http_status"] == 401);  // expired
  json missing = workspace_api(d, "nope", d.owner_token());
  CHECK(missing["http_status"] == 404);
  CHECK(missing["body"].get<std::string>().find("workspace nope is not connected") != std::string::npos);
}

TEST_CASE("airlock status shows lifecycle, metadata and listening ports; airlock logs shows the startup script's output") {
  test::Deployment d;
  const int port = test::free_port();
  d.start_agent("demo", {.manifest_json = R"({
      "startup": {"script": "for i in 1 2 3 4 5; do echo startup-tick-$i; sleep 0.3; done; nohup python3 -m http.server )" +
                                          std::to_string(port) + R"( --bind 127.0.0.1 >/dev/null 2>&1 &", "timeout": 20},
      "metadata": [
        {"key": "greeting", "display_name": "Greeting", "script": "echo hello-from-metadata", "interval": 1, "timeout": 1},
        {"key": "stuck", "display_name": "Stuck", "script": "sleep 30", "interval": 5, "timeout": 1}]})"});
  REQUIRE_MESSAGE(d.wait_connected("demo"), d.agent("demo")->output());

  // Follow the log while the startup script is still printing.
  auto follow = d.cli_start({"logs", "demo", "-f"});
  CHECK_MESSAGE(follow->wait_for_line("startup-tick-5", 20s), follow->output());

  // Once started, the status shows everything.
  test::CliResult r;
  for (int i = 0; i < 60; ++i) {
    r = d.cli({"status", "demo"});
    if (r.out.find("ready") != std::string::npos && r.out.find(std::to_string(port) + " ") != std::string::npos &&
        r.out.find("timed out") != std::string::npos)
      break;
    std::this_thread::sleep_for(250ms);
  }
  INFO(r.all());
  CHECK(r.code == 0);
  CHECK(r.out.find("lifecycle   ready") != std::string::npos);
  CHECK(r.out.find("hello-from-metadata") != std::string::npos);
  // The web server the startup script left running, named by its process.
  auto line = r.out.find("  " + std::to_string(port) + " ");
  REQUIRE(line != std::string::npos);
  CHECK(r.out.substr(line, r.out.find('\n', line) - line).find("python3") != std::string::npos);
  CHECK(r.out.find("timed out") != std::string::npos);  // the stuck script was killed at its timeout
  // Stats: traffic through the tunnel, and the latency to the peers that asked.
  CHECK(r.out.find("traffic     0 B in, 0 B out") == std::string::npos);
  CHECK(r.out.find("  peer        ") != std::string::npos);

  auto j = d.cli({"status", "demo", "--json"});
  json doc = json::parse(j.out, nullptr, false);
  REQUIRE_FALSE(doc.is_discarded());
  CHECK(doc["lifecycle"]["state"] == "ready");

  auto logs = d.cli({"logs", "demo"});
  CHECK(logs.code == 0);
  CHECK(logs.out.find("startup-tick-1") != std::string::npos);
  CHECK(logs.out.find("startup-tick-5") != std::string::npos);

  follow->signal(SIGINT);
  CHECK(follow->wait(5s) == 0);
}
