// One terminal session: a shell on a pty, the screen model its output feeds, and the viewers
// attached to it. Output fans out to every viewer that can take it; input from any viewer goes to
// the shell; the session's size follows the most recent viewer to attach, resize or type.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <uv.h>

#include "agent/pty/pty_config.hpp"
#include "agent/pty/pty_process.hpp"
#include "agent/pty/viewer.hpp"
#include "common/net/uv_handle.hpp"
#include "common/pty/screen.hpp"

namespace airlock::agent::pty {

struct PtySessionStats {
  size_t viewers = 0;
  size_t stale_viewers = 0;       // skipping live output until they drain and get a repaint
  size_t max_viewer_queued = 0;   // bytes queued for the most backed-up viewer
  uint64_t bytes_from_pty = 0;    // the shell's output read so far
  bool output_paused = false;     // the pty is not read: every viewer is backed up
  size_t pending_input = 0;       // typed bytes the shell has not read yet
  uint16_t cols = 0;
  uint16_t rows = 0;
};

class PtySession final : private PtyViewer::Owner {
 public:
  struct Context {
    uv_loop_t* loop;
    const PtyConfig* config;
    LingeringPipes* lingering;
    std::function<void()> ended;  // the session is over: its owner drops it on a later turn
  };

  static Result<std::unique_ptr<PtySession>> start(Context context, std::string id, const ShellLaunch& launch,
                                                   uint16_t cols, uint16_t rows, Identity creator);
  ~PtySession();
  PtySession(const PtySession&) = delete;
  PtySession& operator=(const PtySession&) = delete;

  // Adds a viewer on `fd` (always taken over). The first attach finds a new session; later ones
  // get a repaint of the screen as it is.
  Status attach(int fd, const Identity& who, uint16_t cols, uint16_t rows);
  // The agent is stopping: tell the viewers, hang the shell up.
  void shut_down();

  const std::string& id() const { return id_; }
  bool ended() const { return ended_; }
  PtySessionStats stats() const;
  const airlock::pty::TerminalScreen& screen() const { return screen_; }

 private:
  PtySession(Context context, std::string id, uint16_t cols, uint16_t rows, Identity creator);

  void viewer_input(PtyViewer& viewer, ByteView bytes) override;
  void viewer_resize(PtyViewer& viewer, uint16_t cols, uint16_t rows) override;
  void viewer_drained(PtyViewer& viewer) override;
  void viewer_gone(PtyViewer& viewer, const std::string& reason, bool malformed) override;

  void on_master_ready(int status, int events);
  void read_master(size_t budget);
  void write_master();
  void on_output(ByteView bytes);
  void deliver(PtyViewer& viewer, std::string_view frames);
  void send_repaint(PtyViewer& viewer);
  bool output_blocked() const;
  void update_polling();
  void resize(uint16_t cols, uint16_t rows);
  void remove_viewer(PtyViewer& viewer);
  void idle_expired();
  void on_exit(airlock::pty::ExitStatus status);
  void end(airlock::pty::ExitStatus status);
  void audit(const Identity& who, const char* event, nlohmann::json details) const;

  Context context_;
  std::string id_;
  uint16_t cols_;
  uint16_t rows_;
  Identity creator_;
  airlock::pty::TerminalScreen screen_;
  std::unique_ptr<PtyProcess> process_;  // owns the master fd: declared before the poll on it
  net::UvHandle<uv_poll_t> master_poll_;
  net::UvHandle<uv_timer_t> idle_timer_;
  net::UvHandle<uv_timer_t> kill_timer_;
  std::vector<std::unique_ptr<PtyViewer>> viewers_;
  std::string pending_input_;
  std::vector<uint8_t> read_buffer_;
  int poll_events_ = 0;
  bool master_eof_ = false;
  bool input_paused_ = false;
  bool attached_before_ = false;
  bool ended_ = false;
  uint64_t bytes_from_pty_ = 0;
  std::string end_reason_ = "exited";
};

}  // namespace airlock::agent::pty
