// bench_agent: the agent's footprint and start-up time, as one JSON object.
//
//   idle_rss_kib          VmRSS of a running agent that has settled (a startup script done, one
//                         app health-checked and one metadata item collected every second)
//   idle_rss_anon_kib     of which the agent's own memory (RssAnon)
//   idle_rss_file_kib     and mapped files (RssFile): its binary and shared libraries, shared
//                         with other processes and reclaimable; how much of a file the kernel
//                         maps on a page fault varies by kernel, so this part varies by machine
//   start_to_ready_ms     from exec of airlock-agent to its status file saying lifecycle "ready"
//                         (median of the runs; includes running a one-command startup script)
//   agent_ready_ms        the same measured by the agent itself (status: lifecycle.ready_at -
//                         agent.started_at), without process start-up and file polling
//   start_to_connected_ms null until the agent has a relay connection to measure
// Targets sit next to the measurements. The agent binary is found beside this one
// (../agent/airlock-agent) or named by AIRLOCK_AGENT_BINARY.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/stats.hpp"
#include "tests/support/proc.hpp"

namespace fs = std::filesystem;
using namespace std::chrono;
using nlohmann::json;

namespace {

constexpr int kRuns = 5;
constexpr double kRssTargetKib = 8 * 1024;
constexpr double kReadyTargetMs = 50;

using airlock::test::read_file;
using airlock::test::status_kib;
using airlock::test::vm_rss_kib;
using airlock::bench::median;

double parse_ms(const std::string& t) {  // "2026-11-23T09:30:00.123Z" -> ms since epoch
  std::tm tm{};
  strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  return static_cast<double>(timegm(&tm)) * 1000.0 + std::atof(t.c_str() + 19) * 1000.0;
}

struct Run {
  double start_to_ready_ms = -1;
  double agent_ready_ms = -1;
  long idle_rss_kib = -1;
  long idle_rss_anon_kib = -1;  // of which the process's own memory
  long idle_rss_file_kib = -1;  // and mapped files: the binary and shared libraries (shared, reclaimable)
};

Run run_once(const std::string& agent, const std::string& dir, bool measure_rss) {
  std::string status = dir + "/state/status.json";
  fs::remove(status);
  auto t0 = steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    std::string manifest = "--manifest=" + dir + "/manifest.json", state = "--state-dir=" + dir + "/state";
    execl(agent.c_str(), agent.c_str(), manifest.c_str(), state.c_str(), "--log-level=warn", nullptr);
    _exit(127);
  }
  Run r;
  while (steady_clock::now() - t0 < 10s) {
    std::string text = read_file(status);
    if (!text.empty()) {
      json s = json::parse(text, nullptr, false);
      if (!s.is_discarded() && s["lifecycle"]["state"] == "ready") {
        r.start_to_ready_ms = duration<double, std::milli>(steady_clock::now() - t0).count();
        r.agent_ready_ms = parse_ms(s["lifecycle"]["ready_at"]) - parse_ms(s["agent"]["started_at"]);
        break;
      }
    }
    std::this_thread::sleep_for(200us);
  }
  if (measure_rss) {
    std::this_thread::sleep_for(3s);  // health checks and metadata runs have happened by now
    r.idle_rss_kib = vm_rss_kib(pid);
    r.idle_rss_anon_kib = status_kib(pid, "RssAnon");
    r.idle_rss_file_kib = status_kib(pid, "RssFile");
  }
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  return r;
}

}  // namespace

int main() {
  std::string agent;
  if (const char* e = std::getenv("AIRLOCK_AGENT_BINARY")) agent = e;
  else agent = (fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "agent" / "airlock-agent").string();
  if (!fs::exists(agent)) {
    std::cerr << "bench_agent: no agent binary at " << agent << " (build airlock-agent or set AIRLOCK_AGENT_BINARY)\n";
    return 1;
  }
  char tmpl[] = "/tmp/airlock-bench-agent-XXXXXX";
  if (!mkdtemp(tmpl)) return 1;
  std::string dir = tmpl;
  std::ofstream(dir + "/manifest.json") << R"({
    "startup": "true",
    "apps": [{"slug": "code-server", "url": "http://127.0.0.1:9",
              "healthcheck": {"url": "http://127.0.0.1:9/healthz", "interval": 1, "threshold": 3}}],
    "metadata": [{"key": "load", "script": "cat /proc/loadavg", "interval": 1, "timeout": 1}]
  })";

  std::vector<double> ready, agent_ready;
  Run first;
  for (int i = 0; i < kRuns; ++i) {
    Run r = run_once(agent, dir, i == 0);
    if (i == 0) first = r;
    ready.push_back(r.start_to_ready_ms);
    agent_ready.push_back(r.agent_ready_ms);
  }
  fs::remove_all(dir);

  json out = {
      {"benchmark", "agent"},
      {"runs", kRuns},
      {"idle_rss_kib", first.idle_rss_kib},
      {"idle_rss_anon_kib", first.idle_rss_anon_kib},
      {"idle_rss_file_kib", first.idle_rss_file_kib},
      {"idle_rss_target_kib", kRssTargetKib},
      {"idle_rss_within_target", first.idle_rss_kib > 0 && first.idle_rss_kib <= kRssTargetKib},
      {"start_to_ready_ms", median(ready)},
      {"start_to_ready_max_ms", *std::max_element(ready.begin(), ready.end())},
      {"start_to_ready_target_ms", kReadyTargetMs},
      {"start_to_ready_within_target", median(ready) > 0 && median(ready) <= kReadyTargetMs},
      {"agent_ready_ms", median(agent_ready)},
      {"start_to_connected_ms", nullptr},
      {"start_to_connected_note", "the agent has no relay connection yet; ready is lifecycle ready"},
  };
  std::cout << out.dump() << "\n";
  return 0;
}
