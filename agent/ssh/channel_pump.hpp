// Moves bytes between one SSH channel and local fds (a pty master, a child's pipes, a TCP
// socket), with flow control both ways:
//  - towards the client: an fd is read only while the channel's remote window is open and
//    libssh's output queue has drained, and never more than the window, so nothing piles up in
//    the agent when the client (or the tunnel) is slow;
//  - towards the fd: bytes the fd cannot take yet are left inside libssh (the data callback
//    consumes less than it was given), which stops libssh from re-opening the client's window;
//    they are pulled back with ssh_channel_read_nonblocking() when the fd is writable.
// At most one read buffer and one pending write buffer per channel live here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <uv.h>

#include "agent/ssh/handles.hpp"
#include "agent/ssh/waker.hpp"
#include "common/net/uv_handle.hpp"
#include "common/util/unique_fd.hpp"

namespace airlock::agent::ssh {

class ChannelPump {
 public:
  // What the client's EOF does to the fd that takes the channel's data.
  enum class OnRemoteEof { keep, close_fd, shutdown_write };

  ChannelPump(uv_loop_t* loop, ssh_session session, ssh_channel channel, Waker waker);
  ~ChannelPump();
  ChannelPump(const ChannelPump&) = delete;
  ChannelPump& operator=(const ChannelPump&) = delete;

  // One fd both ways (pty master, socket): `on_eof` says how the client's EOF is passed on.
  bool attach_duplex(UniqueFd fd, OnRemoteEof on_eof);
  // A child's pipes: channel data -> in, out -> channel data, err -> extended data (stderr).
  bool attach_pipes(UniqueFd in, UniqueFd out, UniqueFd err);

  // libssh's channel callbacks forward here.
  int on_data(const void* data, uint32_t len, int is_stderr);
  void on_eof();

  // Re-arms the fd polls from the current window, libssh output queue and buffer state; the
  // owner calls it after every event.
  void update();
  // Stop reading and writing; closes the fds (a pty master's close hangs up the child).
  void stop();

  bool attached() const { return !ends_.empty(); }
  bool output_eof() const { return out_eof_ && err_eof_; }  // every output fd ended
  bool failed() const { return failed_; }
  int duplex_fd() const;  // the pty master or socket, -1 otherwise
  // The client's EOF arrived and was passed on (after every byte before it was written).
  bool input_finished() const { return remote_eof_ && !in_blocked_; }
  // Bytes may already wait inside libssh (data that came before the fd existed): pull them
  // once the fd is writable.
  void expect_buffered_input() { in_blocked_ = true; }
  // Pretend the output ended (a pty whose child is gone but whose slave side stays open).
  void force_output_eof() { out_eof_ = err_eof_ = true; }

 private:
  enum Role : unsigned { kIn = 1, kOut = 2, kErr = 4 };
  struct End {
    ChannelPump* pump = nullptr;
    UniqueFd fd;
    net::UvHandle<uv_poll_t> poll;
    unsigned roles = 0;
    int events = 0;
  };

  End* add_end(UniqueFd fd, unsigned roles);
  End* end_with(Role role) const;
  void handle(End* end, int status, int events);
  void read_output(End* end, bool is_stderr);
  void flush_input();
  void finish_input();
  bool can_send() const;
  static void on_poll(uv_poll_t* handle, int status, int events);

  uv_loop_t* loop_;
  ssh_session session_;
  ssh_channel channel_;
  Waker waker_;
  std::vector<std::unique_ptr<End>> ends_;
  OnRemoteEof on_remote_eof_ = OnRemoteEof::keep;
  bool out_eof_ = true;
  bool err_eof_ = true;
  bool in_done_ = false;      // the input fd is gone (closed, shut down, or the reader left)
  bool in_blocked_ = false;   // bytes wait in pending_ or inside libssh
  bool remote_eof_ = false;
  bool failed_ = false;
  std::string pending_;       // pulled from libssh, not yet taken by the fd
  size_t pending_offset_ = 0;
  std::vector<char> buffer_;
};

}  // namespace airlock::agent::ssh
