// The agent's `pty` service: reconnecting terminals by session id.
//
// A stream opened for `pty` with {"session": id, "cols": n, "rows": n, "command"?: "..."} attaches
// a viewer to the session of that id, starting a login shell when there is none. Several viewers
// may watch one session; the shell outlives the last of them by the idle timeout; a viewer that
// attaches later gets a repaint from the session's screen model. Frames on the fd are those of
// common/pty/protocol.hpp. Everything runs on the agent's loop thread.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <uv.h>

#include "agent/pty/pty_config.hpp"
#include "agent/pty/pty_session.hpp"
#include "agent/pty/viewer.hpp"
#include "agent/service.hpp"
#include "common/net/uv_handle.hpp"
#include "common/util/result.hpp"

namespace airlock::agent::pty {

class PtySessions {
 public:
  PtySessions(uv_loop_t* loop, PtyConfig config);
  // Hangs every shell up and tells every viewer the agent is stopping.
  ~PtySessions();
  PtySessions(const PtySessions&) = delete;
  PtySessions& operator=(const PtySessions&) = delete;

  // Takes over `fd` (a connected, non-blocking stream socket) whatever happens. Bad arguments or
  // a refused session send one ERROR frame with the reason, close the fd, and return the error.
  Status attach(int fd, const nlohmann::json& args, const Identity& who);

  size_t count() const;  // sessions whose shell is running
  std::optional<PtySessionStats> stats(std::string_view id) const;
  // The session's screen model, or nullptr; valid until the loop next runs.
  const airlock::pty::TerminalScreen* screen(std::string_view id) const;

 private:
  void sweep();

  uv_loop_t* loop_;
  PtyConfig config_;
  LingeringPipes lingering_;  // declared before the sessions: outlives what they hand it
  std::map<std::string, std::unique_ptr<PtySession>, std::less<>> sessions_;
  net::UvHandle<uv_timer_t> sweep_timer_;
};

}  // namespace airlock::agent::pty
