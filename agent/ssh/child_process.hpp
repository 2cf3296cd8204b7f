// A process a session runs (login shell, exec command, sftp-server), on a pty or on pipes.
//
// How the exit status is learned, without racing the agent's PID-1 reaper:
//  - pipe children are started with uv_spawn; libuv reaps them with waitpid(pid) on SIGCHLD and
//    reports the status through the process handle;
//  - pty children need setsid() + TIOCSCTTY between fork and exec, which uv_spawn cannot do, so
//    they are forked here; a pidfd (pidfd_open) polled on the loop says when the child ended,
//    and waitpid(pid, WNOHANG) then collects the status. Without pidfds (kernel < 5.3) a SIGCHLD
//    uv_signal handle does the same job.
// The agent's reaper finds uv_spawn children itself and is told about pty children through
// SpawnRequest::claim (called in the same loop turn as the fork); it must never reap either (no
// waitpid(-1)/wait() on every SIGCHLD): a pty status it steals is lost (the ssh client then sees
// no exit-status, and a warning is logged), and for uv_spawn children libuv would never report
// the exit at all. See docs/SSH.md.
#pragma once

#include <sys/ioctl.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <uv.h>

#include "agent/ssh/handles.hpp"
#include "agent/ssh/waker.hpp"
#include "common/net/uv_handle.hpp"
#include "common/util/result.hpp"
#include "common/util/unique_fd.hpp"

namespace airlock::agent::ssh {

struct SpawnRequest {
  std::string program;               // absolute path, run with execve (no PATH search)
  std::vector<std::string> argv;     // argv[0] included ("-bash" for a login shell)
  std::vector<std::string> env;      // "NAME=value", the whole environment
  std::string directory;             // must exist
  std::optional<struct winsize> pty;  // set: a new pty becomes the child's controlling terminal
  // pty children: registers the pid with the agent's reaper (see SshConfig::claim_child).
  std::function<std::shared_ptr<void>(int pid)> claim;
};

// The parent's ends of the child's stdio, non-blocking and close-on-exec.
struct ChildStdio {
  UniqueFd pty_master;  // pty children: read output, write input, resize
  UniqueFd stdin_w;     // pipe children
  UniqueFd stdout_r;
  UniqueFd stderr_r;
};

struct ExitInfo {
  bool known = false;  // false when the status was lost (another waiter reaped the child)
  int status = 0;      // exit code when signal == 0
  int signal = 0;      // terminating signal, 0 for a normal exit
  bool core_dumped = false;
};

class ChildProcess {
 public:
  // The child leads a new session (and process group) of its own, so signals reach the whole
  // job and the agent's own group is never hit.
  static Result<std::unique_ptr<ChildProcess>> spawn(uv_loop_t* loop, const SpawnRequest& request,
                                                     ChildStdio& stdio);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool exited() const { return exited_; }
  const ExitInfo& exit_info() const { return exit_; }
  // Called (after the exit was recorded) when the child ends.
  void set_waker(Waker waker) { waker_ = waker; }
  // Delivers to the child's process group; no-op once it exited.
  void signal(int signal);

 private:
  explicit ChildProcess(uv_loop_t* loop) : loop_(loop) {}
  Status spawn_on_pipes(const SpawnRequest& request, ChildStdio& stdio);
  Status fork_on_pty(const SpawnRequest& request, ChildStdio& stdio);
  Status watch_pty_child();
  void collect_pty_child();
  void record_exit(ExitInfo info);
  static void on_uv_exit(uv_process_t* handle, int64_t status, int term_signal);

  uv_loop_t* loop_;
  pid_t pid_ = -1;
  bool exited_ = false;
  ExitInfo exit_;
  Waker waker_;
  net::UvHandle<uv_process_t> process_;  // pipe children
  std::shared_ptr<void> claim_;     // pty children: the reaper's hands-off token until reaped
  UniqueFd pidfd_;                        // pty children
  net::UvHandle<uv_poll_t> pidfd_poll_;
  net::UvHandle<uv_signal_t> sigchld_;   // pty children without pidfd support
};

}  // namespace airlock::agent::ssh
