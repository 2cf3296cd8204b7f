// airlock-agent's lifecycle, with the real binary and real processes: it runs as PID 1 of a PID
// namespace (`unshare --pid --fork --mount-proc`, as root) like in a container, or directly as
// a child subreaper. The test reads the agent's status file (--status-file), which the agent
// rewrites atomically on every change.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/health_server.hpp"
#include "tests/support/loopback.hpp"

using nlohmann::json;
using namespace std::chrono;
using namespace std::chrono_literals;
using airlock::test::HealthServer;
namespace fs = std::filesystem;

namespace {

const std::string kAgent = AIRLOCK_BINARY_DIR "/agent/airlock-agent";

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/airlock-agent-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
    chmod(path.c_str(), 0755);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

// Whether this machine lets us make a PID namespace; the reason is printed once when not.
bool can_unshare() {
  static int cached = -1;
  if (cached < 0) {
    int rc = std::system("unshare --pid --fork --mount-proc true >/dev/null 2>&1");
    cached = rc == 0 ? 1 : 0;
    if (!cached)
      MESSAGE("unshare --pid --fork --mount-proc is not permitted here (needs root or user namespaces): "
              "the agent runs as a child subreaper instead of PID 1");
  }
  return cached == 1;
}

struct ProcInfo {
  int pid = 0;
  int ppid = 0;
  char state = '?';
  std::string cmdline;  // arguments joined by spaces
  std::string pid_ns;
};

std::vector<ProcInfo> processes() {
  std::vector<ProcInfo> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::string base = std::string("/proc/") + e->d_name;
    std::string stat = read_file(base + "/stat");
    auto close = stat.rfind(')');
    if (stat.empty() || close == std::string::npos) continue;
    ProcInfo p;
    p.pid = std::atoi(e->d_name);
    std::istringstream rest(stat.substr(close + 2));
    rest >> p.state >> p.ppid;
    p.cmdline = read_file(base + "/cmdline");
    for (char& c : p.cmdline)
      if (c == '\0') c = ' ';
    while (!p.cmdline.empty() && p.cmdline.back() == ' ') p.cmdline.pop_back();
    char link[128];
    ssize_t n = readlink((base + "/ns/pid").c_str(), link, sizeof link - 1);
    if (n > 0) p.pid_ns.assign(link, static_cast<size_t>(n));
    out.push_back(p);
  }
  closedir(d);
  return out;
}

bool process_with_cmdline_exists(const std::string& cmdline) {
  for (const auto& p : processes())
    if (p.cmdline == cmdline && p.state != 'Z') return true;
  return false;
}

bool wait_until(const std::function<bool()>& done, milliseconds timeout) {
  auto deadline = steady_clock::now() + timeout;
  while (steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return done();
}

// The agent under test: its own state directory and status file, output captured to a file.
class AgentRun {
 public:
  AgentRun(const TempDir& dir, const std::string& manifest_json, std::vector<std::string> extra = {},
           bool as_pid1 = true)
      : dir_(dir), status_path_(dir / "state/status.json") {
    if (!manifest_json.empty()) write_file(dir / "manifest.json", manifest_json);
    std::vector<std::string> args;
    in_namespace_ = as_pid1 && can_unshare();
    if (in_namespace_) args = {"unshare", "--pid", "--fork", "--mount-proc"};
    args.push_back(kAgent);
    if (!manifest_json.empty()) args.push_back("--manifest=" + (dir / "manifest.json"));
    args.push_back("--state-dir=" + (dir / "state"));
    args.push_back("--status-file=" + status_path_);
    args.push_back("--log-level=debug");
    for (auto& a : extra) args.push_back(a);
    std::string log = dir / "agent.log";
    started_ = steady_clock::now();
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      unsetenv("AIRLOCK_RELAY_URL");
      unsetenv("AIRLOCK_AGENT_TOKEN");
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp(argv[0], argv.data());
      _exit(127);
    }
  }
  ~AgentRun() {
    if (pid_ > 0 && !exited_) {
      kill(agent_pid(), SIGKILL);
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // The agent's pid as this test sees it (the child of unshare when in a namespace).
  int agent_pid() {
    if (!in_namespace_) return pid_;
    if (agent_pid_ == 0)
      wait_until(
          [&] {
            for (const auto& p : processes())
              if (p.ppid == pid_) agent_pid_ = p.pid;
            return agent_pid_ != 0;
          },
          5s);
    return agent_pid_;
  }
  bool in_namespace() const { return in_namespace_; }

  std::optional<json> status() {
    std::string text = read_file(status_path_);
    if (text.empty()) return std::nullopt;
    try {
      return json::parse(text);
    } catch (...) {
      return std::nullopt;  // never happens with an atomic rename; counted as not yet written
    }
  }

  // Waits for the status document to satisfy pred; returns it (or fails the test).
  json wait_status(const std::function<bool(const json&)>& pred, milliseconds timeout, const std::string& what) {
    json last;
    bool ok = wait_until(
        [&] {
          auto s = status();
          if (!s) return false;
          last = *s;
          return pred(last);
        },
        timeout);
    if (!ok) {
      MESSAGE("waited " << timeout.count() << " ms for: " << what << "\nlast status: " << last.dump(2)
                        << "\nagent log:\n" << log());
    }
    REQUIRE(ok);
    return last;
  }

  json wait_lifecycle(const std::string& state, milliseconds timeout = 10s) {
    return wait_status([&](const json& s) { return s["lifecycle"]["state"] == state; }, timeout,
                       ("lifecycle state " + state).c_str());
  }

  void signal(int sig) { REQUIRE(kill(agent_pid(), sig) == 0); }

  // The exit status of airlock-agent (unshare passes it on), or -signal.
  int wait_exit(milliseconds timeout = 15s) {
    int status = 0;
    bool done = wait_until(
        [&] {
          pid_t r = waitpid(pid_, &status, WNOHANG);
          return r == pid_;
        },
        timeout);
    if (!done) MESSAGE("agent did not exit; log:\n" << log());
    REQUIRE(done);
    exited_ = true;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return -WTERMSIG(status);
  }

  std::string log() const { return read_file(dir_ / "agent.log"); }
  std::string state_file(const std::string& name) const { return read_file(dir_ / ("state/" + name)); }
  steady_clock::time_point started() const { return started_; }

 private:
  const TempDir& dir_;
  std::string status_path_;
  bool in_namespace_ = false;
  pid_t pid_ = -1;
  int agent_pid_ = 0;
  bool exited_ = false;
  steady_clock::time_point started_;
};

// Runs the agent to completion for configurations that must be refused.
struct Refusal {
  int exit_code;
  std::string output;
};
Refusal run_refused(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
  TempDir dir;
  std::string cmd;
  for (const auto& e : env) cmd += e + " ";
  cmd += kAgent;
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " >" + (dir / "out") + " 2>&1";
  int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read_file(dir / "out")};
}

system_clock::time_point parse_time(const json& v) {
  std::string s = v.get<std::string>();  // 2026-11-23T09:30:00.123Z
  std::tm tm{};
  strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  auto t = system_clock::from_time_t(timegm(&tm));
  return t + milliseconds(std::atoi(s.c_str() + 20));
}

const json* find_app(const json& s, const std::string& slug) {
  for (const auto& a : s["apps"])
    if (a["slug"] == slug) return &a;
  return nullptr;
}

const json* find_metadata(const json& s, const std::string& key) {
  for (const auto& m : s["metadata"])
    if (m["key"] == key) return &m;
  return nullptr;
}

}  // namespace

TEST_CASE("bad configuration is refused before anything starts, naming the field, with status 2") {
  TempDir dir;
  std::string marker = dir / "started";
  // A valid startup script next to a bad field: refusing must happen before it could run.
  write_file(dir / "bad.json", R"({"startup": "touch )" + marker +
                                   R"(", "apps": [{"slug": "web", "url": "http://127.0.0.1:1", "healthcheck": {"url": "http://127.0.0.1:1/", "interval": 0}}]})");
  auto r = run_refused({"--manifest=" + (dir / "bad.json"), "--state-dir=" + (dir / "state")});
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("apps[0].healthcheck.interval") != std::string::npos);
  CHECK_FALSE(fs::exists(marker));
  CHECK_FALSE(fs::exists(dir / "state"));

  write_file(dir / "typo.json", R"({"policy": {"block_filetransfer": true}})");
  r = run_refused({"--manifest=" + (dir / "typo.json"), "--state-dir=" + (dir / "state")});
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("policy.block_filetransfer: unknown field") != std::string::npos);

  r = run_refused({"--manifest=" + (dir / "missing.json"), "--state-dir=" + (dir / "state")});
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("missing.json") != std::string::npos);

  r = run_refused({"--bogus-flag=1"});
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("--bogus-flag") != std::string::npos);

  r = run_refused({"--state-dir=" + (dir / "state")}, {"AIRLOCK_RELAY_URL=http://relay.example.com"});
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("AIRLOCK_RELAY_URL") != std::string::npos);
  CHECK(r.output.find("wss://") != std::string::npos);

  // A flag wins over its variable, and the error names the flag that was used.
  r = run_refused({"--relay-url=ftp://x", "--state-dir=" + (dir / "state")}, {"AIRLOCK_RELAY_URL=wss://ok.example.com"});
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("--relay-url") != std::string::npos);

  r = run_refused({"--stop-grace=soon", "--state-dir=" + (dir / "state")});
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("--stop-grace") != std::string::npos);

  r = run_refused({"--help"});
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("AIRLOCK_AGENT_MANIFEST") != std::string::npos);
}

TEST_CASE("as PID 1: orphans are reaped, SIGTERM runs the shutdown script, leftovers are stopped, exit 0") {
  TempDir dir;
  std::string marker = dir / "shutdown-ran";
  // Double forks leave orphans that re-parent to PID 1; a daemon that ignores SIGTERM must be
  // killed after the stop grace.
  std::string manifest = R"({
    "startup": {"script": "sh -c 'sleep 0.2 &' & (sleep 0.3 &) ; sh -c '(sleep 0.1 &) &'; sh -c 'trap \"\" TERM; exec sleep 1000.5' >/dev/null 2>&1 & echo started; exit 0", "timeout": 20},
    "shutdown": {"script": "echo shutting down; touch )" + marker + R"(", "timeout": 10}
  })";
  AgentRun agent(dir, manifest, {"--stop-grace=500ms"});
  auto s = agent.wait_lifecycle("ready");
  CHECK(s["agent"]["pid1"] == agent.in_namespace());
  if (agent.in_namespace()) CHECK(s["agent"]["pid"] == 1);
  CHECK(s["startup_script"]["state"] == "succeeded");
  CHECK(s["startup_script"]["exit_code"] == 0);

  int agent_pid = agent.agent_pid();
  REQUIRE(agent_pid > 0);
  std::string ns;
  for (const auto& p : processes())
    if (p.pid == agent_pid) ns = p.pid_ns;
  // No zombie stays: in the namespace when PID 1, else among the agent's children.
  auto zombies = [&] {
    int n = 0;
    for (const auto& p : processes()) {
      bool ours = agent.in_namespace() ? p.pid_ns == ns : p.ppid == agent_pid;
      if (ours && p.state == 'Z') ++n;
    }
    return n;
  };
  std::this_thread::sleep_for(600ms);  // every short-lived orphan has exited by now
  CHECK(wait_until([&] { return zombies() == 0; }, 3s));
  s = agent.wait_status([](const json& st) { return st["agent"]["reaped_orphans"].get<int>() >= 3; }, 5s,
                        "three orphans reaped");
  CHECK(process_with_cmdline_exists("sleep 1000.5"));

  auto before_term = steady_clock::now();
  agent.signal(SIGTERM);
  int code = agent.wait_exit();
  auto took = steady_clock::now() - before_term;
  CHECK(code == 0);
  CHECK(fs::exists(marker));
  CHECK_FALSE(process_with_cmdline_exists("sleep 1000.5"));
  // SIGTERM was ignored, so SIGKILL came after the 500 ms grace, not later than a few seconds.
  CHECK(took >= 500ms);
  CHECK(took < 5s);
  s = *agent.status();
  CHECK(s["lifecycle"]["state"] == "off");
  CHECK(s["shutdown_script"]["state"] == "succeeded");
  CHECK(agent.state_file("logs/shutdown.log").find("shutting down") != std::string::npos);
}

TEST_CASE("not PID 1: as a child subreaper the agent still reaps its scripts' orphans") {
  TempDir dir;
  AgentRun agent(dir, R"({"startup": "sh -c 'sleep 0.2 &' & (sleep 0.2 &); exit 0"})", {}, /*as_pid1=*/false);
  auto s = agent.wait_lifecycle("ready");
  CHECK(s["agent"]["pid1"] == false);
  CHECK(s["agent"]["subreaper"] == true);
  int agent_pid = agent.agent_pid();
  std::this_thread::sleep_for(500ms);
  CHECK(wait_until(
      [&] {
        for (const auto& p : processes())
          if (p.ppid == agent_pid && p.state == 'Z') return false;
        return true;
      },
      3s));
  agent.wait_status([](const json& st) { return st["agent"]["reaped_orphans"].get<int>() >= 2; }, 5s, "orphans reaped");
  agent.signal(SIGINT);
  CHECK(agent.wait_exit() == 0);
}

TEST_CASE("a failing startup script gives start_error with its exit code, and its output reaches the log") {
  TempDir dir;
  AgentRun agent(dir, R"({"startup": {"script": "echo first line; echo to stderr >&2; exit 3", "blocks_login": true}})");
  auto s = agent.wait_lifecycle("start_error");
  CHECK(s["startup_script"]["state"] == "failed");
  CHECK(s["startup_script"]["exit_code"] == 3);
  CHECK(s["startup_script"]["error"] == "exited with status 3");
  // In the in-memory tail (the status document carries its last lines)...
  s = agent.wait_status([](const json& st) { return st["startup_script"]["log_lines"] == 2; }, 3s, "two log lines");
  CHECK(s["startup_script"]["log_tail"] == json::array({"first line", "to stderr"}));
  CHECK(s["lifecycle"]["login_blocked"] == false);  // a failed start no longer holds logins
  // ...and in the log file in the state directory.
  CHECK(agent.state_file("logs/startup.log") == "first line\nto stderr\n");
  agent.signal(SIGTERM);
  CHECK(agent.wait_exit() == 0);
}

TEST_CASE("a startup script past its timeout gives start_timeout and is killed; logins wait while it runs") {
  TempDir dir;
  AgentRun agent(dir, R"({"startup": {"script": "echo waiting; sleep 37.25; echo never", "timeout": 1, "blocks_login": true}})");
  auto s = agent.wait_lifecycle("starting", 5s);
  CHECK(s["lifecycle"]["login_blocked"] == true);
  CHECK(wait_until([] { return process_with_cmdline_exists("sleep 37.25"); }, 3s));
  s = agent.wait_lifecycle("start_timeout", 5s);
  CHECK(s["startup_script"]["state"] == "timed_out");
  CHECK(s["startup_script"]["signal"] == SIGKILL);
  CHECK(s["lifecycle"]["login_blocked"] == false);
  auto took = parse_time(s["startup_script"]["finished_at"]) - parse_time(s["startup_script"]["started_at"]);
  CHECK(took >= 1s);
  CHECK(took < 2500ms);
  CHECK(wait_until([] { return !process_with_cmdline_exists("sleep 37.25"); }, 2s));
  CHECK(agent.state_file("logs/startup.log") == "waiting\n");
  agent.signal(SIGTERM);
  CHECK(agent.wait_exit() == 0);
}

TEST_CASE("SIGTERM while the startup script runs is forwarded to it") {
  TempDir dir;
  AgentRun agent(dir, R"({"startup": "sleep 55.5", "shutdown": "exit 4"})");
  agent.wait_lifecycle("starting");
  CHECK(wait_until([] { return process_with_cmdline_exists("sleep 55.5"); }, 3s));
  agent.signal(SIGTERM);
  // A failing shutdown script makes a shutdown_error and exit status 1.
  CHECK(agent.wait_exit() == 1);
  auto s = *agent.status();
  CHECK(s["lifecycle"]["state"] == "shutdown_error");
  CHECK(s["startup_script"]["signal"] == SIGTERM);
  CHECK(s["shutdown_script"]["exit_code"] == 4);
  CHECK_FALSE(process_with_cmdline_exists("sleep 55.5"));
}

TEST_CASE("a shutdown script past its timeout gives shutdown_timeout and exit status 1") {
  TempDir dir;
  AgentRun agent(dir, R"({"shutdown": {"script": "sleep 66.5", "timeout": 1}})");
  agent.wait_lifecycle("ready");
  agent.signal(SIGTERM);
  CHECK(agent.wait_exit() == 1);
  auto s = *agent.status();
  CHECK(s["lifecycle"]["state"] == "shutdown_timeout");
  CHECK(s["shutdown_script"]["state"] == "timed_out");
  CHECK_FALSE(process_with_cmdline_exists("sleep 66.5"));
}

TEST_CASE("app health: initializing -> healthy -> unhealthy after exactly `threshold` failures -> healthy after one success") {
  HealthServer server;  // answers 503 until told otherwise
  TempDir dir;
  const int threshold = 3;
  std::string url = "http://127.0.0.1:" + std::to_string(server.port());
  AgentRun agent(dir, R"({"apps": [
      {"slug": "web", "url": ")" + url + R"(", "healthcheck": {"url": ")" + url + R"(/healthz", "interval": 1, "threshold": 3}},
      {"slug": "plain", "url": "http://127.0.0.1:9"},
      {"slug": "tls", "url": "https://127.0.0.1:9", "healthcheck": {"url": "https://127.0.0.1:9/healthz", "interval": 1}}]})");
  auto health = [](const json& s, const char* slug) { return (*find_app(s, slug))["health"].get<std::string>(); };

  auto s = agent.wait_status([](const json& st) { return !st["apps"].empty(); }, 5s, "apps listed");
  CHECK(health(s, "web") == "initializing");
  CHECK(health(s, "plain") == "disabled");
  CHECK(health(s, "tls") == "disabled");
  CHECK((*find_app(s, "tls"))["health_detail"].get<std::string>().find("https health checks are not supported yet") == 0);

  // One failure is not enough to call it unhealthy.
  std::this_thread::sleep_for(300ms);
  CHECK(health(*agent.status(), "web") == "initializing");

  server.set(HealthServer::Mode::ok);
  s = agent.wait_status([&](const json& st) { return health(st, "web") == "healthy"; }, 3s, "healthy");

  server.take_answers();
  server.set(HealthServer::Mode::failing);
  s = agent.wait_status([&](const json& st) { return health(st, "web") == "unhealthy"; }, 6s, "unhealthy");
  std::vector<system_clock::time_point> failed_at;
  for (auto& [t, code] : server.take_answers())
    if (code == 503) failed_at.push_back(t);
  CHECK(static_cast<int>(failed_at.size()) == threshold);  // not one more, not one fewer
  const json& web = *find_app(s, "web");
  CHECK(web["consecutive_failures"] == threshold);
  CHECK(web["health_detail"] == "status 503");
  // Checks are one interval apart: the threshold-th failure came (threshold-1) intervals after the first.
  REQUIRE(failed_at.size() >= 2);
  auto spread = failed_at.back() - failed_at.front();
  CHECK(spread >= 1800ms);
  CHECK(spread <= 2600ms);  // room for a loaded machine's late timers
  auto changed = parse_time(web["health_changed_at"]);
  CHECK(changed >= failed_at.back() - 50ms);
  CHECK(changed <= failed_at.back() + 500ms);

  server.set(HealthServer::Mode::ok);
  s = agent.wait_status([&](const json& st) { return health(st, "web") == "healthy"; }, 3s, "healthy again");
  int successes = 0;
  for (auto& [t, code] : server.take_answers()) successes += code == 200;
  CHECK(successes == 1);  // one success heals

  server.set(HealthServer::Mode::down);
  s = agent.wait_status([&](const json& st) { return health(st, "web") == "unhealthy"; }, 6s, "unhealthy when down");
  CHECK((*find_app(s, "web"))["health_detail"] == "connection refused");

  agent.signal(SIGTERM);
  CHECK(agent.wait_exit() == 0);
}

TEST_CASE("metadata: values appear, output is trimmed and cut, a hanging script is killed at its timeout") {
  TempDir dir;
  AgentRun agent(dir, R"({"metadata": [
      {"key": "greeting", "script": "printf '  hello metadata  \\n\\n'", "interval": 1, "timeout": 1},
      {"key": "long", "script": "head -c 10000 /dev/zero | tr '\\\\0' x", "interval": 5, "timeout": 2},
      {"key": "broken", "script": "echo partial; exit 7", "interval": 5, "timeout": 2},
      {"key": "hang", "script": "echo before; sleep 48.25", "interval": 5, "timeout": 1}]})");
  auto s = agent.wait_status(
      [](const json& st) {
        auto* m = find_metadata(st, "greeting");
        return m && (*m)["collected_at"].is_string();
      },
      5s, "greeting collected");
  CHECK((*find_metadata(s, "greeting"))["value"] == "hello metadata");
  CHECK((*find_metadata(s, "greeting"))["error"] == "");

  s = agent.wait_status([](const json& st) { return (*find_metadata(st, "long"))["collected_at"].is_string(); }, 5s,
                        "long collected");
  std::string long_value = (*find_metadata(s, "long"))["value"];
  CHECK(long_value.size() <= 4096);
  CHECK(long_value.size() >= 4090);
  CHECK(long_value.substr(long_value.size() - 3) == "\xE2\x80\xA6");

  s = agent.wait_status([](const json& st) { return (*find_metadata(st, "broken"))["error"] != ""; }, 5s,
                        "broken reported");
  CHECK((*find_metadata(s, "broken"))["error"] == "exited with status 7");
  CHECK((*find_metadata(s, "broken"))["value"] == "partial");

  CHECK(wait_until([] { return process_with_cmdline_exists("sleep 48.25"); }, 3s));
  s = agent.wait_status([](const json& st) { return (*find_metadata(st, "hang"))["error"] != ""; }, 5s,
                        "hang timed out");
  const json& hang = *find_metadata(s, "hang");
  CHECK(hang["error"].get<std::string>().find("timed out after 1 s") == 0);
  CHECK(hang["value"] == "before");
  // Killed with its whole process group, before the next run (interval 5 s) could start one.
  CHECK(wait_until([] { return !process_with_cmdline_exists("sleep 48.25"); }, 1s));

  agent.signal(SIGTERM);
  CHECK(agent.wait_exit() == 0);
}

TEST_CASE("listening ports show with their process names") {
  // The test's own listener: the agent runs outside a PID namespace here so it can see us.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = airlock::test::loopback_address(0);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(listen(fd, 4) == 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  std::string comm = read_file("/proc/self/comm");
  comm.erase(comm.find_last_not_of('\n') + 1);

  TempDir dir;
  AgentRun agent(dir, "", {"--ports-interval=200ms"}, /*as_pid1=*/false);
  auto s = agent.wait_status(
      [&](const json& st) {
        for (const auto& p : st["listening_ports"])
          if (p["port"] == port) return true;
        return false;
      },
      5s, "test listener listed");
  for (const auto& p : s["listening_ports"]) {
    if (p["port"] != port) continue;
    CHECK(p["network"] == "tcp");
    CHECK(p["address"] == "127.0.0.1");
    CHECK(p["process"] == comm);
    CHECK(p["pid"] == getpid());
  }
  close(fd);
  agent.wait_status(
      [&](const json& st) {
        for (const auto& p : st["listening_ports"])
          if (p["port"] == port) return false;
        return true;
      },
      5s, "closed listener gone");
  agent.signal(SIGTERM);
  CHECK(agent.wait_exit() == 0);
}

TEST_CASE("as PID 1, a daemon the startup script leaves listening shows with its name") {
  if (!can_unshare()) return;
  // Find a free port, then let a perl daemon (perl-base is in every Debian image) listen on it.
  const int port = airlock::test::free_loopback_port();
  REQUIRE(port > 0);
  TempDir dir;
  std::string script = "perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(LocalAddr => q{127.0.0.1:" +
                       std::to_string(port) + "}, Listen => 5, ReuseAddr => 1) or die; sleep 60' &";
  json manifest = {{"startup", script}};
  AgentRun agent(dir, manifest.dump(), {"--ports-interval=200ms", "--stop-grace=1s"});
  auto s = agent.wait_status(
      [&](const json& st) {
        for (const auto& p : st["listening_ports"])
          if (p["port"] == port && p["process"] == "perl") return true;
        return false;
      },
      8s, "perl listener listed");
  agent.signal(SIGTERM);
  CHECK(agent.wait_exit() == 0);
}
