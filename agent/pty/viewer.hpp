// One attached viewer of a terminal session: the connected fd the agent bridged from its stream,
// the frame decoder for what it sends, and the bytes queued for it.
//
// The viewer only reports; its owner (the session) decides. A viewer that sends a malformed frame,
// closes, or fails is reported once through Owner and must then be dropped.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>

#include <uv.h>

#include "agent/service.hpp"
#include "common/net/uv_handle.hpp"
#include "common/pty/protocol.hpp"
#include "common/util/result.hpp"

namespace airlock::agent::pty {

// Pipes still sending their last frames (EXIT, ERROR) after their viewer is gone; each closes when
// its shutdown completes, and whatever is left closes with the registry's owner.
class LingeringPipes {
 public:
  LingeringPipes() = default;
  LingeringPipes(const LingeringPipes&) = delete;
  LingeringPipes& operator=(const LingeringPipes&) = delete;
  ~LingeringPipes() { close_all(); }

  void add(net::UvHandle<uv_pipe_t> pipe);  // shuts the write side down, then closes
  void close_all();
  size_t size() const { return pipes_.size(); }

 private:
  struct Shutdown;
  std::unordered_set<uv_pipe_t*> pipes_;
};

class PtyViewer {
 public:
  class Owner {
   public:
    virtual void viewer_input(PtyViewer& viewer, ByteView bytes) = 0;
    virtual void viewer_resize(PtyViewer& viewer, uint16_t cols, uint16_t rows) = 0;
    virtual void viewer_drained(PtyViewer& viewer) = 0;  // a queued write completed
    // EOF, an I/O error or a malformed frame; `malformed` says whether to tell the viewer why.
    virtual void viewer_gone(PtyViewer& viewer, const std::string& reason, bool malformed) = 0;

   protected:
    ~Owner() = default;
  };

  // Takes ownership of `fd` whatever happens (closed on failure).
  static Result<std::unique_ptr<PtyViewer>> open(uv_loop_t* loop, int fd, Owner& owner, Identity who,
                                                 uint16_t cols, uint16_t rows);
  ~PtyViewer();
  PtyViewer(const PtyViewer&) = delete;
  PtyViewer& operator=(const PtyViewer&) = delete;

  uint64_t number() const { return number_; }  // for logs
  const Identity& who() const { return who_; }
  uint16_t cols() const { return cols_; }
  uint16_t rows() const { return rows_; }
  void set_size(uint16_t cols, uint16_t rows) {
    cols_ = cols;
    rows_ = rows;
  }

  // Queues encoded frames; never blocks and never calls the owner from inside.
  void send(std::string_view frames);
  size_t queued() const;  // bytes accepted but not yet written to the fd

  // Live output skipped while the viewer lags; it is brought back with a repaint.
  bool stale() const { return stale_; }
  void set_stale(bool stale) { stale_ = stale; }

  // Input flow control: stop taking frames while the shell does not read what was typed.
  void pause_input();
  void resume_input();

  // Sends `last_frames` (ERROR, EXIT), then shuts the fd down through `lingering`, which closes
  // it. The viewer is inert afterwards and is dropped by its owner.
  void finish(std::string_view last_frames, LingeringPipes& lingering);

 private:
  PtyViewer(Owner& owner, Identity who, uint16_t cols, uint16_t rows);
  void on_read(ssize_t nread);

  Owner& owner_;
  Identity who_;
  uint64_t number_;
  uint16_t cols_;
  uint16_t rows_;
  bool stale_ = false;
  bool reading_ = false;
  bool broken_ = false;  // a write failed; the read side reports the end
  airlock::pty::FrameDecoder decoder_{airlock::pty::Sender::client};
  std::array<char, airlock::pty::kMaxDataPayload> read_buffer_{};
  net::UvHandle<uv_pipe_t> pipe_;
};

}  // namespace airlock::agent::pty
