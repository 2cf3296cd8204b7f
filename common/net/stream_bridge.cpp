#include "common/net/stream_bridge.hpp"

#include <cstring>

#include "common/util/log.hpp"

namespace airlock::net {

namespace {
struct WriteRequest {
  uv_write_t req;
  StreamBridge* bridge;
  std::vector<Bytes> chunks;
  size_t bytes;
};
}  // namespace

uv_stream_t* StreamBridge::wrap_fd(uv_loop_t* loop, int fd, std::string* error) {
  uv_handle_type type = uv_guess_handle(fd);
  int rc;
  uv_stream_t* s = nullptr;
  if (type == UV_TCP) {
    auto* h = new uv_tcp_t;
    rc = uv_tcp_init(loop, h);
    if (rc == 0) rc = uv_tcp_open(h, fd);
    if (rc == 0) uv_tcp_nodelay(h, 1);
    s = reinterpret_cast<uv_stream_t*>(h);
  } else if (type == UV_TTY) {
    auto* h = new uv_tty_t;
    rc = uv_tty_init(loop, h, fd, 0);
    s = reinterpret_cast<uv_stream_t*>(h);
  } else {
    auto* h = new uv_pipe_t;
    rc = uv_pipe_init(loop, h, 0);
    if (rc == 0) rc = uv_pipe_open(h, fd);
    s = reinterpret_cast<uv_stream_t*>(h);
  }
  if (rc != 0) {
    if (error) *error = uv_strerror(rc);
    // The handle was initialised (or not): closing is safe either way once init succeeded.
    uv_close(reinterpret_cast<uv_handle_t*>(s), [](uv_handle_t* h) { delete h; });
    return nullptr;
  }
  return s;
}

StreamBridge::StreamBridge(PeerLink& link, uv_stream_t* in, uv_stream_t* out, DoneCallback done)
    : link_(link), in_(in), out_(out), done_(std::move(done)) {
  in_->data = this;
  out_->data = this;
  handles_open_ = in_ == out_ ? 1 : 2;
}

StreamBridge::~StreamBridge() = default;

void StreamBridge::start(stream::StreamId id) {
  id_ = id;
  reading_ = true;
  int rc = uv_read_start(in_, on_alloc, on_read);
  if (rc != 0) abort(std::string("cannot read local side: ") + uv_strerror(rc));
}

void StreamBridge::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = static_cast<StreamBridge*>(h->data);
  if (!self->read_buffer_) self->read_buffer_.reset(new uint8_t[kReadBufferSize]);
  buf->base = reinterpret_cast<char*>(self->read_buffer_.get());
  buf->len = kReadBufferSize;
}

void StreamBridge::on_read(uv_stream_t* s, ssize_t n, const uv_buf_t*) {
  auto* self = static_cast<StreamBridge*>(s->data);
  if (n == 0) return;
  if (n < 0) {
    if (n == UV_EOF) {
      self->reading_ = false;
      uv_read_stop(s);
      self->local_eof_ = true;
      if (!self->stream_closed_) self->link_.finish(self->id_);
      self->maybe_finish();
    } else {
      self->abort(std::string("local read failed: ") + uv_strerror(static_cast<int>(n)));
    }
    return;
  }
  self->pending_offset_ = 0;
  self->pending_size_ = static_cast<size_t>(n);
  self->send_pending();
}

void StreamBridge::send_pending() {
  if (stream_closed_) return;
  size_t taken = link_.write(id_, ByteView(read_buffer_.get() + pending_offset_, pending_size_));
  pending_offset_ += taken;
  pending_size_ -= taken;
  if (pending_size_ > 0) {
    // The stream is out of credit: stop reading until it says it is writable again.
    if (reading_) {
      uv_read_stop(in_);
      reading_ = false;
    }
  } else if (!reading_ && !local_eof_ && !closing_) {
    reading_ = true;
    uv_read_start(in_, on_alloc, on_read);
  }
}

void StreamBridge::on_writable() {
  if (pending_size_ > 0 || (!reading_ && !local_eof_)) send_pending();
}

void StreamBridge::on_data(ByteView data) { on_data_owned(Bytes(data.begin(), data.end())); }

void StreamBridge::on_data_owned(Bytes&& data) {
  if (closing_ || out_shutdown_) {
    link_.consume(id_, data.size());
    return;
  }
  out_pending_bytes_ += data.size();
  out_pending_.push_back(std::move(data));
  if (!flush_idle_) {
    flush_idle_ = new uv_idle_t;
    uv_idle_init(out_->loop, flush_idle_);
    flush_idle_->data = this;
    ++handles_open_;
  }
  // An active idle handle also keeps the loop from blocking in poll before the flush.
  uv_idle_start(flush_idle_, [](uv_idle_t* h) {
    uv_idle_stop(h);
    static_cast<StreamBridge*>(h->data)->flush_out();
  });
}

void StreamBridge::flush_out() {
  if (out_pending_.empty() || closing_) return;
  auto* w = new WriteRequest{{}, this, std::move(out_pending_), out_pending_bytes_};
  out_pending_.clear();
  out_pending_bytes_ = 0;
  std::vector<uv_buf_t> bufs;
  bufs.reserve(w->chunks.size());
  for (auto& c : w->chunks) bufs.push_back(uv_buf_init(reinterpret_cast<char*>(c.data()), static_cast<unsigned>(c.size())));
  w->req.data = w;
  int rc = uv_write(&w->req, out_, bufs.data(), static_cast<unsigned>(bufs.size()), on_write_done);
  if (rc != 0) {
    size_t size = w->bytes;
    delete w;
    local_write_failed(rc, size);
    return;
  }
  ++writes_in_flight_;
}

void StreamBridge::local_write_failed(int status, size_t unwritten) {
  // The peer's bytes that did not go out still free their credit: the peer is not held up.
  if (!stream_closed_ && unwritten > 0) link_.consume(id_, unwritten);
  // Nothing is written after the shut down, so this write went out before an EPIPE that ended
  // this direction already.
  if (out_shutdown_) return maybe_finish();
  if (status != UV_EPIPE) return abort(std::string("local write failed: ") + uv_strerror(status));
  // The local side stopped reading (it closed, or shut down its read side). What it wrote before
  // that still goes to the peer: a service that refuses with a message and closes is heard, so
  // reading goes on until its EOF. From now on the peer's bytes have nowhere to go and are
  // dropped, and the stream ends normally once the peer finishes too.
  LOG_DEBUG("bridge", "stream %llu: the local side stopped reading; dropping what the peer sends",
            static_cast<unsigned long long>(id_));
  out_shutdown_ = true;
  if (!stream_closed_ && out_pending_bytes_ > 0) link_.consume(id_, out_pending_bytes_);
  out_pending_.clear();
  out_pending_bytes_ = 0;
  maybe_finish();
}

void StreamBridge::on_write_done(uv_write_t* req, int status) {
  auto* w = static_cast<WriteRequest*>(req->data);
  StreamBridge* self = w->bridge;
  size_t size = w->bytes;
  delete w;
  --self->writes_in_flight_;
  if (status == UV_ECANCELED) {
    self->maybe_finish();
    return;
  }
  if (status != 0) {
    self->local_write_failed(status, size);
    return;
  }
  // Credit goes back only now, so a slow local reader slows the peer down instead of filling us.
  if (!self->stream_closed_) self->link_.consume(self->id_, size);
  self->maybe_finish();
}

void StreamBridge::on_finished() {
  peer_finished_ = true;
  flush_out();  // the last bytes go out before the local write side is shut down
  maybe_finish();
}

void StreamBridge::maybe_finish() {
  if (closing_) {
    if (writes_in_flight_ == 0 && handles_open_ == 0 && stream_closed_) delete this;
    return;
  }
  if (peer_finished_ && writes_in_flight_ == 0 && out_pending_.empty() && !out_shutdown_) {
    out_shutdown_ = true;
    if (out_ == in_ || out_->type == UV_TCP || out_->type == UV_NAMED_PIPE) {
      auto* req = new uv_shutdown_t;
      req->data = this;
      if (uv_shutdown(req, out_, on_shutdown_done) != 0) delete req;
    }
    // stdout (a separate write handle) simply gets no more data; closing it comes with the rest.
  }
  // After a reset, closing loses nothing once libuv holds no unwritten bytes (the rest is in the
  // kernel); a local reader that is slow to take the last bytes is waited for.
  if (peer_reset_ && (writes_in_flight_ == 0 || uv_stream_get_write_queue_size(out_) == 0)) return close_local();
  if (peer_finished_ && local_eof_ && writes_in_flight_ == 0 && out_pending_.empty()) close_local();
}

void StreamBridge::on_shutdown_done(uv_shutdown_t* req, int) { delete req; }

void StreamBridge::on_reset(uint32_t code, std::string_view reason) {
  end_reason_ = std::string(reason.empty() ? "stream reset by peer" : reason);
  // What the peer sent before the reset came first and still goes out (a refusal's message, the
  // last screen); the local side closes once it is written. Nothing more is read from it.
  peer_reset_ = true;
  if (reading_) uv_read_stop(in_);
  reading_ = false;
  pending_size_ = 0;
  if (!out_shutdown_) flush_out();
  maybe_finish();
}

void StreamBridge::on_closed() {
  stream_closed_ = true;
  if (!closing_ && !(peer_finished_ && local_eof_)) {
    if (end_reason_.empty()) end_reason_ = "stream closed";
  }
  if (peer_reset_) return maybe_finish();  // the last writes are still going out
  close_local();
}

void StreamBridge::abort(const std::string& reason) {
  if (end_reason_.empty()) end_reason_ = reason;
  if (!stream_closed_) {
    stream_closed_ = true;
    link_.detach(id_, reason);
  }
  close_local();
}

void StreamBridge::close_local() {
  if (closing_) {
    maybe_finish();
    return;
  }
  closing_ = true;
  if (reading_) uv_read_stop(in_);
  reading_ = false;
  out_pending_.clear();  // the stream is over: nobody will read them
  out_pending_bytes_ = 0;
  uv_close(reinterpret_cast<uv_handle_t*>(in_), on_handle_closed);
  if (out_ != in_) uv_close(reinterpret_cast<uv_handle_t*>(out_), on_handle_closed);
  if (flush_idle_) uv_close(reinterpret_cast<uv_handle_t*>(flush_idle_), on_handle_closed);
  if (done_) {
    auto done = std::move(done_);
    done_ = nullptr;
    done(end_reason_);
  }
}

void StreamBridge::on_handle_closed(uv_handle_t* h) {
  auto* self = static_cast<StreamBridge*>(h->data);
  switch (h->type) {
    case UV_TCP: delete reinterpret_cast<uv_tcp_t*>(h); break;
    case UV_TTY: delete reinterpret_cast<uv_tty_t*>(h); break;
    case UV_IDLE: delete reinterpret_cast<uv_idle_t*>(h); break;
    default: delete reinterpret_cast<uv_pipe_t*>(h); break;
  }
  --self->handles_open_;
  self->maybe_finish();
}

}  // namespace airlock::net
