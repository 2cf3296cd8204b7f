// Stock OpenSSH and tmux as a test's user: run a shell command with a deadline, an ssh_config for
// scp/sftp/rsync, file checksums, a tmux session to type into and read the screen of, and a TCP
// echo server for forwards. Shared by the ssh service tests (in-process server) and the relay tests
// (the real relay and agent, `airlock proxy` as the ProxyCommand).
//
//   SshClient client(dir, "airlock proxy %h", "", "accept-new", "airlock.demo");  // Host ws
//   auto r = run(client.ssh + " ws 'echo hi; exit 3'");    // r.exit_code == 3, r.out == "hi\n"
//   Tmux tmux(dir);
//   tmux.start(client.ssh + " -tt ws", 100, 30);
//   tmux.type_line("stty size");
//   CHECK(tmux.wait_for("30 100"));
//
// Header-only: tests/support/*.cpp goes into every test's support library.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "tests/support/loopback.hpp"
#include "tests/support/proc.hpp"  // read_file

namespace airlock::test {

inline void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// 'text' for /bin/sh, whatever it holds.
inline std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct RunResult {
  int exit_code = -1;  // -1: killed by the timeout
  std::string out;
  std::string err;
  double seconds = 0;
};

// Runs `command` with /bin/sh (stdin /dev/null, its own process group), capturing stdout and
// stderr; kills the group after `timeout`.
inline RunResult run(const std::string& command, std::chrono::seconds timeout = std::chrono::seconds(120)) {
  namespace fs = std::filesystem;
  static std::atomic<int> counter{0};
  int n = counter++;
  fs::path out_path = fs::temp_directory_path() / ("airlock-run-" + std::to_string(::getpid()) + "-" + std::to_string(n));
  fs::path err_path = out_path.string() + ".err";
  int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
  auto start = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::dup2(null_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    ::execv("/bin/sh", const_cast<char* const*>(argv));
    ::_exit(127);
  }
  ::close(out_fd);
  ::close(err_fd);
  ::close(null_fd);
  RunResult result;
  int status = 0;
  while (true) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (std::chrono::steady_clock::now() - start > timeout) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.out = read_file(out_path);
  result.err = read_file(err_path);
  fs::remove(out_path);
  fs::remove(err_path);
  return result;
}

// A client process left running (ssh -N -L ...), killed with its process group at the end.
struct Background {
  pid_t pid = -1;
  explicit Background(const std::string& command) {
    const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
    pid = ::fork();
    if (pid == 0) {
      ::setpgid(0, 0);
      int null_fd = ::open("/dev/null", O_RDWR);
      ::dup2(null_fd, 0);
      ::execv("/bin/sh", const_cast<char* const*>(argv));
      ::_exit(127);
    }
  }
  ~Background() {
    ::kill(-pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
};

inline bool wait_until(const std::function<bool()>& condition,
                       std::chrono::milliseconds wait = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return condition();
}

// An ssh_config naming the server "ws"; `ssh -F <it>` replaces ~/.ssh/config so that scp, sftp
// and rsync -e take the same options without shell-quoting a ProxyCommand three levels deep.
struct SshClient {
  std::filesystem::path config;
  std::filesystem::path known_hosts;
  std::string ssh;  // "ssh -F <config>"

  // `host_name` is what the ProxyCommand gets as %h.
  SshClient(const std::filesystem::path& dir, const std::string& proxy_command, const std::string& extra = "",
            const std::string& host_key_checking = "accept-new", const std::string& host_name = "ws.airlock") {
    config = dir / "ssh_config";
    known_hosts = dir / "known_hosts";
    write_file(config, "Host ws\n"
                       "  HostName " + host_name + "\n"
                       "  User dev\n"
                       "  ProxyCommand " + proxy_command + "\n"
                       "  BatchMode yes\n"
                       "  StrictHostKeyChecking " + host_key_checking + "\n"
                       "  UserKnownHostsFile " + known_hosts.string() + "\n"
                       "  GlobalKnownHostsFile /dev/null\n"
                       "  LogLevel ERROR\n" + extra);
    ssh = "ssh -F " + config.string();
  }
  std::string scp() const { return "scp -F " + config.string(); }
  std::string sftp() const { return "sftp -F " + config.string(); }
  std::string rsync() const { return "rsync -e 'ssh -F " + config.string() + "'"; }
};

// Ctrl-C on an ssh -tt session. `ssh_tt` (an ssh command line with -tt and the host) runs
// `remote_command`, which prints "ready" once it can take the signal: a login environment can take
// a while (bash run by an ssh server sources ~/.bashrc). Then a ^C byte goes in-band down ssh's
// stdin, and the remote tty's ISIG turns it into SIGINT for the job; stdin stays open 3 s more, so
// that its EOF does not end the session first. The result's `out` is the remote output followed by
// "ssh_rc=<ssh's exit status>" (kept in the file `out`); its exit_code is -1 only if it timed out.
inline RunResult interrupt_when_ready(const std::string& ssh_tt, const std::string& remote_command,
                                     const std::filesystem::path& out, std::chrono::seconds timeout) {
  const std::string file = shell_quote(out.string());
  return run("rm -f " + file + "; (i=0; while ! grep -q ready " + file +
                 " 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; printf '\\003'; sleep 3) | " +
                 ssh_tt + " " + shell_quote(remote_command) + " > " + file + "; echo ssh_rc=$? >> " + file +
                 "; cat " + file,
             timeout);
}

// The SHA-256 of a file, hex; empty if it cannot be read.
inline std::string sha256_of(const std::filesystem::path& path) {
  return run("sha256sum " + shell_quote(path.string()) + " | cut -d' ' -f1").out;
}

// `head -c bytes /dev/urandom > path`; true on success.
inline bool make_random_file(const std::filesystem::path& path, size_t bytes) {
  return run("head -c " + std::to_string(bytes) + " /dev/urandom > " + shell_quote(path.string())).exit_code == 0;
}

// One tmux server of the test's own (socket in `dir`, no user config) with one session "t":
// a terminal of a known size to type into and read the screen of.
class Tmux {
 public:
  explicit Tmux(const std::filesystem::path& dir, std::string session = "t")
      : tmux_("tmux -f /dev/null -S " + shell_quote((dir / "tmux.sock").string())), session_(std::move(session)) {}
  ~Tmux() { kill_server(); }
  Tmux(const Tmux&) = delete;
  Tmux& operator=(const Tmux&) = delete;

  const std::string& command() const { return tmux_; }  // "tmux -S <socket>", for other subcommands
  std::string target() const { return "-t " + session_; }

  // Starts the session running `shell_command` in a cols x rows window. With keep_dead_pane the
  // pane stays (and can be captured) after its command ended.
  bool start(const std::string& shell_command, int cols, int rows, bool keep_dead_pane = false) {
    std::string cmd = tmux_ + " new-session -d -s " + session_ + " -x " + std::to_string(cols) + " -y " +
                      std::to_string(rows) + " " + shell_quote(shell_command);
    if (run(cmd, std::chrono::seconds(20)).exit_code != 0) return false;
    if (keep_dead_pane) run(tmux_ + " set-option " + target() + " remain-on-exit on", std::chrono::seconds(10));
    return true;
  }
  // Types `text` literally (no key names), then Enter.
  void type_line(const std::string& text) {
    type(text);
    keys("Enter");
  }
  void type(const std::string& text) {
    run(tmux_ + " send-keys " + target() + " -l " + shell_quote(text), std::chrono::seconds(10));
  }
  // tmux key names: "Enter", "C-c", "Escape", ...
  void keys(const std::string& names) { run(tmux_ + " send-keys " + target() + " " + names, std::chrono::seconds(10)); }
  void resize(int cols, int rows) {
    run(tmux_ + " resize-window " + target() + " -x " + std::to_string(cols) + " -y " + std::to_string(rows),
        std::chrono::seconds(10));
  }
  // The visible screen as text, one line per row (trailing blanks trimmed by tmux).
  std::string capture() { return run(tmux_ + " capture-pane -p " + target(), std::chrono::seconds(10)).out; }
  // #{format} of the pane, e.g. "#{cursor_x},#{cursor_y}", "#{pane_pid}", "#{pane_dead_status}".
  std::string display(const std::string& format) {
    std::string out = run(tmux_ + " display-message -p " + target() + " " + shell_quote(format), std::chrono::seconds(10)).out;
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
  }
  bool wait_for(const std::string& needle, std::chrono::milliseconds wait = std::chrono::seconds(15)) {
    return wait_until([&] { return capture().find(needle) != std::string::npos; }, wait);
  }
  // Types `stty size` until the shell in the pane prints "rows cols". It is typed again each
  // second: a resize reaches a remote shell some time later, and an early `stty size` prints the
  // old size.
  bool wait_for_size(int cols, int rows, std::chrono::milliseconds wait = std::chrono::seconds(15)) {
    const std::string size = std::to_string(rows) + " " + std::to_string(cols);
    return wait_until(
        [&] {
          type_line("stty size");
          return wait_for(size, std::chrono::seconds(1));
        },
        wait);
  }
  // Until the screen stops changing for `quiet` (or `wait` passes); the screen then.
  std::string settle(std::chrono::milliseconds quiet = std::chrono::milliseconds(500),
                     std::chrono::milliseconds wait = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + wait;
    std::string last = capture();
    auto changed = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() < deadline && std::chrono::steady_clock::now() - changed < quiet) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::string now = capture();
      if (now != last) {
        last = now;
        changed = std::chrono::steady_clock::now();
      }
    }
    return last;
  }
  bool has_session() { return run(tmux_ + " has-session " + target(), std::chrono::seconds(10)).exit_code == 0; }
  void kill_session() { run(tmux_ + " kill-session " + target(), std::chrono::seconds(10)); }
  void kill_server() { run(tmux_ + " kill-server 2>/dev/null", std::chrono::seconds(10)); }

 private:
  std::string tmux_;
  std::string session_;
};

// A TCP echo server on loopback: echoes until the client half-closes, then closes.
class EchoServer {
 public:
  EchoServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address = loopback_address(0);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 || ::listen(fd_, 16) != 0) return;
    socklen_t length = sizeof(address);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] {
      while (true) {
        int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;
        std::thread([c] {
          char buffer[16384];
          ssize_t n;
          while ((n = ::read(c, buffer, sizeof(buffer))) > 0)
            if (::write(c, buffer, static_cast<size_t>(n)) != n) break;
          ::close(c);
        }).detach();
      }
    });
  }
  ~EchoServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    if (thread_.joinable()) thread_.join();
  }
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;
  int port() const { return port_; }  // 0 if it could not listen

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
inline int free_tcp_port() { return free_loopback_port(); }  // -1 if there is none

// Connects to 127.0.0.1:port (retrying while a forward comes up), sends `text`, half-closes and
// returns everything read back.
inline std::string echo_through(int port, const std::string& text, std::chrono::seconds wait = std::chrono::seconds(15)) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < deadline) {
    int fd = connect_loopback(port);
    if (fd < 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    // Written from a thread: a large text would fill both socket buffers before anything is read.
    std::thread writer([fd, &text] {
      size_t at = 0;
      while (at < text.size()) {
        ssize_t n = ::send(fd, text.data() + at, text.size() - at, MSG_NOSIGNAL);
        if (n <= 0) break;
        at += static_cast<size_t>(n);
      }
      ::shutdown(fd, SHUT_WR);
    });
    std::string got;
    char buffer[16384];
    ssize_t n;
    while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) got.append(buffer, static_cast<size_t>(n));
    writer.join();
    ::close(fd);
    return got;
  }
  return "<could not connect>";
}

}  // namespace airlock::test
