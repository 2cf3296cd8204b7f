#include "agent/pty/viewer.hpp"
#include "agent/pty/pty_config.hpp"

#include <unistd.h>

#include <atomic>

#include "common/util/log.hpp"

namespace airlock::agent::pty {
namespace {

std::atomic<uint64_t> g_next_viewer{1};

}  // namespace

// A write request that owns the bytes it writes.
struct WriteRequest {
  uv_write_t req{};
  std::string bytes;
};

struct LingeringPipes::Shutdown {
  static void done(uv_shutdown_t* request, int) {
    auto* handle = reinterpret_cast<uv_pipe_t*>(request->handle);
    auto* registry = static_cast<LingeringPipes*>(request->data);
    delete request;
    // A closing handle was closed by close_all(), whose registry may be gone already.
    if (uv_is_closing(reinterpret_cast<uv_handle_t*>(handle))) return;
    registry->pipes_.erase(handle);
    net::UvHandle<uv_pipe_t>::close_and_free(handle);
  }
};

void LingeringPipes::add(net::UvHandle<uv_pipe_t> pipe) {
  uv_pipe_t* handle = pipe.release();
  if (handle == nullptr) return;
  handle->data = nullptr;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(handle));
  auto* request = new uv_shutdown_t{};
  request->data = this;
  // The shutdown waits for the queued writes, so the last frames reach the viewer before EOF.
  if (uv_shutdown(request, reinterpret_cast<uv_stream_t*>(handle), &Shutdown::done) != 0) {
    delete request;
    net::UvHandle<uv_pipe_t>::close_and_free(handle);
    return;
  }
  pipes_.insert(handle);
}

void LingeringPipes::close_all() {
  for (uv_pipe_t* handle : pipes_) net::UvHandle<uv_pipe_t>::close_and_free(handle);
  pipes_.clear();
}

PtyViewer::PtyViewer(Owner& owner, Identity who, uint16_t cols, uint16_t rows)
    : owner_(owner), who_(std::move(who)), number_(g_next_viewer++), cols_(cols), rows_(rows) {}

PtyViewer::~PtyViewer() = default;

Result<std::unique_ptr<PtyViewer>> PtyViewer::open(uv_loop_t* loop, int fd, Owner& owner, Identity who, uint16_t cols,
                                                   uint16_t rows) {
  std::unique_ptr<PtyViewer> viewer(new PtyViewer(owner, std::move(who), cols, rows));
  if (int rc = viewer->pipe_.init([&](uv_pipe_t* p) { return uv_pipe_init(loop, p, 0); }); rc != 0) {
    ::close(fd);
    return make_error(std::string("uv_pipe_init: ") + uv_strerror(rc));
  }
  if (int rc = uv_pipe_open(viewer->pipe_.get(), fd); rc != 0) {
    ::close(fd);
    return make_error(std::string("uv_pipe_open: ") + uv_strerror(rc));
  }
  viewer->pipe_->data = viewer.get();
  viewer->resume_input();
  return viewer;
}

void PtyViewer::resume_input() {
  if (reading_ || !pipe_) return;
  int rc = uv_read_start(
      reinterpret_cast<uv_stream_t*>(pipe_.get()),
      [](uv_handle_t* handle, size_t, uv_buf_t* buf) {
        auto* self = static_cast<PtyViewer*>(handle->data);
        if (self == nullptr) {
          *buf = uv_buf_init(nullptr, 0);
          return;
        }
        *buf = uv_buf_init(self->read_buffer_.data(), static_cast<unsigned>(self->read_buffer_.size()));
      },
      [](uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
        if (auto* self = static_cast<PtyViewer*>(stream->data)) self->on_read(nread);
      });
  reading_ = rc == 0;
  if (rc != 0) LOG_WARN(kLog, "viewer %llu: uv_read_start: %s", static_cast<unsigned long long>(number_), uv_strerror(rc));
}

void PtyViewer::pause_input() {
  if (!reading_ || !pipe_) return;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(pipe_.get()));
  reading_ = false;
}

void PtyViewer::on_read(ssize_t nread) {
  if (nread == 0) return;  // EAGAIN
  if (nread < 0) {
    pause_input();
    std::string reason = nread == UV_EOF ? (decoder_.buffered() > 0 ? "closed in the middle of a frame" : "closed")
                                         : std::string(uv_strerror(static_cast<int>(nread)));
    owner_.viewer_gone(*this, reason, false);
    return;  // this object may be gone
  }
  // The owner may drop this viewer from inside any callback; the handle outlives it and says so.
  uv_pipe_t* handle = pipe_.get();
  decoder_.push(ByteView(reinterpret_cast<const uint8_t*>(read_buffer_.data()), static_cast<size_t>(nread)));
  for (;;) {
    auto next = decoder_.next();
    if (!next) {
      pause_input();
      owner_.viewer_gone(*this, next.error().message, true);
      return;
    }
    if (!next->has_value()) return;
    airlock::pty::Frame& frame = **next;
    if (auto* input = std::get_if<airlock::pty::Input>(&frame)) {
      owner_.viewer_input(*this, input->data);
    } else if (auto* resize = std::get_if<airlock::pty::Resize>(&frame)) {
      owner_.viewer_resize(*this, resize->cols, resize->rows);
    }
    if (handle->data == nullptr) return;
  }
}

void PtyViewer::send(std::string_view frames) {
  if (!pipe_ || broken_ || frames.empty()) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(pipe_.get());
  size_t written = 0;
  if (stream->write_queue_size == 0) {
    uv_buf_t buf = uv_buf_init(const_cast<char*>(frames.data()), static_cast<unsigned>(frames.size()));
    int n = uv_try_write(stream, &buf, 1);
    if (n >= 0) {
      written = static_cast<size_t>(n);
    } else if (n != UV_EAGAIN) {
      // The read side sees the same failure and reports it; nothing more is sent meanwhile.
      broken_ = true;
      return;
    }
  }
  if (written == frames.size()) return;

  auto* request = new WriteRequest{};
  request->bytes.assign(frames.substr(written));
  request->req.data = request;
  uv_buf_t buf = uv_buf_init(request->bytes.data(), static_cast<unsigned>(request->bytes.size()));
  int rc = uv_write(&request->req, stream, &buf, 1, [](uv_write_t* req, int status) {
    uv_stream_t* stream = req->handle;
    delete static_cast<WriteRequest*>(req->data);
    auto* self = static_cast<PtyViewer*>(stream->data);
    if (self == nullptr) return;
    if (status < 0) {
      self->broken_ = true;
      self->owner_.viewer_gone(*self, std::string("write: ") + uv_strerror(status), false);
      return;
    }
    self->owner_.viewer_drained(*self);
  });
  if (rc != 0) {
    delete request;
    broken_ = true;
  }
}

size_t PtyViewer::queued() const { return pipe_ ? pipe_->write_queue_size : 0; }

void PtyViewer::finish(std::string_view last_frames, LingeringPipes& lingering) {
  send(last_frames);
  pause_input();
  if (pipe_) lingering.add(std::move(pipe_));
}

}  // namespace airlock::agent::pty
