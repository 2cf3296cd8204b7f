#include "agent/pty/pty_session.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/util/log.hpp"

namespace airlock::agent::pty {
namespace {

// A read of the shell's output costs the loop its screen-model update: 16 KiB of a scrolling
// flood ("yes") is ~20 ms of libvterm work. Small reads, few per wakeup, keep the loop responsive.
constexpr size_t kReadSize = 16 * 1024;
constexpr size_t kReadsPerWakeup = 2;
constexpr size_t kExitDrainBytes = 1024 * 1024;      // what a finished shell may still have written


}  // namespace

PtySession::PtySession(Context context, std::string id, uint16_t cols, uint16_t rows, Identity creator)
    : context_(std::move(context)),
      id_(std::move(id)),
      cols_(cols),
      rows_(rows),
      creator_(std::move(creator)),
      screen_(cols, rows, context_.config->scrollback_lines),
      read_buffer_(kReadSize) {}

Result<std::unique_ptr<PtySession>> PtySession::start(Context context, std::string id, const ShellLaunch& launch,
                                                      uint16_t cols, uint16_t rows, Identity creator) {
  std::unique_ptr<PtySession> session(new PtySession(std::move(context), std::move(id), cols, rows, std::move(creator)));
  PtySession* self = session.get();
  auto process = PtyProcess::start(
      self->context_.loop, launch, cols, rows, [self](airlock::pty::ExitStatus status) { self->on_exit(status); },
      self->context_.config->claim_child);
  if (!process) return process.error();
  self->process_ = std::move(*process);

  if (int rc = self->master_poll_.init(
          [&](uv_poll_t* p) { return uv_poll_init(self->context_.loop, p, self->process_->master()); });
      rc != 0) {
    return make_error(std::string("uv_poll_init(pty): ") + uv_strerror(rc));
  }
  self->master_poll_->data = self;
  for (auto* timer : {&self->idle_timer_, &self->kill_timer_}) {
    // uv_timer_init cannot fail (libuv only fills in the struct).
    timer->init([&](uv_timer_t* t) { return uv_timer_init(self->context_.loop, t); });
    (*timer)->data = self;
  }
  self->update_polling();

  nlohmann::json details = {{"cols", cols}, {"rows", rows}, {"shell", launch.program}};
  if (launch.argv.size() > 2) details["command"] = launch.argv[2];
  self->audit(self->creator_, "session_start", std::move(details));
  LOG_INFO(kLog, "session %s: started %s (pid %d) for %s", self->id_.c_str(), launch.program.c_str(),
           static_cast<int>(self->process_->pid()), self->creator_.user_id.c_str());
  return session;
}

PtySession::~PtySession() {
  // Handles first, so no callback reaches a half-destroyed session; the process hangs up last.
  master_poll_.reset();
  idle_timer_.reset();
  kill_timer_.reset();
  viewers_.clear();
}

Status PtySession::attach(int fd, const Identity& who, uint16_t cols, uint16_t rows) {
  if (ended_) {
    ::close(fd);
    return make_error("session " + id_ + " has ended");
  }
  if (viewers_.size() >= context_.config->max_viewers) {
    airlock::Bytes frame;
    airlock::pty::encode_error("session " + id_ + " has too many viewers", frame);
    (void)!::write(fd, frame.data(), frame.size());
    ::close(fd);
    return make_error("session " + id_ + " has too many viewers");
  }
  auto opened = PtyViewer::open(context_.loop, fd, *this, who, cols, rows);
  if (!opened) return opened.error();
  PtyViewer& viewer = **opened;
  bool reattached = attached_before_;
  attached_before_ = true;
  uv_timer_stop(idle_timer_.get());

  // Resize first, so the repaint is drawn at the size this viewer's terminal has.
  resize(cols, rows);
  airlock::Bytes frames;
  airlock::pty::encode_session({id_, reattached, cols_, rows_}, frames);
  viewer.send(as_chars(frames));
  if (reattached) send_repaint(viewer);
  viewers_.push_back(std::move(*opened));

  audit(who, "attach", {{"reattached", reattached}, {"viewers", viewers_.size()}, {"cols", cols}, {"rows", rows}});
  LOG_INFO(kLog, "session %s: viewer %llu attached (%s, %zu viewing)", id_.c_str(),
           static_cast<unsigned long long>(viewer.number()), reattached ? "reattached" : "new", viewers_.size());
  update_polling();
  return Ok{};
}

void PtySession::send_repaint(PtyViewer& viewer) {
  airlock::Bytes frames;
  airlock::pty::encode_output(as_bytes(screen_.repaint()), frames);
  viewer.send(as_chars(frames));
}

void PtySession::viewer_input(PtyViewer& viewer, ByteView bytes) {
  if (ended_ || !process_ || process_->master() < 0) return;
  // The viewer who types is the one looking: the terminal takes its size.
  if (viewer.cols() != cols_ || viewer.rows() != rows_) resize(viewer.cols(), viewer.rows());
  if (bytes.empty()) return;
  pending_input_.append(as_chars(bytes));
  write_master();
  if (!input_paused_ && pending_input_.size() >= context_.config->flow.input_pause_bytes) {
    // The shell is not reading what is typed (a paste into a busy program): stop taking input.
    input_paused_ = true;
    for (auto& v : viewers_) v->pause_input();
  }
  update_polling();
}

void PtySession::write_master() {
  while (!pending_input_.empty() && process_->master() >= 0) {
    ssize_t n = ::write(process_->master(), pending_input_.data(), pending_input_.size());
    if (n > 0) {
      pending_input_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    // EIO: the terminal has no reader any more; the shell's exit follows.
    LOG_DEBUG(kLog, "session %s: input dropped: %s", id_.c_str(), n < 0 ? std::strerror(errno) : "short write");
    pending_input_.clear();
  }
  if (input_paused_ && pending_input_.size() < context_.config->flow.input_pause_bytes / 2) {
    input_paused_ = false;
    for (auto& v : viewers_) v->resume_input();
  }
}

void PtySession::viewer_resize(PtyViewer& viewer, uint16_t cols, uint16_t rows) {
  viewer.set_size(cols, rows);
  resize(cols, rows);
}

void PtySession::resize(uint16_t cols, uint16_t rows) {
  if (cols == cols_ && rows == rows_) return;
  cols_ = cols;
  rows_ = rows;
  screen_.resize(cols, rows);
  if (process_ && process_->master() >= 0) {
    if (Status resized = process_->resize(cols, rows); !resized) {
      LOG_WARN(kLog, "session %s: resize to %ux%u: %s", id_.c_str(), cols, rows, resized.error().message.c_str());
    }
  }
}

void PtySession::viewer_drained(PtyViewer& viewer) {
  if (viewer.stale() && viewer.queued() <= context_.config->flow.viewer_pause_bytes / 2) {
    // Caught up with what was queued: show it the screen as it is now, then resume live output.
    viewer.set_stale(false);
    send_repaint(viewer);
    LOG_INFO(kLog, "session %s: viewer %llu resynced from the screen model", id_.c_str(),
             static_cast<unsigned long long>(viewer.number()));
  }
  update_polling();
}

void PtySession::viewer_gone(PtyViewer& viewer, const std::string& reason, bool malformed) {
  if (malformed) {
    LOG_WARN(kLog, "session %s: viewer %llu closed: %s", id_.c_str(), static_cast<unsigned long long>(viewer.number()),
             reason.c_str());
    airlock::Bytes frame;
    airlock::pty::encode_error(reason, frame);
    viewer.finish(as_chars(frame), *context_.lingering);
  } else {
    LOG_INFO(kLog, "session %s: viewer %llu detached (%s)", id_.c_str(),
             static_cast<unsigned long long>(viewer.number()), reason.c_str());
  }
  audit(viewer.who(), "detach", {{"reason", reason}});
  remove_viewer(viewer);
}

void PtySession::remove_viewer(PtyViewer& viewer) {
  auto it = std::find_if(viewers_.begin(), viewers_.end(), [&](const auto& v) { return v.get() == &viewer; });
  if (it != viewers_.end()) viewers_.erase(it);
  if (viewers_.empty() && !ended_) {
    uv_timer_start(
        idle_timer_.get(),
        [](uv_timer_t* timer) {
          if (auto* self = static_cast<PtySession*>(timer->data)) self->idle_expired();
        },
        static_cast<uint64_t>(context_.config->idle_timeout.count()), 0);
  }
  update_polling();
}

void PtySession::idle_expired() {
  if (ended_ || !viewers_.empty()) return;
  LOG_INFO(kLog, "session %s: no viewer for %lld ms: hanging up", id_.c_str(),
           static_cast<long long>(context_.config->idle_timeout.count()));
  end_reason_ = "idle timeout";
  master_poll_.reset();  // before the master it polls is closed
  process_->hang_up();
  uv_timer_start(
      kill_timer_.get(),
      [](uv_timer_t* timer) {
        auto* self = static_cast<PtySession*>(timer->data);
        if (self == nullptr || self->ended_) return;
        LOG_WARN(kLog, "session %s: shell ignored the hang-up: killing it", self->id_.c_str());
        self->process_->kill();
      },
      static_cast<uint64_t>(context_.config->hangup_grace.count()), 0);
}

bool PtySession::output_blocked() const {
  if (viewers_.empty()) return false;  // nobody to wait for: the screen model takes it all
  size_t bound = context_.config->flow.viewer_pause_bytes;
  return std::all_of(viewers_.begin(), viewers_.end(),
                     [&](const auto& v) { return v->stale() || v->queued() >= bound; });
}

void PtySession::update_polling() {
  if (!master_poll_ || !process_ || process_->master() < 0) return;
  int events = 0;
  if (!master_eof_ && !output_blocked()) events |= UV_READABLE;
  if (!pending_input_.empty()) events |= UV_WRITABLE;
  if (events == poll_events_) return;
  poll_events_ = events;
  if (events == 0) {
    uv_poll_stop(master_poll_.get());
    return;
  }
  uv_poll_start(master_poll_.get(), events, [](uv_poll_t* poll, int status, int ready) {
    if (auto* self = static_cast<PtySession*>(poll->data)) self->on_master_ready(status, ready);
  });
}

void PtySession::on_master_ready(int status, int events) {
  if (status < 0) {
    // EBADF and friends: the master is unusable; the exit status still comes from the process.
    master_eof_ = true;
  } else {
    if (events & UV_WRITABLE) write_master();
    if (events & UV_READABLE) read_master(kReadsPerWakeup * read_buffer_.size());
  }
  update_polling();
}

void PtySession::read_master(size_t budget) {
  while (budget > 0 && !master_eof_ && process_->master() >= 0 && !output_blocked()) {
    ssize_t n = ::read(process_->master(), read_buffer_.data(), std::min(read_buffer_.size(), budget));
    if (n > 0) {
      budget -= static_cast<size_t>(n);
      on_output(ByteView(read_buffer_.data(), static_cast<size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    // EIO (Linux) or 0: no process holds the terminal any more; the exit status follows.
    master_eof_ = true;
  }
}

void PtySession::on_output(ByteView bytes) {
  screen_.feed(bytes);
  // Shell integration (OSC 133/633 command marks, OSC 7) will read `bytes` here, beside the model.
  bytes_from_pty_ += bytes.size();
  if (viewers_.empty()) return;
  airlock::Bytes frames;
  airlock::pty::encode_output(bytes, frames);
  std::string_view encoded = as_chars(frames);
  for (auto& viewer : viewers_) deliver(*viewer, encoded);
}

void PtySession::deliver(PtyViewer& viewer, std::string_view frames) {
  if (viewer.stale()) return;
  if (viewer.queued() + frames.size() > context_.config->flow.viewer_resync_bytes) {
    // Buffering more for a viewer this far behind would be unbounded: repaint it later instead.
    viewer.set_stale(true);
    LOG_INFO(kLog, "session %s: viewer %llu is %zu bytes behind: live output paused for it", id_.c_str(),
             static_cast<unsigned long long>(viewer.number()), viewer.queued());
    return;
  }
  viewer.send(frames);
}

void PtySession::on_exit(airlock::pty::ExitStatus status) {
  // What the shell wrote before exiting is in the pty already: read it before saying goodbye.
  if (master_poll_ && process_->master() >= 0) {
    size_t budget = kExitDrainBytes;
    while (budget > 0) {
      ssize_t n = ::read(process_->master(), read_buffer_.data(), std::min(read_buffer_.size(), budget));
      if (n > 0) {
        budget -= static_cast<size_t>(n);
        on_output(ByteView(read_buffer_.data(), static_cast<size_t>(n)));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      break;
    }
  }
  end(status);
}

void PtySession::end(airlock::pty::ExitStatus status) {
  if (ended_) return;
  ended_ = true;
  master_poll_.reset();
  uv_timer_stop(idle_timer_.get());
  uv_timer_stop(kill_timer_.get());
  LOG_INFO(kLog, "session %s: shell ended (%s; code %u, signal %u)", id_.c_str(), end_reason_.c_str(), status.code,
           status.signal);

  airlock::Bytes exit_frame;
  airlock::pty::encode_exit(status, exit_frame);
  for (auto& viewer : viewers_) {
    // A viewer that fell behind gets the final screen before the exit status.
    if (viewer->stale()) send_repaint(*viewer);
    viewer->finish(as_chars(exit_frame), *context_.lingering);
    audit(viewer->who(), "detach", {{"reason", "session ended"}});
  }
  viewers_.clear();
  audit(creator_, "session_end", {{"reason", end_reason_}, {"exit_code", status.code}, {"signal", status.signal}});
  if (context_.ended) context_.ended();
}

void PtySession::shut_down() {
  if (ended_) return;
  ended_ = true;
  end_reason_ = "agent shutdown";
  master_poll_.reset();
  airlock::Bytes frame;
  airlock::pty::encode_error("the agent is shutting down", frame);
  for (auto& viewer : viewers_) {
    viewer->finish(as_chars(frame), *context_.lingering);
    audit(viewer->who(), "detach", {{"reason", end_reason_}});
  }
  viewers_.clear();
  if (process_) process_->hang_up();
  audit(creator_, "session_end", {{"reason", end_reason_}});
}

PtySessionStats PtySession::stats() const {
  PtySessionStats stats;
  stats.viewers = viewers_.size();
  for (const auto& viewer : viewers_) {
    if (viewer->stale()) ++stats.stale_viewers;
    stats.max_viewer_queued = std::max(stats.max_viewer_queued, viewer->queued());
  }
  stats.bytes_from_pty = bytes_from_pty_;
  stats.output_paused = !master_eof_ && output_blocked();
  stats.pending_input = pending_input_.size();
  stats.cols = cols_;
  stats.rows = rows_;
  return stats;
}

void PtySession::audit(const Identity& who, const char* event, nlohmann::json details) const {
  if (!context_.config->audit) return;
  details["service"] = "pty";
  context_.config->audit(who, AuditNote{event, id_, std::move(details)});
}

}  // namespace airlock::agent::pty
