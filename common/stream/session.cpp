#include "common/stream/session.hpp"

#include <algorithm>
#include <limits>

namespace airlock::stream {

namespace {

// Resets for streams that do not exist are answers to the peer's frames; past this many queued at
// once the peer is flooding us with them, and the session ends rather than buffer its noise.
constexpr size_t kMaxStatelessResets = 256;
// A data frame smaller than this is not worth its header unless it is all the stream has.
constexpr size_t kMinDataChunk = 1024;

constexpr size_t lane_index(Priority p) { return static_cast<size_t>(p); }

std::string id_text(StreamId id) { return "stream " + std::to_string(id); }

// Empty on success, else why the name is not acceptable.
std::string check_service(std::string_view service) {
  if (service.empty()) return "empty service name";
  if (service.size() > kMaxServiceName) {
    return "service name of " + std::to_string(service.size()) + " bytes (at most " + std::to_string(kMaxServiceName) +
           ")";
  }
  for (char c : service) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-';
    if (!ok) return "service name has a byte outside [A-Za-z0-9._-]";
  }
  return {};
}

// Nesting depth of arrays and objects, outside strings; a cheap bound before the real parser.
size_t json_depth(std::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

Result<nlohmann::json> parse_args(std::string_view text) {
  if (text.empty()) return nlohmann::json::object();
  if (text.size() > kMaxOpenArgs) {
    return make_error("arguments of " + std::to_string(text.size()) + " bytes (at most " +
                      std::to_string(kMaxOpenArgs) + ")");
  }
  if (json_depth(text) > kMaxArgsDepth) {
    return make_error("arguments nest deeper than " + std::to_string(kMaxArgsDepth));
  }
  try {
    nlohmann::json args = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (args.is_discarded()) return make_error("arguments are not valid JSON");
    if (!args.is_object()) return make_error("arguments are not a JSON object");
    return args;
  } catch (const std::exception&) {
    return make_error("arguments are not valid JSON");
  }
}

std::string_view cut(std::string_view s, size_t n) { return s.substr(0, std::min(s.size(), n)); }

}  // namespace

Session::Session(Role role, Config config)
    : role_(role), config_(config), next_local_id_(role == Role::initiator ? 1 : 2) {
  if (config_.max_window < kInitialWindow) config_.max_window = kInitialWindow;
  if (config_.max_interactive_window < kInitialWindow) config_.max_interactive_window = kInitialWindow;
  if (config_.min_rto <= Duration::zero()) config_.min_rto = 1ms;
  if (config_.max_rto < config_.min_rto) config_.max_rto = config_.min_rto;
}

// ---- bookkeeping -------------------------------------------------------------------------------

Session::Stream* Session::find(StreamId id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : &it->second;
}

const Session::Stream* Session::find(StreamId id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : &it->second;
}

bool Session::is_local_id(StreamId id) const { return (id & 1u) == (role_ == Role::initiator ? 1u : 0u); }

// Ids are handed out in increasing order, so an id below the next one that is not in the map has
// been closed (rather than never used).
bool Session::was_closed(StreamId id) const {
  if (id == 0) return false;
  if (is_local_id(id)) return id < next_local_id_;
  return id <= std::max(highest_peer_id_[0], highest_peer_id_[1]);
}

void Session::maybe_close(Stream& s) {
  bool receive_done = s.aborted() || (s.fin_received && s.recv.buffered() == 0);
  bool send_done = s.aborted() || s.fin_sent;
  if (!receive_done || !send_done || s.frames_pending > 0) return;
  if (s.app_knows) emit(StreamClosed{s.id});
  if (!s.local) --peer_streams_;
  streams_.erase(s.id);
}

uint64_t Session::write_space(const Stream& s) const {
  uint64_t limit = s.credit.max_offset() + config_.send_buffer;
  uint64_t end = s.send.end_offset();
  return limit > end ? limit - end : 0;
}

Duration Session::retransmit_timeout(const Lane& lane) const {
  Duration rto = rtt_.retransmit_timeout(config_.max_ack_delay, config_.min_rto);
  for (unsigned i = 0; i < lane.rto_backoff && rto < config_.max_rto; ++i) rto *= 2;
  return std::min(rto, config_.max_rto);
}

// When on_timer() has to look at the lane's frames in flight: the oldest one (or the last resume,
// if later) plus the timeout; once expired, when the probe that asks the peer for a sign of life
// is to be repeated. nullopt while nothing is in flight or frames wait to be resent.
std::optional<TimePoint> Session::retransmit_deadline(const Lane& lane) const {
  if (lane.sent.resend_pending()) return std::nullopt;  // they go when the link polls
  const SentFrame* oldest = lane.sent.oldest_in_flight();
  if (!oldest) return std::nullopt;
  if (!lane.expired_at) return std::max(oldest->sent_at, lane.rto_from) + retransmit_timeout(lane);
  if (ping_due_) return std::nullopt;  // the probe goes with the next payload
  TimePoint probed = ping_outstanding_ ? std::max(ping_outstanding_->second, *lane.expired_at) : *lane.expired_at;
  return probed + retransmit_timeout(lane);
}

void Session::fail(std::string reason) {
  if (broken_) return;
  broken_ = true;
  emit(SessionError{std::move(reason)});
}

// ---- application API ---------------------------------------------------------------------------

Result<StreamId> Session::open(std::string_view service, const nlohmann::json& args, Priority priority) {
  if (broken_) return make_error("session is broken");
  if (std::string why = check_service(service); !why.empty()) return make_error(why);
  if (!args.is_null() && !args.is_object()) return make_error("arguments must be a JSON object");
  std::string args_text;
  try {
    args_text = args.is_null() ? "{}" : args.dump();
  } catch (const std::exception& e) {
    return make_error(std::string("arguments do not serialize: ") + e.what());
  }
  if (args_text.size() > kMaxOpenArgs) return make_error("arguments exceed " + std::to_string(kMaxOpenArgs) + " bytes");
  if (next_local_id_ > std::numeric_limits<StreamId>::max() - 2) return make_error("stream ids are exhausted");
  if (priority != Priority::interactive && priority != Priority::bulk) return make_error("unknown priority");

  StreamId id = next_local_id_;
  next_local_id_ += 2;
  auto [it, inserted] = streams_.try_emplace(id, max_window(priority));
  Stream& s = it->second;
  s.id = id;
  s.priority = priority;
  s.local = true;
  s.open_service = std::string(service);
  s.open_args = std::move(args_text);
  queue_control(s, FrameType::open);
  return id;
}

Status Session::accept(StreamId id) {
  if (broken_) return make_error("session is broken");
  Stream* s = find(id);
  if (!s && !is_local_id(id) && was_closed(id)) return Ok{};  // reset and gone: StreamClosed follows
  if (!s || !s->app_knows) return make_error("no " + id_text(id));
  if (s->local) return make_error(id_text(id) + " was opened by this side");
  if (s->accepted) return make_error(id_text(id) + " is already accepted");
  if (s->reset_sent) return make_error(id_text(id) + " was reset");
  s->accepted = true;
  // The peer may have reset it already, with the StreamReset still queued behind the StreamOpened
  // the application is answering: then there is nothing to send, and nothing went wrong.
  if (s->reset_received) return Ok{};
  queue_control(*s, FrameType::accept);
  return Ok{};
}

Result<size_t> Session::write(StreamId id, ByteView data) {
  if (broken_) return make_error("session is broken");
  Stream* s = find(id);
  if (!s || !s->app_knows) return make_error("no " + id_text(id));
  if (!s->local && !s->accepted) return make_error(id_text(id) + " is not accepted yet");
  if (s->aborted()) return make_error(id_text(id) + " was reset");
  if (s->fin_requested) return make_error(id_text(id) + " is finished");
  size_t n = static_cast<size_t>(std::min<uint64_t>(write_space(*s), data.size()));
  if (n > 0) s->send.append(data.first(n));
  if (n < data.size()) s->write_blocked = true;
  schedule(*s);
  return n;
}

Status Session::consume(StreamId id, size_t n) {
  if (broken_) return make_error("session is broken");
  Stream* s = find(id);
  if (!s) {
    if (was_closed(id)) return Ok{};
    return make_error("no " + id_text(id));
  }
  if (s->aborted()) return Ok{};
  if (n > s->recv.buffered()) {
    return make_error("consume(" + std::to_string(n) + ") on " + id_text(id) + " with only " +
                      std::to_string(s->recv.buffered()) + " bytes delivered");
  }
  s->recv.on_consumed(n);
  if (!s->fin_received && !s->window_queued && s->recv.wants_update()) {
    s->window_queued = true;
    queue_control(*s, FrameType::window);
  }
  maybe_close(*s);
  return Ok{};
}

Status Session::finish(StreamId id) {
  if (broken_) return make_error("session is broken");
  Stream* s = find(id);
  if (!s || !s->app_knows) return make_error("no " + id_text(id));
  if (!s->local && !s->accepted) return make_error(id_text(id) + " is not accepted yet");
  if (s->aborted()) return make_error(id_text(id) + " was reset");
  if (s->fin_requested) return Ok{};
  s->fin_requested = true;
  schedule(*s);
  return Ok{};
}

Status Session::reset(StreamId id, uint32_t code, std::string_view reason) {
  if (broken_) return make_error("session is broken");
  Stream* s = find(id);
  if ((!s || !s->app_knows) && !was_closed(id)) return make_error("no " + id_text(id));
  if (s && s->app_knows && !s->aborted()) {
    s->reset_sent = true;
    s->reset_code = code;
    s->reset_reason = std::string(cut(reason, kMaxResetReason));
    queue_control(*s, FrameType::reset);
  }
  // The application is done with this stream: what it has not read yet is moot, even when the
  // peer reset it first (or it is gone) and the events saying so are still queued.
  std::erase_if(events_, [id](const Event& e) {
    if (auto* d = std::get_if<StreamData>(&e)) return d->id == id;
    if (auto* f = std::get_if<StreamFinished>(&e)) return f->id == id;
    if (auto* w = std::get_if<StreamWritable>(&e)) return w->id == id;
    return false;
  });
  return Ok{};
}

std::optional<Event> Session::poll_event() {
  if (events_.empty()) return std::nullopt;
  Event e = std::move(events_.front());
  events_.pop_front();
  return e;
}

// ---- receiving ---------------------------------------------------------------------------------

void Session::receive(ByteView payload, TimePoint now) {
  size_t pos = 0;
  ping_answered_.reset();
  while (!broken_ && pos < payload.size()) {
    const size_t start = pos;
    auto frame = decode_frame(payload, pos);
    if (!frame) {
      fail(frame.error().message);
      return;
    }
    const size_t size = pos - start;
    std::visit(
        [&](const auto& f) {
          using T = std::decay_t<decltype(f)>;
          if constexpr (std::is_same_v<T, OpenFrame>) {
            if (take_seq(f.h, size, now)) handle_open(f);
          } else if constexpr (std::is_same_v<T, AcceptFrame>) {
            if (take_seq(f.h, size, now)) handle_accept(f);
          } else if constexpr (std::is_same_v<T, DataFrame>) {
            if (take_seq(f.h, size, now)) handle_data(f);
          } else if constexpr (std::is_same_v<T, WindowFrame>) {
            if (take_seq(f.h, size, now)) handle_window(f);
          } else if constexpr (std::is_same_v<T, FinFrame>) {
            if (take_seq(f.h, size, now)) handle_fin(f);
          } else if constexpr (std::is_same_v<T, ResetFrame>) {
            if (take_seq(f.h, size, now)) handle_reset(f);
          } else {
            handle(f, now);
          }
        },
        *frame);
  }
  // After the whole payload: acks that ride with the pong say what really needs resending.
  if (!broken_ && ping_answered_) on_probe_answered(*ping_answered_);
}

// Go-back-N: take exactly the next seq of the lane, drop the rest (and say so when it shows a
// loss). Returns whether the frame is to be processed.
bool Session::take_seq(const StreamHeader& h, size_t frame_size, TimePoint now) {
  Lane& lane = lanes_[lane_index(h.lane)];
  LaneReceiver& rx = lane.rx;
  if (h.seq <= rx.received) {
    // Already taken: the peer went back further than needed. Ack at once so it stops.
    ++stats_.duplicates_received;
    rx.ack_pending = true;
    rx.ack_due = true;
    return false;
  }
  if (h.seq > rx.received + 1) {
    ++stats_.gaps_detected;
    // Ask for everything after what we have, once per gap and retransmit timeout, so the frames
    // still in flight behind the loss do not each trigger another round of retransmissions.
    bool asked = rx.nacked_at && rx.nacked_at_seq == rx.received && now - *rx.nacked_at < retransmit_timeout(lane);
    if (!asked) {
      resume_flags_ |= h.lane == Priority::interactive ? kResumeRewindInteractive : kResumeRewindBulk;
      rx.nacked_at_seq = rx.received;
      rx.nacked_at = now;
    }
    return false;
  }
  rx.received = h.seq;
  rx.received_at = now;
  if (!rx.ack_pending) {
    rx.ack_pending = true;
    rx.ack_deadline = now + config_.max_ack_delay;
  }
  rx.bytes_since_ack += frame_size;
  if (rx.bytes_since_ack >= config_.ack_every_bytes) rx.ack_due = true;
  return true;
}

void Session::handle(const AckFrame& f, TimePoint now) {
  process_ack(f.lane, f.received, std::chrono::microseconds(f.delay_us), true, now);
}

void Session::process_ack(Priority which, uint64_t received, Duration ack_delay, bool rtt_sample, TimePoint now) {
  Lane& lane = lanes_[lane_index(which)];
  if (received >= lane.sent.next_seq()) {
    fail("ack for " + std::string(which == Priority::interactive ? "interactive" : "bulk") + " seq " +
         std::to_string(received) + ", but only " + std::to_string(lane.sent.next_seq() - 1) + " were sent");
    return;
  }
  if (received <= lane.sent.acked()) return;  // old news (acks may be overtaken)
  lane.rto_backoff = 0;
  lane.expired_at.reset();  // progress: the timeout starts over from the oldest frame left
  lane.sent.ack(received, [&](const SentFrame& frame) {
    if (rtt_sample && frame.seq == received && !frame.retransmitted) rtt_.add_sample(now - frame.sent_at, ack_delay);
    if (frame.stateless) return;  // a reset for a stream that never existed here
    Stream* s = find(frame.stream);
    if (!s) return;
    --s->frames_pending;
    if (frame.type == FrameType::data) s->send.release_until(frame.offset + frame.length);
    maybe_close(*s);
  });
}

void Session::handle(const ResumeFrame& f, TimePoint now) {
  ++stats_.resumes_received;
  for (Priority which : {Priority::interactive, Priority::bulk}) {
    process_ack(which, f.received[lane_index(which)], Duration::zero(), false, now);
    if (broken_) return;
  }
  if (f.flags & kResumeRewindInteractive) lanes_[0].sent.rewind();
  if (f.flags & kResumeRewindBulk) lanes_[1].sent.rewind();
  for (Lane& lane : lanes_) {
    if (lane.sent.resend_pending()) lane.expired_at.reset();
  }
  constexpr uint8_t kRewindBoth = kResumeRewindInteractive | kResumeRewindBulk;
  // A peer asking for a reply gets one, unless our own request is on its way and will tell it the
  // same (both sides usually call resume() at once; replying too would retransmit everything
  // twice). If our request is older than a retransmit timeout it may be lost: reply anyway.
  if (f.flags & kResumeReplyWanted) {
    bool ours_in_flight = awaiting_resume_ && now - resume_sent_at_ < retransmit_timeout(lanes_[0]);
    if (!ours_in_flight) resume_flags_ |= kRewindBoth;
  }
  if ((f.flags & kRewindBoth) == kRewindBoth) awaiting_resume_ = false;
}

void Session::handle(const PingFrame& f, TimePoint) {
  if (pongs_.size() < kMaxPendingPongs) pongs_.push_back(f.data);
}

void Session::handle(const PongFrame& f, TimePoint now) {
  if (!ping_outstanding_ || ping_outstanding_->first != f.data) return;  // stale or made up
  rtt_.add_sample(now - ping_outstanding_->second, Duration::zero());
  ping_answered_ = ping_outstanding_->second;
  ping_outstanding_.reset();
}

// The peer answered a ping sent at `ping_sent_at`: the link works both ways since then. A lane
// whose timeout had expired before that ping, and whose frames are still not acknowledged, lost
// them: go back and send them again.
void Session::on_probe_answered(TimePoint ping_sent_at) {
  for (Lane& lane : lanes_) {
    if (!lane.expired_at || ping_sent_at < *lane.expired_at) continue;
    lane.expired_at.reset();
    if (lane.sent.resend_pending() || !lane.sent.oldest_in_flight()) continue;
    lane.sent.rewind();
    ++lane.rto_backoff;
    ++stats_.retransmit_timeouts;
  }
}

// The stream a frame names, after the checks every stream frame shares; nullptr if there is none
// (the caller decides what that means for its frame type) or the session failed.
Session::Stream* Session::stream_for(const StreamHeader& h, FrameType type) {
  Stream* s = find(h.stream);
  if (s && s->priority != h.lane) {
    fail(std::string(frame_type_name(type)) + " frame for " + id_text(h.stream) + " in the wrong lane");
    return nullptr;
  }
  return s;
}

// A frame for a stream this side does not have. One that is closed here may still get frames the
// peer sent before it learnt of the close: after a reset, the ack that lets a stream go can
// overtake them (it may ride in an interactive payload, they in bulk ones). They are moot, and
// the peer already has the fin or reset that closed the stream: drop them. An id that was never
// opened is the peer's mistake with one stream: reset it.
void Session::no_stream(const StreamHeader& h, FrameType type) {
  if (was_closed(h.stream)) {
    ++stats_.stale_frames_dropped;
    return;
  }
  reject(h.stream, h.lane, kResetUnknownStream, std::string(frame_type_name(type)) + " for unknown " + id_text(h.stream));
}

void Session::reject(StreamId id, Priority which, uint32_t code, std::string reason) {
  if (stateless_resets_ >= kMaxStatelessResets) {
    fail("peer keeps sending frames for streams that do not exist");
    return;
  }
  ++stateless_resets_;
  lanes_[lane_index(which)].control.push_back(ControlItem{FrameType::reset, id, true, code, reason});
  emit(StreamRejected{id, code, std::move(reason)});
}

void Session::handle_open(const OpenFrame& f) {
  const StreamId id = f.h.stream;
  if (is_local_id(id)) {
    fail("peer opened " + id_text(id) + ", an id of this side's parity");
    return;
  }
  // The peer numbers its streams in open() order, and each lane carries its opens in that order;
  // only the other lane may still bring a lower id.
  StreamId& highest = highest_peer_id_[lane_index(f.h.lane)];
  if (id <= highest || find(id)) {
    fail("peer opened " + id_text(id) + " again (ids only grow within a lane)");
    return;
  }
  highest = id;

  auto [it, inserted] = streams_.try_emplace(id, max_window(f.h.lane));
  Stream& s = it->second;
  s.id = id;
  s.priority = f.h.lane;
  s.local = false;
  ++peer_streams_;

  std::string why;
  uint32_t code = kResetMalformedOpen;
  Result<nlohmann::json> args = nlohmann::json::object();
  if (why = check_service(f.service); why.empty()) {
    args = parse_args(f.args);
    if (!args) why = args.error().message;
  }
  if (why.empty() && peer_streams_ > config_.max_peer_streams) {
    why = "more than " + std::to_string(config_.max_peer_streams) + " open streams";
    code = kResetTooManyStreams;
  }
  if (!why.empty()) {
    // Keep the stream (as reset) so data already on its way is dropped quietly.
    s.app_knows = false;
    s.reset_sent = true;
    s.reset_code = code;
    s.reset_reason = std::string(cut(why, kMaxResetReason));
    queue_control(s, FrameType::reset);
    emit(StreamRejected{id, code, std::move(why)});
    return;
  }
  emit(StreamOpened{id, std::string(f.service), std::move(*args), f.h.lane});
}

void Session::handle_accept(const AcceptFrame& f) {
  Stream* s = stream_for(f.h, FrameType::accept);
  if (broken_) return;
  if (!s) return no_stream(f.h, FrameType::accept);
  if (!s->local) return fail("accept for " + id_text(s->id) + ", which the peer opened");
  if (s->accepted) return fail("second accept for " + id_text(s->id));
  s->accepted = true;
  if (!s->aborted()) emit(StreamAccepted{s->id});
}

void Session::handle_data(const DataFrame& f) {
  Stream* s = stream_for(f.h, FrameType::data);
  if (broken_) return;
  if (!s) return no_stream(f.h, FrameType::data);
  if (s->local && !s->accepted && !s->aborted()) return fail("data on " + id_text(s->id) + " before its accept");
  if (s->fin_received) return fail("data on " + id_text(s->id) + " after its fin");
  if (f.offset != s->recv.received()) {
    return fail("data on " + id_text(s->id) + " at offset " + std::to_string(f.offset) + ", expected " +
                std::to_string(s->recv.received()));
  }
  if (!s->recv.allows(f.offset, f.bytes.size())) {
    return fail("flow control violation: " + id_text(s->id) + " data up to offset " +
                std::to_string(f.offset + f.bytes.size()) + " beyond the credit of " +
                std::to_string(s->recv.max_offset()));
  }
  s->recv.on_received(f.bytes.size());
  if (s->aborted()) {
    s->recv.on_consumed(f.bytes.size());  // dropped, so nobody will consume it
    return;
  }
  if (!f.bytes.empty()) emit(StreamData{s->id, Bytes(f.bytes.begin(), f.bytes.end())});
}

void Session::handle_window(const WindowFrame& f) {
  Stream* s = stream_for(f.h, FrameType::window);
  if (!s) return;  // credit for a stream that is gone is harmless
  if (!s->credit.raise(f.max_offset) || s->aborted()) return;
  if (s->write_blocked && !s->fin_requested && write_space(*s) > 0) {
    s->write_blocked = false;
    emit(StreamWritable{s->id});
  }
  schedule(*s);
}

void Session::handle_fin(const FinFrame& f) {
  Stream* s = stream_for(f.h, FrameType::fin);
  if (broken_) return;
  if (!s) return no_stream(f.h, FrameType::fin);
  if (s->local && !s->accepted && !s->aborted()) return fail("fin on " + id_text(s->id) + " before its accept");
  if (s->fin_received) return fail("second fin on " + id_text(s->id));
  if (f.final_offset != s->recv.received()) {
    return fail("fin on " + id_text(s->id) + " at offset " + std::to_string(f.final_offset) + " but " +
                std::to_string(s->recv.received()) + " bytes arrived");
  }
  s->fin_received = true;
  if (!s->aborted()) emit(StreamFinished{s->id});
  maybe_close(*s);
}

void Session::handle_reset(const ResetFrame& f) {
  Stream* s = stream_for(f.h, FrameType::reset);
  if (!s || s->aborted()) return;  // nothing to abort, or both sides reset at once
  s->reset_received = true;
  // Bytes the application has not consumed are moot now; the stream can close without them.
  s->recv.on_consumed(s->recv.buffered());
  if (s->app_knows) emit(StreamReset{s->id, f.code, std::string(f.reason)});
  maybe_close(*s);
}

// ---- sending -----------------------------------------------------------------------------------

void Session::queue_control(Stream& s, FrameType type) {
  ++s.frames_pending;
  lanes_[lane_index(s.priority)].control.push_back(ControlItem{type, s.id, false, 0, {}});
}

bool Session::sendable(const Stream& s) const {
  if (s.aborted()) return false;
  uint64_t end = s.send.end_offset();
  if (s.sent < end) return s.sent < s.credit.max_offset();
  return s.fin_requested && !s.fin_sent;
}

void Session::schedule(Stream& s) {
  if (s.in_ring || !sendable(s)) return;
  s.in_ring = true;
  lanes_[lane_index(s.priority)].ring.push_back(s.id);
}

bool Session::lane_has_work(const Lane& lane) const {
  return lane.sent.resend_pending() || !lane.control.empty() || !lane.ring.empty();
}

std::optional<OutgoingPayload> Session::poll_payload(TimePoint now, size_t max_size) {
  if (broken_) return std::nullopt;
  const size_t max = std::clamp(max_size, kMinPayloadSize, kMaxPayloadSize);

  std::optional<Priority> lane;
  if (lane_has_work(lanes_[0])) {
    lane = Priority::interactive;
  } else if (lane_has_work(lanes_[1])) {
    lane = Priority::bulk;
  }
  bool session_due = resume_flags_ != 0 || ping_due_ || !pongs_.empty() || lanes_[0].rx.ack_due || lanes_[1].rx.ack_due;
  if (!lane && !session_due) return std::nullopt;

  OutgoingPayload p;
  p.bytes.reserve(lane == Priority::bulk ? max : 256);
  Bytes& out = p.bytes;

  // Session frames first: they are small, and the peer should learn of acks before anything else.
  if (resume_flags_ != 0) {
    ResumeFrame r;
    r.flags = resume_flags_;
    r.received[0] = lanes_[0].rx.received;
    r.received[1] = lanes_[1].rx.received;
    encode_resume(out, r);
    if (resume_flags_ & kResumeReplyWanted) {
      awaiting_resume_ = true;
      resume_sent_at_ = now;
    }
    resume_flags_ = 0;
  }
  while (!pongs_.empty()) {
    encode_pong(out, pongs_.front());
    pongs_.pop_front();
  }
  if (ping_due_) {
    ping_due_ = false;
    ping_outstanding_ = std::make_pair(++ping_counter_, now);
    encode_ping(out, ping_counter_);
  }
  for (Priority which : {Priority::interactive, Priority::bulk}) {
    LaneReceiver& rx = lanes_[lane_index(which)].rx;
    if (!rx.ack_pending && !rx.ack_due) continue;
    auto delay = std::chrono::duration_cast<std::chrono::microseconds>(now - rx.received_at).count();
    delay = std::clamp<int64_t>(delay, 0, std::numeric_limits<uint32_t>::max());
    encode_ack(out, AckFrame{which, rx.received, static_cast<uint32_t>(delay)});
    rx.ack_pending = false;
    rx.ack_due = false;
    rx.bytes_since_ack = 0;
  }

  const size_t session_bytes = out.size();
  if (lane) {
    put_lane_frames(lanes_[lane_index(*lane)], *lane, out, max, now);
    if (out.size() == session_bytes && *lane == Priority::interactive && lane_has_work(lanes_[1])) {
      // The interactive lane only had stale entries (streams reset since): let bulk use the payload.
      lane = Priority::bulk;
      out.reserve(max);
      put_lane_frames(lanes_[1], Priority::bulk, out, max, now);
    }
    if (out.size() == session_bytes) lane.reset();
  }
  if (out.empty()) return std::nullopt;
  p.priority = lane.value_or(Priority::interactive);
  ++stats_.payloads_sent;
  return p;
}

void Session::put_lane_frames(Lane& lane, Priority which, Bytes& out, size_t max, TimePoint now) {
  // Retransmissions first and in order: the peer takes nothing newer until it has them.
  while (lane.sent.resend_pending()) {
    SentFrame& f = lane.sent.next_resend();
    if (f.type == FrameType::data) {
      if (max - out.size() < kDataHeaderSize + f.length) return;
      const Stream* s = find(f.stream);  // present: it has this frame pending
      encode_data_header(out, StreamHeader{which, f.seq, f.stream}, f.offset, static_cast<uint16_t>(f.length));
      size_t at = out.size();
      out.resize(at + f.length);
      s->send.copy_out(f.offset, f.length, out.data() + at);
    } else {
      if (max - out.size() < f.encoded.size()) return;
      out.insert(out.end(), f.encoded.begin(), f.encoded.end());
    }
    lane.sent.mark_resent(now);
    ++stats_.frames_retransmitted;
  }
  while (!lane.control.empty()) {
    if (!put_control(lane, which, out, max, now)) return;
  }
  while (!lane.ring.empty()) {
    if (!put_stream_data(lane, which, out, max, now)) return;
  }
}

// Sends the first control item of the lane; false if it does not fit in this payload.
bool Session::put_control(Lane& lane, Priority which, Bytes& out, size_t max, TimePoint now) {
  ControlItem& item = lane.control.front();
  Stream* s = item.stateless ? nullptr : find(item.stream);
  size_t size = 0;
  switch (item.type) {
    case FrameType::open: size = kOpenHeaderSize + s->open_service.size() + s->open_args.size(); break;
    case FrameType::reset: size = kResetHeaderSize + (s ? s->reset_reason.size() : item.reason.size()); break;
    default: size = kWindowFrameSize; break;
  }
  if (max - out.size() < size) return false;

  ControlItem taken = std::move(item);
  lane.control.pop_front();
  if (!s) {
    // A reset answering a frame for a stream that does not exist.
    --stateless_resets_;
  } else {
    --s->frames_pending;
  }

  SentFrame sent;
  sent.type = taken.type;
  sent.stream = taken.stream;
  sent.stateless = taken.stateless;
  sent.sent_at = now;
  const StreamHeader h{which, lane.sent.next_seq(), taken.stream};
  switch (taken.type) {
    case FrameType::open:
      encode_open(sent.encoded, h, s->open_service, s->open_args);
      s->open_service.clear();
      s->open_service.shrink_to_fit();
      s->open_args.clear();
      s->open_args.shrink_to_fit();
      break;
    case FrameType::accept:
      if (s->reset_received) break;  // the peer gave up first: nothing to accept
      encode_accept(sent.encoded, h);
      break;
    case FrameType::window: {
      s->window_queued = false;
      if (s->aborted() || s->fin_received) break;
      auto grant = s->recv.grant(now, rtt_);
      if (grant) encode_window(sent.encoded, h, *grant);
      break;
    }
    case FrameType::reset:
      if (!s) {
        encode_reset(sent.encoded, h, taken.code, taken.reason);
      } else if (!s->reset_received) {
        encode_reset(sent.encoded, h, s->reset_code, s->reset_reason);
      }
      break;
    default: break;
  }
  if (sent.encoded.empty()) {
    // Went stale while queued: nothing is sent, no seq is used.
    if (s) maybe_close(*s);
    return true;
  }
  out.insert(out.end(), sent.encoded.begin(), sent.encoded.end());
  if (s) ++s->frames_pending;
  lane.sent.push(std::move(sent));
  ++stats_.frames_sent;
  return true;
}

// One data (or fin) frame from the stream at the head of the ring, which then goes to the back;
// false if the payload is too full for it.
bool Session::put_stream_data(Lane& lane, Priority which, Bytes& out, size_t max, TimePoint now) {
  StreamId id = lane.ring.front();
  Stream* s = find(id);
  if (!s || !sendable(*s)) {
    lane.ring.pop_front();
    if (s) s->in_ring = false;
    return true;
  }
  const size_t room = max - out.size();
  const uint64_t end = s->send.end_offset();
  SentFrame sent;
  sent.stream = id;
  sent.sent_at = now;
  const StreamHeader h{which, lane.sent.next_seq(), id};
  if (s->sent < end) {
    uint64_t available = std::min(end, s->credit.max_offset()) - s->sent;
    if (room <= kDataHeaderSize) return false;
    size_t chunk = static_cast<size_t>(std::min<uint64_t>({available, kMaxDataChunk, room - kDataHeaderSize}));
    if (chunk < available && chunk < kMinDataChunk) return false;
    encode_data_header(out, h, s->sent, static_cast<uint16_t>(chunk));
    size_t at = out.size();
    out.resize(at + chunk);
    s->send.copy_out(s->sent, chunk, out.data() + at);
    sent.type = FrameType::data;
    sent.offset = s->sent;
    sent.length = static_cast<uint32_t>(chunk);
    s->sent += chunk;
  } else {
    if (room < kFinFrameSize) return false;
    encode_fin(sent.encoded, h, end);
    out.insert(out.end(), sent.encoded.begin(), sent.encoded.end());
    sent.type = FrameType::fin;
    sent.offset = end;
    s->fin_sent = true;
  }
  ++s->frames_pending;
  lane.sent.push(std::move(sent));
  ++stats_.frames_sent;
  lane.ring.pop_front();
  s->in_ring = false;
  schedule(*s);
  return true;
}

// ---- time ---------------------------------------------------------------------------------------

std::optional<TimePoint> Session::next_deadline() const {
  if (broken_) return std::nullopt;
  std::optional<TimePoint> next;
  auto consider = [&](TimePoint t) {
    if (!next || t < *next) next = t;
  };
  for (const Lane& lane : lanes_) {
    if (lane.rx.ack_pending && !lane.rx.ack_due) consider(lane.rx.ack_deadline);
    if (auto d = retransmit_deadline(lane)) consider(*d);
  }
  return next;
}

void Session::on_timer(TimePoint now) {
  if (broken_) return;
  for (Lane& lane : lanes_) {
    if (lane.rx.ack_pending && now >= lane.rx.ack_deadline) lane.rx.ack_due = true;
    std::optional<TimePoint> deadline = retransmit_deadline(lane);
    if (!deadline || now < *deadline) continue;
    // Frames went unacknowledged for a whole timeout: the tail of a burst was lost (nothing came
    // after it to reveal the gap), or the link is down. Resending into a dead link is wasted (and
    // resume() will do it when the link is back), so first ask for a sign of life: a ping. Its
    // pong, if it comes, makes the lane go back (on_probe_answered); if it does not, probe again
    // later, backing off.
    if (lane.expired_at) {
      ++lane.rto_backoff;
    } else {
      lane.expired_at = now;
    }
    if (!ping_due_) ++stats_.probes_sent;
    ping_due_ = true;
  }
}

void Session::resume(TimePoint now) {
  if (broken_) return;
  resume_flags_ |= kResumeReplyWanted | kResumeRewindInteractive | kResumeRewindBulk;
  ping_due_ = true;  // the path may have changed: measure again
  // The peer's answer says what to resend; until it had time to come, frames sent before the
  // outage are not overdue, however old they are.
  for (Lane& lane : lanes_) {
    lane.rto_backoff = 0;
    lane.expired_at.reset();
    lane.rto_from = now;
  }
}

// ---- introspection ------------------------------------------------------------------------------

std::optional<StreamStats> Session::stream_stats(StreamId id) const {
  const Stream* s = find(id);
  if (!s) return std::nullopt;
  StreamStats st;
  st.priority = s->priority;
  st.written = s->send.end_offset();
  st.sent = s->sent;
  st.acked = s->send.begin_offset();
  st.send_credit = s->credit.max_offset();
  st.send_buffered = s->send.size();
  st.received = s->recv.received();
  st.consumed = s->recv.consumed();
  st.recv_buffered = s->recv.buffered();
  st.recv_window = s->recv.window();
  st.recv_max_offset = s->recv.max_offset();
  return st;
}

SessionStats Session::stats() const {
  SessionStats st = stats_;
  st.srtt = rtt_.smoothed();
  st.rto = retransmit_timeout(lanes_[0]);
  st.streams = streams_.size();
  return st;
}

}  // namespace airlock::stream
