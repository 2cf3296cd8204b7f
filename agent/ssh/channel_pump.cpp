#include "agent/ssh/channel_pump.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/util/log.hpp"
#include "common/util/unique_fd.hpp"

namespace airlock::agent::ssh {
namespace {

// One read per readiness event: big enough for bulk transfers (scp, sftp) to run at disk speed,
// small enough that one busy channel cannot starve the others on the loop.
constexpr size_t kReadChunk = 64 * 1024;

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

}  // namespace

ChannelPump::ChannelPump(uv_loop_t* loop, ssh_session session, ssh_channel channel, Waker waker)
    : loop_(loop), session_(session), channel_(channel), waker_(waker) {}

ChannelPump::~ChannelPump() { stop(); }

ChannelPump::End* ChannelPump::add_end(UniqueFd fd, unsigned roles) {
  auto end = std::make_unique<End>();
  end->pump = this;
  end->roles = roles;
  int rc = end->poll.init([&](uv_poll_t* p) { return uv_poll_init(loop_, p, fd.get()); });
  if (rc != 0) {
    LOG_WARN("ssh", "cannot poll fd %d: %s", fd.get(), uv_strerror(rc));
    return nullptr;
  }
  end->poll->data = end.get();
  end->fd = std::move(fd);
  ends_.push_back(std::move(end));
  return ends_.back().get();
}

bool ChannelPump::attach_duplex(UniqueFd fd, OnRemoteEof on_eof) {
  buffer_.resize(kReadChunk);
  on_remote_eof_ = on_eof;
  out_eof_ = false;
  if (add_end(std::move(fd), kIn | kOut) == nullptr) return false;
  update();
  return true;
}

bool ChannelPump::attach_pipes(UniqueFd in, UniqueFd out, UniqueFd err) {
  buffer_.resize(kReadChunk);
  on_remote_eof_ = OnRemoteEof::close_fd;
  out_eof_ = false;
  err_eof_ = false;
  if (add_end(std::move(in), kIn) == nullptr || add_end(std::move(out), kOut) == nullptr ||
      add_end(std::move(err), kErr) == nullptr)
    return false;
  update();
  return true;
}

ChannelPump::End* ChannelPump::end_with(Role role) const {
  for (const auto& end : ends_)
    if (end->roles & role) return end.get();
  return nullptr;
}

int ChannelPump::duplex_fd() const {
  End* end = end_with(kOut);
  return end != nullptr && (end->roles & kIn) ? end->fd.get() : -1;
}

bool ChannelPump::can_send() const {
  if (failed_ || !ssh_channel_is_open(channel_) || ssh_channel_window_size(channel_) == 0) return false;
  // Bytes still queued in libssh for the socket: wait until they are gone before producing more.
  return (ssh_get_poll_flags(session_) & SSH_WRITE_PENDING) == 0;
}

void ChannelPump::update() {
  bool sending = can_send();
  for (auto& end : ends_) {
    if (!end->fd.valid()) continue;
    int events = 0;
    if ((end->roles & kOut) && !out_eof_ && sending) events |= UV_READABLE;
    if ((end->roles & kErr) && !err_eof_ && sending) events |= UV_READABLE;
    if ((end->roles & kIn) && !in_done_ && in_blocked_) events |= UV_WRITABLE;
    if (events == end->events) continue;
    end->events = events;
    if (events == 0) {
      uv_poll_stop(end->poll.get());
    } else if (uv_poll_start(end->poll.get(), events, &ChannelPump::on_poll) != 0) {
      failed_ = true;
    }
  }
}

void ChannelPump::on_poll(uv_poll_t* handle, int status, int events) {
  auto* end = static_cast<End*>(handle->data);
  if (end == nullptr) return;
  Waker waker = end->pump->waker_;
  end->pump->handle(end, status, events);
  waker();  // last: the owner may destroy this pump
}

void ChannelPump::handle(End* end, int status, int events) {
  if (status < 0) {
    // Error on the fd itself (a refused or reset socket, a pipe whose reader left): what it
    // carried has ended, and bytes still waiting for it have nowhere to go. A socket's own error
    // (a connect refused after the channel opened) fails the channel, which then closes.
    int err = 0;
    socklen_t size = sizeof(err);
    if ((end->roles & kOut) && ::getsockopt(end->fd.get(), SOL_SOCKET, SO_ERROR, &err, &size) == 0 && err != 0) {
      LOG_DEBUG("ssh", "channel socket failed: %s", std::strerror(err));
      failed_ = true;
    }
    if (end->roles & kOut) out_eof_ = true;
    if (end->roles & kErr) err_eof_ = true;
    if (end->roles & kIn) {
      in_done_ = true;
      in_blocked_ = false;
    }
    uv_poll_stop(end->poll.get());
    end->events = 0;
    return;
  }
  if ((events & UV_WRITABLE) && (end->roles & kIn)) flush_input();
  if (events & UV_READABLE) {
    if (end->roles & kOut) read_output(end, false);
    if (end->roles & kErr) read_output(end, true);
  }
}

void ChannelPump::read_output(End* end, bool is_stderr) {
  bool& eof = is_stderr ? err_eof_ : out_eof_;
  if (eof || !end->fd.valid() || !can_send()) return;
  size_t want = std::min<size_t>(buffer_.size(), ssh_channel_window_size(channel_));
  ssize_t n = ::read(end->fd.get(), buffer_.data(), want);
  if (n < 0 && would_block(errno)) return;
  if (n <= 0) {
    // 0: EOF on a pipe or socket; EIO: a pty whose slave side is closed. Anything else (a reset
    // or refused socket) is a failure the owner turns into a channel close.
    eof = true;
    if (n < 0 && errno != EIO) failed_ = true;
    return;
  }
  int written = is_stderr ? ssh_channel_write_stderr(channel_, buffer_.data(), static_cast<uint32_t>(n))
                          : ssh_channel_write(channel_, buffer_.data(), static_cast<uint32_t>(n));
  if (written != n) {
    LOG_DEBUG("ssh", "channel write failed (%d of %zd bytes): %s", written, n, ssh_get_error(session_));
    failed_ = true;
  }
}

int ChannelPump::on_data(const void* data, uint32_t len, int is_stderr) {
  // Clients send no extended data; and once nobody reads the input, dropping keeps the window
  // moving so that the channel can still close cleanly.
  if (is_stderr || in_done_) return static_cast<int>(len);
  if (in_blocked_) return 0;  // earlier bytes wait: keep order, leave these inside libssh
  End* in = end_with(kIn);
  if (in == nullptr || !in->fd.valid()) return static_cast<int>(len);
  ssize_t n = ::write(in->fd.get(), data, len);
  if (n == static_cast<ssize_t>(len)) return static_cast<int>(len);
  if (n < 0 && !would_block(errno)) {
    in_done_ = true;  // EPIPE: the child closed its stdin
    return static_cast<int>(len);
  }
  in_blocked_ = true;
  return n > 0 ? static_cast<int>(n) : 0;
}

void ChannelPump::flush_input() {
  End* in = end_with(kIn);
  while (in != nullptr && in->fd.valid() && !in_done_) {
    while (pending_offset_ < pending_.size()) {
      ssize_t n = ::write(in->fd.get(), pending_.data() + pending_offset_, pending_.size() - pending_offset_);
      if (n < 0 && would_block(errno)) return;
      if (n <= 0) {
        in_done_ = true;
        pending_.clear();
        pending_offset_ = 0;
        in_blocked_ = false;
        return;
      }
      pending_offset_ += static_cast<size_t>(n);
    }
    pending_.clear();
    pending_offset_ = 0;
    // Pull what libssh kept back; this also lets it re-open the client's window.
    int n = ssh_channel_read_nonblocking(channel_, buffer_.data(), static_cast<uint32_t>(buffer_.size()), 0);
    if (n <= 0) break;
    pending_.assign(buffer_.data(), static_cast<size_t>(n));
  }
  in_blocked_ = false;
  if (remote_eof_) finish_input();
}

void ChannelPump::on_eof() {
  remote_eof_ = true;
  if (!in_blocked_) finish_input();
}

void ChannelPump::finish_input() {
  End* in = end_with(kIn);
  if (in == nullptr || in_done_) return;
  switch (on_remote_eof_) {
    case OnRemoteEof::keep:
      return;  // a pty has no half-close: the user ends the session by typing `exit`
    case OnRemoteEof::shutdown_write:
      ::shutdown(in->fd.get(), SHUT_WR);
      in_done_ = true;
      return;
    case OnRemoteEof::close_fd:
      in->poll.reset();
      in->fd.reset();
      in->events = 0;
      in_done_ = true;
      return;
  }
}

void ChannelPump::stop() {
  for (auto& end : ends_) {
    end->poll.reset();  // before the fd: libuv must not poll a closed (or reused) fd number
    end->fd.reset();
  }
  ends_.clear();
  in_done_ = true;
  out_eof_ = err_eof_ = true;
}

}  // namespace airlock::agent::ssh
