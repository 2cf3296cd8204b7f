// The shell behind a terminal session: a login shell on a new pty, its exit status, hang-up.
//
// The child is forked here (forkpty: setsid + TIOCSCTTY, which uv_spawn cannot do). Its end is
// learned from a pidfd polled on the loop, or from SIGCHLD where pidfds are missing, and collected
// with waitpid(pid, WNOHANG): never waitpid(-1), which would steal other services' children.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <uv.h>

#include "common/net/uv_handle.hpp"
#include "common/pty/protocol.hpp"
#include "common/util/result.hpp"
#include "common/util/unique_fd.hpp"

namespace airlock::agent::pty {

// What to exec: a login shell from the user's passwd entry, or that shell running `command`.
struct ShellLaunch {
  std::string program;             // absolute path to the shell
  std::vector<std::string> argv;   // argv[0] is "-bash" style, so the shell reads the login profile
  std::vector<std::string> env;    // NAME=value, the whole environment
  std::string directory;           // tried first; then HOME, then /
  std::string home;
};

// `shell` overrides the passwd entry's shell (empty: use it). `workspace_env` is added over a minimal
// environment (HOME, USER, LOGNAME, SHELL, PATH, locale): the agent's own environment, which holds
// its credentials, never reaches a session. TERM is always xterm-256color, the terminal the
// viewers emulate.
Result<ShellLaunch> login_shell(const std::map<std::string, std::string>& workspace_env, const std::string& directory,
                                const std::string& command, const std::string& shell = {});

class PtyProcess {
 public:
  using ExitCallback = std::function<void(airlock::pty::ExitStatus)>;

  using Claim = std::function<std::shared_ptr<void>(int pid)>;

  // Starts the shell on a pty of cols x rows. `on_exit` runs once, on the loop, when it has ended
  // and been reaped; it may destroy this object. `claim` (optional) registers the pid with the
  // agent's reaper in the same loop turn as the fork (PtyConfig::claim_child).
  static Result<std::unique_ptr<PtyProcess>> start(uv_loop_t* loop, const ShellLaunch& launch, uint16_t cols,
                                                   uint16_t rows, ExitCallback on_exit, const Claim& claim = {});
  ~PtyProcess();
  PtyProcess(const PtyProcess&) = delete;
  PtyProcess& operator=(const PtyProcess&) = delete;

  int master() const { return master_.get(); }  // non-blocking; -1 after hang_up()
  pid_t pid() const { return pid_; }
  bool exited() const { return exited_; }

  Status resize(uint16_t cols, uint16_t rows);
  // Closes the master, as a terminal hangs up, and sends SIGHUP to the shell's process group.
  void hang_up();
  // SIGKILL to the shell's process group, for a shell that outlived its hang-up.
  void kill();

 private:
  PtyProcess(uv_loop_t* loop, ExitCallback on_exit) : loop_(loop), on_exit_(std::move(on_exit)) {}
  Status watch();
  void collect();
  void abandon();  // a start that failed half way: kill and reap synchronously

  uv_loop_t* loop_;
  ExitCallback on_exit_;
  pid_t pid_ = -1;
  bool exited_ = false;
  UniqueFd master_;
  UniqueFd pidfd_;
  net::UvHandle<uv_poll_t> pidfd_poll_;  // declared after pidfd_: closed before the fd it polls
  net::UvHandle<uv_signal_t> sigchld_;
  std::shared_ptr<void> claim_;  // the reaper's hands-off token until the status is collected
};

}  // namespace airlock::agent::pty
