#include "agent/ssh/child_process.hpp"

#include <fcntl.h>
#include <pty.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "common/util/log.hpp"
#include "common/util/unique_fd.hpp"

namespace airlock::agent::ssh {
namespace {

void set_nonblocking_cloexec(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

// pipe2 with the parent's end (index `parent_end`) non-blocking; both ends close-on-exec (the
// child gets its end through dup2, which clears the flag).
Status make_pipe(UniqueFd& read_end, UniqueFd& write_end, int parent_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return errno_error("pipe");
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
  set_nonblocking_cloexec(parent_end == 0 ? fds[0] : fds[1]);
  return Ok{};
}

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

ExitInfo exit_from_wait_status(int status) {
  ExitInfo info;
  info.known = true;
  if (WIFSIGNALED(status)) {
    info.signal = WTERMSIG(status);
    info.core_dumped = WCOREDUMP(status);
  } else {
    info.status = WEXITSTATUS(status);
  }
  return info;
}

// Only async-signal-safe calls from here to execve: the agent may have other threads.
[[noreturn]] void exec_on_pty(int slave, const char* program, char* const* argv, char* const* envp,
                              const char* directory, const char* fallback_directory) {
  ::setsid();
  ::ioctl(slave, TIOCSCTTY, 0);
  ::dup2(slave, 0);
  ::dup2(slave, 1);
  ::dup2(slave, 2);
  ::close_range(3, ~0U, 0);  // whatever the agent holds without O_CLOEXEC stays in the agent
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
  if (::chdir(directory) != 0 && ::chdir(fallback_directory) != 0) (void)::chdir("/");
  ::execve(program, argv, envp);
  static const char message[] = "airlock: cannot execute the login shell\r\n";
  (void)!::write(2, message, sizeof(message) - 1);
  ::_exit(127);
}

}  // namespace

Result<std::unique_ptr<ChildProcess>> ChildProcess::spawn(uv_loop_t* loop, const SpawnRequest& request,
                                                          ChildStdio& stdio) {
  std::unique_ptr<ChildProcess> child(new ChildProcess(loop));
  Status started = request.pty ? child->fork_on_pty(request, stdio) : child->spawn_on_pipes(request, stdio);
  if (!started) return started.error();
  return child;
}

Status ChildProcess::spawn_on_pipes(const SpawnRequest& request, ChildStdio& stdio) {
  UniqueFd in_r, in_w, out_r, out_w, err_r, err_w;
  if (Status s = make_pipe(in_r, in_w, 1); !s) return s;
  if (Status s = make_pipe(out_r, out_w, 0); !s) return s;
  if (Status s = make_pipe(err_r, err_w, 0); !s) return s;

  std::vector<char*> argv = c_strings(request.argv);
  std::vector<char*> envp = c_strings(request.env);
  uv_stdio_container_t child_stdio[3];
  child_stdio[0].flags = UV_INHERIT_FD;
  child_stdio[0].data.fd = in_r.get();
  child_stdio[1].flags = UV_INHERIT_FD;
  child_stdio[1].data.fd = out_w.get();
  child_stdio[2].flags = UV_INHERIT_FD;
  child_stdio[2].data.fd = err_w.get();

  uv_process_options_t options{};
  options.exit_cb = &ChildProcess::on_uv_exit;
  options.file = request.program.c_str();
  options.args = argv.data();
  options.env = envp.data();
  options.cwd = request.directory.c_str();
  // A session of its own: "signal" requests go to the whole job, and terminal signals aimed at
  // the agent never reach the child.
  options.flags = UV_PROCESS_DETACHED;
  options.stdio_count = 3;
  options.stdio = child_stdio;

  // uv_spawn initializes the handle even when it fails; it must be closed either way.
  int rc = process_.init(
      [&](uv_process_t* p) {
        p->data = this;
        return uv_spawn(loop_, p, &options);
      },
      /*closes_on_failure=*/true);
  if (rc != 0) return make_error("cannot start " + request.program + ": " + uv_strerror(rc));
  pid_ = process_->pid;
  stdio.stdin_w = std::move(in_w);
  stdio.stdout_r = std::move(out_r);
  stdio.stderr_r = std::move(err_r);
  return Ok{};
}

Status ChildProcess::fork_on_pty(const SpawnRequest& request, ChildStdio& stdio) {
  int master_fd = -1, slave_fd = -1;
  char tty_name[256] = {};
  struct winsize size = *request.pty;
  if (::openpty(&master_fd, &slave_fd, tty_name, nullptr, &size) != 0) return errno_error("openpty");
  UniqueFd master(master_fd), slave(slave_fd);
  set_nonblocking_cloexec(master.get());
  ::fcntl(slave.get(), F_SETFD, FD_CLOEXEC);

  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::vector<std::string> env = request.env;
  env.push_back(std::string("SSH_TTY=") + tty_name);
  std::vector<char*> argv = c_strings(request.argv);
  std::vector<char*> envp = c_strings(env);
  const char* home = "/";
  for (const std::string& e : request.env)
    if (e.starts_with("HOME=")) home = e.c_str() + 5;

  pid_t pid = ::fork();
  if (pid < 0) return errno_error("fork");
  if (pid == 0) exec_on_pty(slave.get(), request.program.c_str(), argv.data(), envp.data(), request.directory.c_str(), home);

  pid_ = pid;
  if (request.claim) claim_ = request.claim(pid);  // same loop turn as the fork: nobody reaped it yet
  slave.reset();  // the child holds the only slave fd: the master reads EIO once the child's side is gone
  stdio.pty_master = std::move(master);
  if (Status watching = watch_pty_child(); !watching) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    return watching;
  }
  return Ok{};
}

Status ChildProcess::watch_pty_child() {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  if (fd >= 0) {
    pidfd_.reset(fd);
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    int rc = pidfd_poll_.init([&](uv_poll_t* p) { return uv_poll_init(loop_, p, fd); });
    if (rc != 0) return make_error(std::string("uv_poll_init(pidfd): ") + uv_strerror(rc));
    pidfd_poll_->data = this;
    rc = uv_poll_start(pidfd_poll_.get(), UV_READABLE, [](uv_poll_t* h, int, int) {
      auto* self = static_cast<ChildProcess*>(h->data);
      if (self == nullptr) return;
      Waker waker = self->waker_;
      self->collect_pty_child();
      if (self->exited_) waker();
    });
    if (rc != 0) return make_error(std::string("uv_poll_start(pidfd): ") + uv_strerror(rc));
    return Ok{};
  }
  // No pidfd (old kernel or seccomp): learn of the exit from SIGCHLD instead.
  int rc = sigchld_.init([&](uv_signal_t* s) { return uv_signal_init(loop_, s); });
  if (rc != 0) return make_error(std::string("uv_signal_init: ") + uv_strerror(rc));
  sigchld_->data = this;
  rc = uv_signal_start(sigchld_.get(), [](uv_signal_t* h, int) {
    auto* self = static_cast<ChildProcess*>(h->data);
    if (self == nullptr) return;
    Waker waker = self->waker_;
    self->collect_pty_child();
    if (self->exited_) waker();
  }, SIGCHLD);
  if (rc != 0) return make_error(std::string("uv_signal_start: ") + uv_strerror(rc));
  collect_pty_child();  // it may have ended before the handler existed
  return Ok{};
}

void ChildProcess::collect_pty_child() {
  if (exited_) return;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    record_exit(exit_from_wait_status(status));
  } else if (r < 0 && errno == ECHILD) {
    // Someone else reaped it (see the header): the process is gone, its status is not ours.
    LOG_WARN("ssh", "pty child %d was reaped by another waiter: exit status lost", static_cast<int>(pid_));
    record_exit(ExitInfo{});
  } else if (r == 0 && pidfd_.valid()) {
    // A pidfd is readable only once the process ended; waitpid can lag by nothing, but never
    // spin: the next readiness comes when the zombie is there.
  }
}

void ChildProcess::record_exit(ExitInfo info) {
  exited_ = true;
  exit_ = info;
  claim_.reset();
  pidfd_poll_.reset();
  pidfd_.reset();
  sigchld_.reset();
}

void ChildProcess::on_uv_exit(uv_process_t* handle, int64_t status, int term_signal) {
  auto* self = static_cast<ChildProcess*>(handle->data);
  if (self == nullptr) return;
  Waker waker = self->waker_;
  ExitInfo info;
  info.known = true;
  info.status = static_cast<int>(status);
  info.signal = term_signal;
  self->record_exit(info);
  waker();
}

void ChildProcess::signal(int signal) {
  if (exited_ || pid_ <= 0) return;
  if (::kill(-pid_, signal) != 0) ::kill(pid_, signal);
}

ChildProcess::~ChildProcess() = default;

}  // namespace airlock::agent::ssh
