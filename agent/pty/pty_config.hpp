// How the agent's pty service runs its sessions: the workspace's environment and directory, the
// idle timeout, the audit hook, and the bounds that keep every queue finite.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "agent/service.hpp"
#include "common/pty/screen.hpp"

namespace airlock::agent::pty {

// The pty service's log lines are tagged with this.
inline constexpr const char* kLog = "pty";

// Flow control, in the spirit of ttyd (pty reads pause while the socket is not writable), with
// several viewers: the shell's output is read while at least one viewer can take it. A viewer that
// falls behind by viewer_resync_bytes stops getting live output and, once its queue drains, gets a
// repaint from the screen model instead of everything it missed. With no viewer the pty is still
// read, into the screen model only, so the shell never blocks; the model is bounded.
struct PtyFlowLimits {
  size_t viewer_pause_bytes = 256 * 1024;        // pty reads pause while every viewer has this queued
  size_t viewer_resync_bytes = 2 * 1024 * 1024;  // past this a viewer is resynced, not queued for
  size_t input_pause_bytes = 64 * 1024;          // typed bytes the shell has not read yet
};

struct PtyConfig {
  std::map<std::string, std::string> env;  // the workspace's environment, over the session's basics
  std::string directory;                   // working directory of new shells; empty: HOME
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(5)};  // a shell outlives its last viewer this long
  AuditCallback audit;                     // session_start, attach, detach, session_end
  std::string shell;                       // empty: the user's login shell from passwd
  size_t scrollback_lines = airlock::pty::TerminalScreen::kDefaultScrollbackLines;
  size_t max_sessions = 32;
  size_t max_viewers = 16;                 // per session
  std::chrono::milliseconds hangup_grace{5000};  // after a hang-up, SIGKILL if the shell is still there
  PtyFlowLimits flow;
  // Called on the loop right after a shell is forked, before control returns to the loop, so that
  // the agent's reaper keeps its hands off it (ChildRegistry::claim); the returned token is
  // dropped once the service has collected the shell's exit status with waitpid(pid). Without
  // it a reaper that runs first takes the status, and the viewers get 255 instead.
  std::function<std::shared_ptr<void>(int pid)> claim_child;
};

}  // namespace airlock::agent::pty
