// Joins one tunnel stream to local libuv stream handles: a TCP socket (port-forward), one end of
// a socketpair (a service), or stdin/stdout (the ssh ProxyCommand).
//
// Flow control both ways, so neither side buffers without bound:
//   local -> peer: read only while the stream has credit; on a short write stop reading until
//                  the stream says it is writable again;
//   peer -> local: return credit (PeerLink::consume) only when the local write has completed.
// What the stream delivers in one loop turn goes out in one write (a writev of the chunks, taken
// over without a copy), not one write per stream frame.
// Local EOF half-closes the stream; the peer's half-close shuts down the local write side. The
// bridge deletes itself when both directions are done or either side resets. Nothing received is
// lost on the way out: bytes that came before the peer's reset are still written locally, and a
// local side that stopped reading (EPIPE) is still read to its EOF, while the peer's further
// bytes are dropped.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <uv.h>

#include "common/net/tunnel_node.hpp"

namespace airlock::net {

class StreamBridge final : public StreamHandler {
 public:
  // Why the bridge ended: empty for a clean close of both directions.
  using DoneCallback = std::function<void(const std::string& reason)>;

  // Takes ownership of the handles: `in` is read, `out` is written (they may be the same
  // handle). The handles must be initialised on the node's loop and not yet reading. The bridge
  // starts reading once start() is called (after open/accept gave it a stream id).
  StreamBridge(PeerLink& link, uv_stream_t* in, uv_stream_t* out, DoneCallback done = {});
  void start(stream::StreamId id);

  // Opens a uv handle for an fd of any kind (socket, pipe, tty); nullptr with errno-ish message
  // on failure. The handle is owned by the caller until passed to a bridge.
  static uv_stream_t* wrap_fd(uv_loop_t* loop, int fd, std::string* error);

  void on_accepted() override {}
  void on_data(ByteView data) override;
  void on_data_owned(Bytes&& data) override;
  void on_writable() override;
  void on_finished() override;
  void on_reset(uint32_t code, std::string_view reason) override;
  void on_closed() override;

  // Resets the stream and closes the local side (e.g. the local socket failed).
  void abort(const std::string& reason);

 private:
  ~StreamBridge() override;
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf);
  static void on_write_done(uv_write_t* req, int status);
  void flush_out();
  void local_write_failed(int status, size_t unwritten);
  static void on_shutdown_done(uv_shutdown_t* req, int status);
  void send_pending();
  void maybe_finish();
  void close_local();
  static void on_handle_closed(uv_handle_t* h);

  PeerLink& link_;
  stream::StreamId id_ = 0;
  uv_stream_t* in_;
  uv_stream_t* out_;
  DoneCallback done_;
  std::string end_reason_;

  // local -> peer: one read buffer; what the stream did not take waits here, reading paused.
  static constexpr size_t kReadBufferSize = 64 * 1024;
  std::unique_ptr<uint8_t[]> read_buffer_;
  size_t pending_offset_ = 0, pending_size_ = 0;
  bool reading_ = false;
  bool local_eof_ = false;   // local side sent EOF; the stream was finished
  // peer -> local: chunks waiting for the end of the loop turn (flush_idle_), then in flight.
  std::vector<Bytes> out_pending_;
  size_t out_pending_bytes_ = 0;
  uv_idle_t* flush_idle_ = nullptr;
  size_t writes_in_flight_ = 0;
  bool peer_finished_ = false;
  // No more writes to the local side: the peer finished (and it was shut down), or the local side
  // stopped reading (EPIPE); the peer's further bytes are dropped.
  bool out_shutdown_ = false;
  bool peer_reset_ = false;     // the peer reset: the local side closes once the last writes are out
  bool stream_closed_ = false;  // the link will not call us again
  int handles_open_ = 0;
  bool closing_ = false;
};

}  // namespace airlock::net
