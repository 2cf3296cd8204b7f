// bench_ssh: stock OpenSSH to a workspace through airlock (airlock-relay --dev and an agent on
// loopback, `airlock proxy` as the ProxyCommand) next to the same OpenSSH client to its own sshd
// on loopback. One run, one JSON object on stdout (progress on stderr).
//
//   connect   ms from starting `ssh HOST 'echo ready'` to its first byte of output, median of runs
//             taken alternately (a neighbour's burst of CPU hits both); ratio airlock/direct.
//   scp       MB/s of an upload and a download of one file (best of a few); ratio airlock/direct.
//   echo      keystroke echo on an interactive `ssh -tt` session (the remote program echoes each
//             byte): p50/p99 idle, and while a bulk upload runs on the same SSH connection
//             (ControlMaster: through airlock that is the same tunnel and stream). The added ms
//             (airlock - direct) are what the targets are about; ratios as well.
//
// Targets sit next to the numbers: connect at most 1.2x OpenSSH direct; echo adds at most 1 ms
// idle and 5 ms under load. Binaries are found beside this one (../relay/airlock-relay,
// ../agent/airlock-agent, ../cli/airlock). AIRLOCK_BENCH_QUICK=1 makes the runs smaller.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/openssh.hpp"
#include "bench/stats.hpp"
#include "tests/support/loopback.hpp"
#include "tests/support/proc.hpp"
#include "tests/support/ssh_client.hpp"

namespace fs = std::filesystem;
using namespace std::chrono;
using nlohmann::json;
using Clock = steady_clock;

namespace {

constexpr double kTargetConnectRatio = 1.2;
constexpr double kTargetEchoAddedIdleMs = 1.0;
constexpr double kTargetEchoAddedLoadMs = 5.0;

bool quick() { return std::getenv("AIRLOCK_BENCH_QUICK") != nullptr; }
void note(const std::string& s) { std::cerr << "bench_ssh: " << s << std::endl; }
// Unwinds to main, so that every child (relay, agent, sshd, ssh) is stopped on the way out.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] void die(const std::string& s) { throw Failure(s); }

using airlock::test::read_file;

int free_port() {
  int port = airlock::test::free_loopback_port();
  if (port < 0) die("no free port");
  return port;
}

using airlock::test::shell_quote;
using airlock::bench::percentile;

// A child in its own process group, killed with it at the end. stdin/stdout/stderr are given fds
// (-1: /dev/null).
class Child {
 public:
  Child(const std::vector<std::string>& argv, int in = -1, int out = -1, int err = -1, bool own_tty = false) {
    pid_ = ::fork();
    if (pid_ == 0) {
      if (own_tty) {
        ::setsid();
        if (in >= 0) ::ioctl(in, TIOCSCTTY, 0);
      } else {
        ::setpgid(0, 0);
      }
      int null = ::open("/dev/null", O_RDWR);
      ::dup2(in >= 0 ? in : null, 0);
      ::dup2(out >= 0 ? out : null, 1);
      ::dup2(err >= 0 ? err : null, 2);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Child() { stop(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  pid_t pid() const { return pid_; }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGTERM);
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(20ms);
    }
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
};

int shell(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()); }

bool wait_for_text(const fs::path& file, const std::string& text, seconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (read_file(file).find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

double round3(double x) { return std::round(x * 1000) / 1000; }

// ---- the two ways to reach a shell -------------------------------------------------------------

// ssh's options for one way: everything but the remote command.
struct Target {
  std::string name;
  std::vector<std::string> ssh_options;  // -F /dev/null, identity or ProxyCommand, ...
  std::string host;
  std::vector<std::string> ssh(const std::vector<std::string>& extra, const std::vector<std::string>& command) const {
    std::vector<std::string> argv = {"ssh"};
    argv.insert(argv.end(), ssh_options.begin(), ssh_options.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(host);
    argv.insert(argv.end(), command.begin(), command.end());
    return argv;
  }
  // The same options as one string, for scp -o / -S.
  std::string scp_options() const {
    std::string s;
    for (const auto& o : ssh_options) s += " " + shell_quote(o);
    return s;
  }
};

std::vector<std::string> common_options(const fs::path& dir) {
  return {"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
          "-o", "UserKnownHostsFile=" + (dir / "known_hosts").string(), "-o", "LogLevel=ERROR"};
}

// The relay, the agent and their environment for `airlock proxy`.
struct Airlock {
  std::unique_ptr<Child> relay, agent;
  Target target;

  Airlock(const fs::path& bin, const fs::path& dir) {
    fs::create_directories(dir);
    int port = free_port();
    int relay_log = ::open((dir / "relay.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    relay = std::make_unique<Child>(std::vector<std::string>{(bin / "relay" / "airlock-relay").string(), "--dev",
                                                             "--state-dir", (dir / "relay").string(), "--listen",
                                                             "127.0.0.1:" + std::to_string(port)},
                                    -1, relay_log, relay_log);
    ::close(relay_log);
    if (!wait_for_text(dir / "relay" / "dev.env", "AIRLOCK_ISSUER_PUBLIC_KEY", 20s) ||
        !wait_for_text(dir / "relay.log", "listening on", 20s))
      die("the relay did not start: " + read_file(dir / "relay.log"));
    std::string env_text = read_file(dir / "relay" / "dev.env");
    auto value = [&](const std::string& name) {
      auto at = env_text.find(name + "=");
      if (at == std::string::npos) die("no " + name + " in dev.env");
      at += name.size() + 1;
      return env_text.substr(at, env_text.find('\n', at) - at);
    };
    std::string url = "ws://127.0.0.1:" + std::to_string(port) + "/";
    ::setenv("AIRLOCK_RELAY_URL", url.c_str(), 1);
    ::setenv("AIRLOCK_AGENT_TOKEN", value("AIRLOCK_AGENT_TOKEN").c_str(), 1);
    ::setenv("AIRLOCK_ISSUER_PUBLIC_KEY", value("AIRLOCK_ISSUER_PUBLIC_KEY").c_str(), 1);
    ::setenv("AIRLOCK_AGENT_STATE_DIR", (dir / "agent").string().c_str(), 1);
    ::unsetenv("AIRLOCK_AGENT_MANIFEST");
    int agent_log = ::open((dir / "agent.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    agent = std::make_unique<Child>(std::vector<std::string>{(bin / "agent" / "airlock-agent").string(), "--log-level", "info"},
                                    -1, agent_log, agent_log);
    ::close(agent_log);
    // The agent's credentials are for the agent only; the CLI gets the user's.
    ::unsetenv("AIRLOCK_AGENT_TOKEN");
    ::unsetenv("AIRLOCK_RELAY_URL");
    if (!wait_for_text(dir / "agent.log", "connected to relay", 20s)) die("the agent did not connect: " + read_file(dir / "agent.log"));
    ::setenv("AIRLOCK_URL", url.c_str(), 1);
    ::setenv("AIRLOCK_TOKEN", value("AIRLOCK_OWNER_TOKEN").c_str(), 1);
    target.name = "airlock";
    target.ssh_options = common_options(dir);
    target.ssh_options.insert(target.ssh_options.end(),
                              {"-o", "ProxyCommand=" + shell_quote((bin / "cli" / "airlock").string()) + " proxy %h"});
    target.host = "airlock.demo";
  }
};

// sshd -D of our own on a free loopback port (bench/openssh.hpp), and how to log in to it.
struct Sshd {
  std::unique_ptr<Child> sshd;
  Target target;

  explicit Sshd(const fs::path& dir) {
    auto server = airlock::bench::prepare_loopback_sshd(dir, free_port());
    if (!server.error.empty()) die(server.error);
    int log = ::open(server.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    sshd = std::make_unique<Child>(server.argv, -1, log, log);
    ::close(log);
    target.name = "direct";
    target.ssh_options = common_options(dir);
    target.ssh_options.insert(target.ssh_options.end(),
                              {"-i", server.user_key.string(), "-p", std::to_string(server.port)});
    target.host = server.user + "@127.0.0.1";
    for (int i = 0; i < 100; ++i) {
      if (shell("ssh" + target.scp_options() + " " + target.host + " true") == 0) return;
      std::this_thread::sleep_for(100ms);
    }
    die("cannot log in to our own sshd: " + read_file(server.log));
  }
};

// ---- measurements -------------------------------------------------------------------------------

// ms from starting ssh to the first byte the remote command printed.
double time_to_first_output(const Target& t) {
  int fds[2];
  if (::pipe(fds) != 0) die("pipe");
  auto start = Clock::now();
  Child ssh(t.ssh({}, {"echo ready"}), -1, fds[1]);
  ::close(fds[1]);
  pollfd p{fds[0], POLLIN, 0};
  double ms = -1;
  if (::poll(&p, 1, 30000) > 0) {
    char c;
    if (::read(fds[0], &c, 1) == 1) ms = duration<double, std::milli>(Clock::now() - start).count();
  }
  ssh.wait();
  ::close(fds[0]);
  return ms;
}

// MB/s of scp of `file` up to `remote` (or back down); -1 on failure.
double scp_rate(const Target& t, const fs::path& file, const fs::path& remote, bool upload, size_t bytes) {
  std::string options = t.scp_options();
  std::string host = t.host;
  std::string local = shell_quote(file.string()), far = host + ":" + shell_quote(remote.string());
  std::string command = "scp -q" + options + " " + (upload ? local + " " + far : far + " " + local);
  // scp takes -P for the port: ssh's -p means something else to it.
  auto p = command.find("'-p' ");
  if (p != std::string::npos) command.replace(p, 4, "'-P'");
  if (std::getenv("AIRLOCK_BENCH_DEBUG")) note(command);
  std::error_code ec;
  fs::remove(upload ? remote : file, ec);
  auto start = Clock::now();
  if (shell(command) != 0) return -1;
  double seconds = duration<double>(Clock::now() - start).count();
  if (fs::file_size(upload ? remote : file, ec) != bytes) return -1;  // it must really have moved
  return static_cast<double>(bytes) / (1 << 20) / seconds;
}

// An interactive `ssh -tt` whose remote end echoes every byte back; latencies of single keystrokes.
class EchoSession {
 public:
  EchoSession(const Target& t, const std::vector<std::string>& extra) {
    winsize size{};
    size.ws_col = 80;
    size.ws_row = 24;
    int slave = -1;
    if (::openpty(&master_, &slave, nullptr, nullptr, &size) != 0) die("openpty");
    std::vector<std::string> options = extra;
    options.push_back("-tt");
    child_ = std::make_unique<Child>(t.ssh(options, {"stty raw -echo; echo READY; exec cat"}), slave, slave, slave, true);
    ::close(slave);
    ready_ = read_until("READY", 30s);
    std::this_thread::sleep_for(100ms);
    drain();
  }
  bool ready() const { return ready_; }

  // One keystroke: ms until it is back.
  double keystroke(char c) {
    auto start = Clock::now();
    if (::write(master_, &c, 1) != 1) return -1;
    while (true) {
      pollfd p{master_, POLLIN, 0};
      if (::poll(&p, 1, 10000) <= 0) return -1;
      char buffer[256];
      ssize_t n = ::read(master_, buffer, sizeof buffer);
      if (n <= 0) return -1;
      if (std::memchr(buffer, c, static_cast<size_t>(n)) != nullptr) break;
    }
    return duration<double, std::milli>(Clock::now() - start).count();
  }

  std::vector<double> samples(int n, milliseconds gap) {
    std::vector<double> out;
    for (int i = 0; i < n; ++i) {
      double ms = keystroke(static_cast<char>('a' + i % 26));
      if (ms >= 0) out.push_back(ms);
      std::this_thread::sleep_for(gap);
    }
    return out;
  }

  ~EchoSession() {
    child_.reset();
    if (master_ >= 0) ::close(master_);
  }

 private:
  bool read_until(const std::string& text, seconds timeout) {
    std::string seen;
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      pollfd p{master_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buffer[1024];
      ssize_t n = ::read(master_, buffer, sizeof buffer);
      if (n <= 0) return false;
      seen.append(buffer, static_cast<size_t>(n));
      if (seen.find(text) != std::string::npos) return true;
    }
    return false;
  }
  void drain() {
    char buffer[1024];
    pollfd p{master_, POLLIN, 0};
    while (::poll(&p, 1, 0) > 0 && ::read(master_, buffer, sizeof buffer) > 0) {
    }
  }

  int master_ = -1;
  std::unique_ptr<Child> child_;
  bool ready_ = false;
};

struct EchoResult {
  double idle_p50 = -1, idle_p99 = -1, load_p50 = -1, load_p99 = -1;
};

// Keystrokes on one SSH connection (a ControlMaster), alone and next to a bulk upload on it.
EchoResult measure_echo(const Target& t, const fs::path& dir, int samples) {
  fs::path control = dir / ("control-" + t.name);
  std::vector<std::string> master_options = {"-o", "ControlMaster=yes", "-o", "ControlPath=" + control.string(), "-N"};
  Child master(t.ssh(master_options, {}));
  for (int i = 0; i < 300 && !fs::exists(control); ++i) std::this_thread::sleep_for(50ms);
  if (!fs::exists(control)) die(t.name + ": the ControlMaster did not come up");
  std::vector<std::string> via = {"-o", "ControlMaster=no", "-o", "ControlPath=" + control.string()};

  EchoResult r;
  EchoSession session(t, via);
  if (!session.ready()) die(t.name + ": the echo session did not start");
  session.samples(20, 5ms);  // warm-up
  auto idle = session.samples(samples, 5ms);
  r.idle_p50 = percentile(idle, 0.5);
  r.idle_p99 = percentile(idle, 0.99);

  // The bulk upload: an endless stream into `cat > /dev/null` on the same connection.
  Child bulk(std::vector<std::string>{"sh", "-c", "head -c 100000000000 /dev/zero | " + [&] {
               std::string s;
               for (const auto& a : t.ssh(via, {"cat > /dev/null"})) s += shell_quote(a) + " ";
               return s;
             }()});
  std::this_thread::sleep_for(1s);  // the windows fill up
  auto load = session.samples(samples, 5ms);
  bulk.stop();
  r.load_p50 = percentile(load, 0.5);
  r.load_p99 = percentile(load, 0.99);
  return r;
}

int run();

}  // namespace

int main() {
  try {
    return run();
  } catch (const Failure& failure) {
    note(std::string("error: ") + failure.what());
    return 1;
  }
}

namespace {

int run() {
  ::signal(SIGPIPE, SIG_IGN);
  fs::path bin = fs::read_symlink("/proc/self/exe").parent_path().parent_path();
  for (const char* program : {"relay/airlock-relay", "agent/airlock-agent", "cli/airlock"})
    if (!fs::exists(bin / program)) die(std::string("no ") + (bin / program).string() + " (build it first)");
  if (!fs::exists("/usr/sbin/sshd")) die("no /usr/sbin/sshd (install openssh-server)");
  char tmpl[] = "/tmp/airlock-bench-ssh-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) die("mkdtemp");
  fs::path dir = tmpl;
  struct RemoveDir {
    fs::path dir;
    ~RemoveDir() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } remove_dir{dir};

  const int connect_runs = quick() ? 3 : 9;
  const size_t scp_bytes = quick() ? (32u << 20) : (256u << 20);
  const int scp_runs = quick() ? 1 : 3;
  const int echo_samples = quick() ? 50 : 300;

  json out;
  {
    note("starting the relay, an agent and an sshd of our own");
    Airlock airlock(bin, dir / "airlock");
    Sshd sshd(dir / "sshd");
    const Target& a = airlock.target;
    const Target& d = sshd.target;

    note("connect: " + std::to_string(connect_runs) + " runs each");
    std::vector<double> ca, cd;
    time_to_first_output(a);  // warm caches (host key, binaries)
    time_to_first_output(d);
    for (int i = 0; i < connect_runs; ++i) {
      ca.push_back(time_to_first_output(a));
      cd.push_back(time_to_first_output(d));
    }
    double ca50 = percentile(ca, 0.5), cd50 = percentile(cd, 0.5);

    note("scp: " + std::to_string(scp_bytes >> 20) + " MiB up and down, best of " + std::to_string(scp_runs));
    fs::path file = dir / "payload.bin", remote = dir / "remote.bin";
    // (Not through shell(), whose own "> /dev/null" would take the place of this redirection.)
    std::string make_payload = "head -c " + std::to_string(scp_bytes) + " /dev/urandom > " + shell_quote(file.string());
    if (std::system(make_payload.c_str()) != 0 || fs::file_size(file) != scp_bytes) die("no payload");
    double up_a = -1, up_d = -1, down_a = -1, down_d = -1;  // -1: no run of that way moved the file
    for (int i = 0; i < scp_runs; ++i) {
      up_a = std::max(up_a, scp_rate(a, file, remote, true, scp_bytes));
      up_d = std::max(up_d, scp_rate(d, file, remote, true, scp_bytes));
      down_a = std::max(down_a, scp_rate(a, dir / "back.bin", remote, false, scp_bytes));
      down_d = std::max(down_d, scp_rate(d, dir / "back.bin", remote, false, scp_bytes));
    }

    note("keystroke echo: " + std::to_string(echo_samples) + " keystrokes idle and under a bulk upload, each way");
    EchoResult ea = measure_echo(a, dir, echo_samples);
    EchoResult ed = measure_echo(d, dir, echo_samples);

    auto ratio = [](double x, double y) { return x > 0 && y > 0 ? round3(x / y) : -1.0; };
    out = {
        {"benchmark", "ssh"},
        {"what", "OpenSSH through airlock (relay --dev + agent on loopback, airlock proxy as ProxyCommand) vs OpenSSH to its own sshd on loopback"},
        {"connect",
         {{"airlock_ms", round3(ca50)},
          {"direct_ms", round3(cd50)},
          {"airlock_max_ms", round3(*std::max_element(ca.begin(), ca.end()))},
          {"direct_max_ms", round3(*std::max_element(cd.begin(), cd.end()))},
          {"runs", connect_runs},
          {"ratio", ratio(ca50, cd50)},
          {"target_ratio_at_most", kTargetConnectRatio},
          {"within_target", ratio(ca50, cd50) > 0 && ratio(ca50, cd50) <= kTargetConnectRatio}}},
        {"scp",
         {{"bytes", scp_bytes},
          {"upload_airlock_mb_s", round3(up_a)},
          {"upload_direct_mb_s", round3(up_d)},
          {"upload_ratio", ratio(up_a, up_d)},
          {"download_airlock_mb_s", round3(down_a)},
          {"download_direct_mb_s", round3(down_d)},
          {"download_ratio", ratio(down_a, down_d)}}},
        {"echo",
         {{"samples", echo_samples},
          {"idle_airlock_p50_ms", round3(ea.idle_p50)},
          {"idle_airlock_p99_ms", round3(ea.idle_p99)},
          {"idle_direct_p50_ms", round3(ed.idle_p50)},
          {"idle_direct_p99_ms", round3(ed.idle_p99)},
          {"idle_added_p50_ms", round3(ea.idle_p50 - ed.idle_p50)},
          {"idle_added_p99_ms", round3(ea.idle_p99 - ed.idle_p99)},
          {"idle_ratio_p50", ratio(ea.idle_p50, ed.idle_p50)},
          {"idle_ratio_p99", ratio(ea.idle_p99, ed.idle_p99)},
          {"idle_target_added_ms_at_most", kTargetEchoAddedIdleMs},
          {"idle_within_target", ea.idle_p50 - ed.idle_p50 <= kTargetEchoAddedIdleMs &&
                                     ea.idle_p99 - ed.idle_p99 <= kTargetEchoAddedIdleMs},
          {"load_airlock_p50_ms", round3(ea.load_p50)},
          {"load_airlock_p99_ms", round3(ea.load_p99)},
          {"load_direct_p50_ms", round3(ed.load_p50)},
          {"load_direct_p99_ms", round3(ed.load_p99)},
          {"load_added_p50_ms", round3(ea.load_p50 - ed.load_p50)},
          {"load_added_p99_ms", round3(ea.load_p99 - ed.load_p99)},
          {"load_ratio_p50", ratio(ea.load_p50, ed.load_p50)},
          {"load_ratio_p99", ratio(ea.load_p99, ed.load_p99)},
          {"load_target_added_ms_at_most", kTargetEchoAddedLoadMs},
          {"load_within_target", ea.load_p50 - ed.load_p50 <= kTargetEchoAddedLoadMs &&
                                     ea.load_p99 - ed.load_p99 <= kTargetEchoAddedLoadMs},
          {"load", "a bulk upload (cat > /dev/null) on the same SSH connection (ControlMaster)"}}},
    };
  }
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace
