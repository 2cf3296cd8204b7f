#include "agent/pty/pty_process.hpp"
#include "agent/pty/pty_config.hpp"

#include <fcntl.h>
#include <pty.h>
#include <pwd.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/util/log.hpp"

namespace airlock::agent::pty {
namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr const char* kTerm = "xterm-256color";
// Locale and zone carry over from the agent: without them the shell cannot print UTF-8.
constexpr const char* kInheritedVariables[] = {"LANG", "LC_ALL", "LC_CTYPE", "TZ"};

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// Runs in the forked child: only async-signal-safe calls, since the agent has other threads.
[[noreturn]] void exec_shell(const char* program, char* const* argv, char* const* envp, const char* directory,
                             const char* home) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);  // libuv ignores SIGPIPE; shells must not
  // No descriptor of the agent (tunnel sockets, other sessions' ptys) leaks into the session.
  syscall(SYS_close_range, 3u, ~0u, 0u);
  if (directory[0] == '\0' || chdir(directory) != 0) {
    if (chdir(home) != 0) (void)!chdir("/");
  }
  execve(program, argv, envp);
  static const char message[] = "airlock: cannot start the shell\r\n";
  (void)!write(STDERR_FILENO, message, sizeof message - 1);
  _exit(127);
}

airlock::pty::ExitStatus exit_status(int wait_status) {
  if (WIFSIGNALED(wait_status)) {
    auto sig = static_cast<uint32_t>(WTERMSIG(wait_status));
    return {128 + sig, sig};
  }
  return {static_cast<uint32_t>(WEXITSTATUS(wait_status)), 0};
}

}  // namespace

Result<ShellLaunch> login_shell(const std::map<std::string, std::string>& workspace_env, const std::string& directory,
                                const std::string& command, const std::string& shell) {
  struct passwd entry;
  struct passwd* found = nullptr;
  std::vector<char> buffer(16384);
  if (getpwuid_r(getuid(), &entry, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) {
    return make_error("no passwd entry for uid " + std::to_string(getuid()));
  }
  ShellLaunch launch;
  launch.program = !shell.empty() ? shell : (entry.pw_shell && entry.pw_shell[0] ? entry.pw_shell : "/bin/sh");
  launch.home = entry.pw_dir && entry.pw_dir[0] ? entry.pw_dir : "/";
  launch.directory = directory.empty() ? launch.home : directory;
  if (launch.program[0] != '/') return make_error("login shell '" + launch.program + "' is not an absolute path");

  auto slash = launch.program.rfind('/');
  launch.argv.push_back("-" + launch.program.substr(slash + 1));
  if (!command.empty()) {
    launch.argv.push_back("-c");
    launch.argv.push_back(command);
  }

  std::map<std::string, std::string> env;
  env["HOME"] = launch.home;
  env["USER"] = entry.pw_name;
  env["LOGNAME"] = entry.pw_name;
  env["SHELL"] = launch.program;
  const char* path = std::getenv("PATH");
  env["PATH"] = path && path[0] ? path : kDefaultPath;
  for (const char* name : kInheritedVariables) {
    if (const char* value = std::getenv(name)) env[name] = value;
  }
  for (const auto& [name, value] : workspace_env) env[name] = value;
  env["TERM"] = kTerm;
  for (const auto& [name, value] : env) launch.env.push_back(name + "=" + value);
  return launch;
}

Result<std::unique_ptr<PtyProcess>> PtyProcess::start(uv_loop_t* loop, const ShellLaunch& launch, uint16_t cols,
                                                      uint16_t rows, ExitCallback on_exit, const Claim& claim) {
  std::unique_ptr<PtyProcess> process(new PtyProcess(loop, std::move(on_exit)));
  // Everything the child needs is prepared before fork: it may not allocate.
  std::vector<char*> argv = c_strings(launch.argv);
  std::vector<char*> envp = c_strings(launch.env);
  struct winsize size{};
  size.ws_col = cols;
  size.ws_row = rows;

  int master = -1;
  pid_t pid = forkpty(&master, nullptr, nullptr, &size);
  if (pid < 0) return errno_error("forkpty");
  if (pid == 0) exec_shell(launch.program.c_str(), argv.data(), envp.data(), launch.directory.c_str(), launch.home.c_str());

  process->pid_ = pid;
  if (claim) process->claim_ = claim(pid);  // same loop turn as the fork: nobody reaped it yet
  process->master_.reset(master);
  int flags = fcntl(master, F_GETFL);
  if (flags < 0 || fcntl(master, F_SETFL, flags | O_NONBLOCK) != 0 || fcntl(master, F_SETFD, FD_CLOEXEC) != 0) {
    Error error = errno_error("fcntl(pty master)");
    process->abandon();
    return error;
  }
  if (Status watching = process->watch(); !watching) {
    process->abandon();
    return watching.error();
  }
  return process;
}

PtyProcess::~PtyProcess() {
  on_exit_ = nullptr;  // nobody is left to tell
  if (!exited_) {
    hang_up();
    // Collect it if it is already gone; otherwise whoever reaps orphans (PID 1) will.
    collect();
  }
}

Status PtyProcess::watch() {
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  if (fd >= 0) {
    pidfd_.reset(fd);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (int rc = pidfd_poll_.init([&](uv_poll_t* p) { return uv_poll_init(loop_, p, fd); }); rc != 0)
      return make_error(std::string("uv_poll_init(pidfd): ") + uv_strerror(rc));
    pidfd_poll_->data = this;
    int rc = uv_poll_start(pidfd_poll_.get(), UV_READABLE, [](uv_poll_t* h, int, int) {
      if (auto* self = static_cast<PtyProcess*>(h->data)) self->collect();
    });
    if (rc != 0) return make_error(std::string("uv_poll_start(pidfd): ") + uv_strerror(rc));
    return Ok{};
  }
  // No pidfd (kernel before 5.3, or a seccomp filter): SIGCHLD says when to look.
  if (int rc = sigchld_.init([&](uv_signal_t* s) { return uv_signal_init(loop_, s); }); rc != 0)
    return make_error(std::string("uv_signal_init: ") + uv_strerror(rc));
  sigchld_->data = this;
  int rc = uv_signal_start(
      sigchld_.get(),
      [](uv_signal_t* h, int) {
        if (auto* self = static_cast<PtyProcess*>(h->data)) self->collect();
      },
      SIGCHLD);
  if (rc != 0) return make_error(std::string("uv_signal_start: ") + uv_strerror(rc));
  return Ok{};
}

void PtyProcess::collect() {
  if (exited_ || pid_ <= 0) return;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  airlock::pty::ExitStatus result;
  if (r == pid_) {
    result = exit_status(status);
  } else if (r < 0 && errno == ECHILD) {
    LOG_WARN(kLog, "shell %d was reaped by another waiter: its exit status is lost", static_cast<int>(pid_));
    result = {255, 0};
  } else {
    return;  // still running (a SIGCHLD for some other child)
  }
  exited_ = true;
  claim_.reset();
  pidfd_poll_.reset();
  pidfd_.reset();
  sigchld_.reset();
  if (on_exit_) {
    // Last statement: the callback may destroy this object.
    ExitCallback callback = std::move(on_exit_);
    callback(result);
  }
}

Status PtyProcess::resize(uint16_t cols, uint16_t rows) {
  if (!master_.valid()) return make_error("the terminal has hung up");
  struct winsize size{};
  size.ws_col = cols;
  size.ws_row = rows;
  // The kernel sends SIGWINCH to the foreground process group, which redraws.
  if (ioctl(master_.get(), TIOCSWINSZ, &size) != 0) return errno_error("TIOCSWINSZ");
  return Ok{};
}

void PtyProcess::hang_up() {
  master_.reset();
  if (!exited_ && pid_ > 0) {
    ::kill(-pid_, SIGHUP);
    ::kill(-pid_, SIGCONT);  // a stopped job must wake up to see the hang-up
  }
}

void PtyProcess::abandon() {
  on_exit_ = nullptr;
  kill();
  int status = 0;
  waitpid(pid_, &status, 0);  // SIGKILL cannot be ignored: this returns at once
  exited_ = true;
}

void PtyProcess::kill() {
  if (!exited_ && pid_ > 0) ::kill(-pid_, SIGKILL);
  if (!exited_ && pid_ > 0) ::kill(pid_, SIGKILL);
}

}  // namespace airlock::agent::pty
