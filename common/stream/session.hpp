// The stream multiplexer (layer 3) as a sans-I/O core: many independent streams inside the
// payloads of one tunnel session. Tunnel payloads and the current time go in; payloads to send,
// a timer deadline and events come out. It never touches a socket or a clock, so the same object
// runs on the libuv loop, in unit tests with a fake clock and link, and in the fuzzer. Not
// thread-safe: one Session belongs to one event loop. Wire format: frames.hpp.
//
// What it gives each stream: open with a service name and JSON arguments, ordered bytes each way,
// half-close, reset; credit flow control with auto-tuned windows (a stalled consumer stops only
// its own stream, and no queue grows past a window); interactive streams ahead of bulk ones with
// round robin inside a class; and across relay restarts and reconnects, every byte exactly once:
// stream frames carry sequence numbers, the sender keeps them until acknowledged, and resume()
// (or a retransmit timeout) sends whatever the peer has not got.
//
// Driving it (the I/O layer between the tunnel and the services):
//
//   Session s(Role::initiator);                       // client; the agent is Role::responder
//   on a tunnel payload:      s.receive(payload, now);
//   on the timer:             s.on_timer(now);
//   on link reconnected:      s.resume(now);
//   after any of these and after API calls:
//     while the link can take more and (p = s.poll_payload(now)):  send p->bytes, priority bit
//                                                                  from p->priority;
//     while ((e = s.poll_event())):                   handle e (below);
//     re-arm the timer for s.next_deadline().
//
// Backpressure is in both directions: poll_payload() is only called while the link has room, so
// nothing queues beyond the streams' windows; write() accepts only what the stream can buffer and
// a StreamWritable event says when to write again; the receiving application calls consume() when
// it has really disposed of bytes, and only then does the peer get more credit.
//
// Streams: open() as the opener; the other side gets StreamOpened and answers accept() or
// reset(id, kResetRefused, why). The opener may write at once (up to the initial window) and gets
// StreamAccepted later. Both directions end with finish() (the peer gets StreamFinished after the
// last StreamData), or the whole stream ends with reset() (the peer gets StreamReset). When both
// directions are done and the peer has acknowledged everything, StreamClosed says the stream's
// resources are gone. Every stream the application knows of ends with exactly one StreamClosed.
//
// Errors: API misuse returns an Error. Bad input from the peer never throws: a frame that is
// malformed or breaks the protocol (unknown type, truncated, data beyond credit, ...) ends the
// session with one SessionError event (the I/O layer then closes the tunnel session); a bad open
// (service name, arguments) or a frame for a stream that never existed resets just that stream
// and is reported as StreamRejected. Frames for a stream already closed here are stragglers the
// peer sent before it learnt of the close, and are dropped.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>

#include <nlohmann/json.hpp>

#include "common/stream/frames.hpp"
#include "common/stream/retransmit_buffer.hpp"
#include "common/stream/rtt.hpp"
#include "common/stream/send_buffer.hpp"
#include "common/stream/window.hpp"
#include "common/util/bytes.hpp"
#include "common/util/result.hpp"

namespace airlock::stream {

using namespace std::chrono_literals;

// Which end of the tunnel this is; decides stream id parity (initiator odd, responder even).
enum class Role : uint8_t { initiator, responder };

struct Config {
  // Auto-tuning stops doubling a bulk stream's receive window here.
  uint64_t max_window = kDefaultMaxWindow;
  // ... and an interactive stream's here. Bytes in flight wait in FIFO TCP buffers on the way,
  // where nothing can overtake them, and the window grows on the smoothed RTT that this very
  // queueing inflates, so a busy stream always reaches its maximum: a terminal flooding output
  // holds at most this much ahead of a Ctrl-C, and a port-forward download (bulk) gets the larger
  // window that a fast, far link needs (16 MiB fills 1.3 Gbit/s at 100 ms).
  uint64_t max_interactive_window = kDefaultMaxInteractiveWindow;
  // How far past the peer's credit write() accepts bytes, so data is ready the moment credit
  // arrives. A stream holds at most (credit not yet acknowledged) + this many bytes to send.
  uint64_t send_buffer = 256 * 1024;
  // An ack waits at most this long for a payload to ride on, or this many bytes arrive first.
  Duration max_ack_delay = 10ms;
  uint64_t ack_every_bytes = 512 * 1024;
  // Retransmit timeout bounds (the estimate is max(4 srtt, srtt + 4 rttvar + ack delay)).
  Duration min_rto = 1s;
  Duration max_rto = 60s;
  // Streams the peer may have open at once; more are reset with kResetTooManyStreams.
  size_t max_peer_streams = 1024;
};

// ---- events ------------------------------------------------------------------------------------
// The peer opened a stream: accept(id) or reset(id, code, reason). Data may already follow.
struct StreamOpened {
  StreamId id = 0;
  std::string service;
  nlohmann::json args;  // always an object
  Priority priority = Priority::interactive;
};
// The peer accepted a stream this side opened.
struct StreamAccepted {
  StreamId id = 0;
};
// Bytes from the peer, in order. Call consume(id, n) once they are disposed of.
struct StreamData {
  StreamId id = 0;
  Bytes bytes;
};
// A write() that accepted less than it was given can now accept more.
struct StreamWritable {
  StreamId id = 0;
};
// The peer half-closed: no more StreamData for this stream.
struct StreamFinished {
  StreamId id = 0;
};
// The peer reset the stream (both directions are over; write() now fails).
struct StreamReset {
  StreamId id = 0;
  uint32_t code = 0;
  std::string reason;
};
// The stream is gone, both directions done and acknowledged. Its id is never reused.
struct StreamClosed {
  StreamId id = 0;
};
// The peer sent something this side refused for one stream (a bad open, data for a stream that
// does not exist); the mux reset that stream on its own. For logs: there is nothing to do.
struct StreamRejected {
  StreamId id = 0;
  uint32_t code = 0;
  std::string reason;
};
// The peer broke the protocol; the session is over (every later call is a no-op or an error).
struct SessionError {
  std::string reason;
};

using Event = std::variant<StreamOpened, StreamAccepted, StreamData, StreamWritable, StreamFinished, StreamReset,
                           StreamClosed, StreamRejected, SessionError>;

// A payload for the tunnel. priority sets the relay's interactive bit: a payload is interactive
// unless it carries bulk stream frames.
struct OutgoingPayload {
  Bytes bytes;
  Priority priority = Priority::interactive;
};

struct StreamStats {
  Priority priority = Priority::interactive;
  uint64_t written = 0;          // bytes the application wrote
  uint64_t sent = 0;             // bytes sent at least once
  uint64_t acked = 0;            // bytes the peer acknowledged
  uint64_t send_credit = 0;      // the peer lets us send up to this offset
  uint64_t send_buffered = 0;    // written - acked: what this side holds for the stream
  uint64_t received = 0;         // bytes from the peer
  uint64_t consumed = 0;         // bytes the application consumed
  uint64_t recv_buffered = 0;    // received - consumed
  uint64_t recv_window = 0;      // current (auto-tuned) receive window
  uint64_t recv_max_offset = 0;  // credit granted to the peer
};

struct SessionStats {
  Duration srtt{0};
  Duration rto{0};
  size_t streams = 0;
  uint64_t payloads_sent = 0;
  uint64_t frames_sent = 0;           // stream frames, first transmissions
  uint64_t frames_retransmitted = 0;
  uint64_t duplicates_received = 0;   // stream frames dropped as already taken
  uint64_t gaps_detected = 0;         // stream frames dropped because an earlier one was lost
  uint64_t stale_frames_dropped = 0;  // stream frames for streams already closed here (sent before the close reached the peer)
  uint64_t retransmit_timeouts = 0;   // timeouts that sent frames again (the link had answered a probe)
  uint64_t probes_sent = 0;           // timeouts that first asked the peer for a sign of life
  uint64_t resumes_received = 0;
};

class Session {
 public:
  explicit Session(Role role, Config config = {});

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // ---- streams ----
  // Opens a stream. service: 1..kMaxServiceName of [A-Za-z0-9._-]; args: a JSON object that
  // serializes to at most kMaxOpenArgs bytes (null means {}).
  Result<StreamId> open(std::string_view service, const nlohmann::json& args, Priority priority);
  // Takes a stream the peer opened (after StreamOpened). Succeeds, sending nothing, if the peer
  // has reset the stream since (its StreamReset and StreamClosed may still be queued).
  Status accept(StreamId id);
  // Queues bytes; returns how many were taken (maybe 0: wait for StreamWritable).
  Result<size_t> write(StreamId id, ByteView data);
  // The application has disposed of n more bytes of this stream's StreamData: the peer may get
  // credit for them. Consuming on a stream that has since closed is accepted and ignored.
  Status consume(StreamId id, size_t n);
  // Half-close: nothing more to write; the peer gets StreamFinished after the last byte.
  Status finish(StreamId id);
  // Aborts the stream both ways (also the answer that refuses an open). Unsent bytes are dropped,
  // queued events for the stream are discarded. reason is cut to kMaxResetReason bytes.
  Status reset(StreamId id, uint32_t code, std::string_view reason);

  // ---- I/O ----
  // One tunnel payload from the peer (trailing zero padding is fine).
  void receive(ByteView payload, TimePoint now);
  // The next payload to send, interactive streams first; nullopt when there is nothing to send
  // now. max_size is clamped to [kMinPayloadSize, kMaxPayloadSize].
  std::optional<OutgoingPayload> poll_payload(TimePoint now, size_t max_size = kMaxPayloadSize);
  // When on_timer() wants to run (delayed acks, retransmit timeouts); nullopt if never.
  std::optional<TimePoint> next_deadline() const;
  void on_timer(TimePoint now);
  // The link came back (relay restart, reconnect): tell the peer what arrived so it sends the
  // rest, and ask for the same from it.
  void resume(TimePoint now);
  std::optional<Event> poll_event();

  // ---- introspection ----
  bool broken() const { return broken_; }
  Role role() const { return role_; }
  std::optional<StreamStats> stream_stats(StreamId id) const;
  SessionStats stats() const;

 private:
  struct Stream {
    StreamId id = 0;
    Priority priority = Priority::interactive;
    bool local = false;      // this side opened it
    bool app_knows = true;   // the application has seen its id (false for a rejected open)
    bool accepted = false;   // opener: the peer accepted; acceptor: accept() was called
    // Open frame contents, until sent.
    std::string open_service;
    std::string open_args;
    // Sending direction.
    SendBuffer send;
    uint64_t sent = 0;
    SendCredit credit;
    bool write_blocked = false;
    bool fin_requested = false;
    bool fin_sent = false;
    // Both directions.
    bool reset_sent = false;      // this side reset it (the frame may still be queued)
    bool reset_received = false;
    uint32_t reset_code = 0;
    std::string reset_reason;
    // Receiving direction.
    ReceiveWindow recv;
    bool fin_received = false;
    bool window_queued = false;
    // Queued control frames plus sent-but-unacked frames that name this stream: it cannot be
    // forgotten before they are gone.
    uint32_t frames_pending = 0;
    bool in_ring = false;

    explicit Stream(uint64_t max_window) : recv(max_window) {}
    bool aborted() const { return reset_sent || reset_received; }
  };

  // A stream frame waiting for a payload: its seq is given when it is put in one, so sequence
  // order is send order. Resets for streams that do not exist carry their own code and reason.
  struct ControlItem {
    FrameType type = FrameType::window;
    StreamId stream = 0;
    bool stateless = false;  // no Stream behind it (even if one with this id appears later)
    uint32_t code = 0;
    std::string reason;
  };

  // The receiving half of one lane.
  struct LaneReceiver {
    uint64_t received = 0;         // last seq taken
    TimePoint received_at{};       // when it was taken (for the ack's delay field)
    bool ack_pending = false;      // an ack owes the peer news
    bool ack_due = false;          // ... and it must go now, payload or not
    TimePoint ack_deadline{};
    uint64_t bytes_since_ack = 0;
    uint64_t nacked_at_seq = 0;    // received value when the last gap resume was sent
    std::optional<TimePoint> nacked_at;
  };

  struct Lane {
    RetransmitBuffer sent;
    std::deque<ControlItem> control;
    std::deque<StreamId> ring;  // streams with data or a fin to send, round robin
    LaneReceiver rx;
    unsigned rto_backoff = 0;
    TimePoint rto_from{};                 // the retransmit clock runs from here at the earliest (resume)
    std::optional<TimePoint> expired_at;  // the timeout passed: resend once a probe shows the link is up
  };

  // receive()
  void handle(const AckFrame& f, TimePoint now);
  void handle(const ResumeFrame& f, TimePoint now);
  void handle(const PingFrame& f, TimePoint now);
  void handle(const PongFrame& f, TimePoint now);
  void handle(const PaddingFrame&, TimePoint) {}
  bool take_seq(const StreamHeader& h, size_t frame_size, TimePoint now);
  void handle_open(const OpenFrame& f);
  void handle_accept(const AcceptFrame& f);
  void handle_data(const DataFrame& f);
  void handle_window(const WindowFrame& f);
  void handle_fin(const FinFrame& f);
  void handle_reset(const ResetFrame& f);
  Stream* stream_for(const StreamHeader& h, FrameType type);
  void no_stream(const StreamHeader& h, FrameType type);
  void reject(StreamId id, Priority lane, uint32_t code, std::string reason);
  void process_ack(Priority lane, uint64_t received, Duration ack_delay, bool rtt_sample, TimePoint now);
  void on_probe_answered(TimePoint ping_sent_at);

  // poll_payload()
  bool lane_has_work(const Lane& lane) const;
  void put_lane_frames(Lane& lane, Priority which, Bytes& out, size_t max, TimePoint now);
  bool put_control(Lane& lane, Priority which, Bytes& out, size_t max, TimePoint now);
  bool put_stream_data(Lane& lane, Priority which, Bytes& out, size_t max, TimePoint now);
  bool sendable(const Stream& s) const;
  void schedule(Stream& s);
  void queue_control(Stream& s, FrameType type);

  // bookkeeping
  Stream* find(StreamId id);
  const Stream* find(StreamId id) const;
  bool is_local_id(StreamId id) const;
  bool was_closed(StreamId id) const;
  void maybe_close(Stream& s);
  uint64_t write_space(const Stream& s) const;
  uint64_t max_window(Priority p) const {
    return p == Priority::interactive ? config_.max_interactive_window : config_.max_window;
  }
  Duration retransmit_timeout(const Lane& lane) const;
  std::optional<TimePoint> retransmit_deadline(const Lane& lane) const;
  void fail(std::string reason);
  void emit(Event event) { events_.push_back(std::move(event)); }

  Role role_;
  Config config_;
  bool broken_ = false;
  std::unordered_map<StreamId, Stream> streams_;
  size_t peer_streams_ = 0;       // open streams the peer opened
  StreamId next_local_id_;
  // The highest id the peer opened, per lane: opens of one lane arrive in id order, but a lane may
  // overtake the other, so across lanes they need not.
  StreamId highest_peer_id_[kLaneCount] = {0, 0};
  Lane lanes_[kLaneCount];
  size_t stateless_resets_ = 0;   // queued resets for streams that do not exist
  RttEstimator rtt_;
  std::deque<Event> events_;

  // session frames waiting for a payload
  uint8_t resume_flags_ = 0;
  bool awaiting_resume_ = false;  // this side sent a resume asking for a reply
  TimePoint resume_sent_at_{};
  bool ping_due_ = true;          // first payload measures the RTT at once
  uint64_t ping_counter_ = 0;
  std::optional<std::pair<uint64_t, TimePoint>> ping_outstanding_;
  std::optional<TimePoint> ping_answered_;  // send time of the ping whose pong the current payload carried
  std::deque<uint64_t> pongs_;

  SessionStats stats_;
};

}  // namespace airlock::stream
