// The sending half of one lane: the next sequence number, and every stream frame sent but not yet
// acknowledged, oldest first, so that a resume or a retransmit timeout can send them again, in
// order, under the same numbers. Data frames are kept as (stream, offset, length) references into
// the stream's SendBuffer, other frames as their encoded bytes (they are small). Because data can
// only be sent within flow-control credit and is released when acked, what this holds is bounded
// by the streams' windows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

#include "common/stream/frames.hpp"
#include "common/stream/rtt.hpp"
#include "common/util/bytes.hpp"

namespace airlock::stream {

struct SentFrame {
  uint64_t seq = 0;
  FrameType type = FrameType::data;
  StreamId stream = 0;
  uint64_t offset = 0;   // data: first byte; fin: final offset
  uint32_t length = 0;   // data: byte count
  Bytes encoded;         // every frame but data: the exact bytes to send again
  TimePoint sent_at{};
  bool retransmitted = false;  // Karn: no RTT sample from a frame sent twice
  bool stateless = false;      // a reset answering a frame for a stream that does not exist
};

class RetransmitBuffer {
 public:
  uint64_t next_seq() const { return next_seq_; }
  uint64_t acked() const { return next_seq_ - 1 - frames_.size(); }  // every seq <= this is acked
  bool empty() const { return frames_.empty(); }
  size_t size() const { return frames_.size(); }

  // Stamps and keeps a new frame; returns its seq.
  SentFrame& push(SentFrame frame) {
    frame.seq = next_seq_++;
    frames_.push_back(std::move(frame));
    if (resend_ == frames_.size() - 1) ++resend_;  // nothing waiting to be resent: new frame is "sent"
    return frames_.back();
  }

  // Frames the peer has not got yet and that must go again before any new frame of this lane.
  bool resend_pending() const { return resend_ < frames_.size(); }
  SentFrame& next_resend() { return frames_[resend_]; }
  void mark_resent(TimePoint now) {
    frames_[resend_].sent_at = now;
    frames_[resend_].retransmitted = true;
    ++resend_;
  }
  // Go back: everything unacknowledged is sent again.
  void rewind() { resend_ = 0; }

  // The oldest frame still in flight (sent and not acked), for the retransmit timer.
  const SentFrame* oldest_in_flight() const { return resend_ > 0 ? &frames_.front() : nullptr; }

  // Removes every frame with seq <= received, calling on_acked(frame) for each, oldest first.
  template <typename OnAcked>
  void ack(uint64_t received, OnAcked&& on_acked) {
    while (!frames_.empty() && frames_.front().seq <= received) {
      on_acked(frames_.front());
      frames_.pop_front();
      if (resend_ > 0) --resend_;
    }
  }

 private:
  std::deque<SentFrame> frames_;
  size_t resend_ = 0;  // index of the next frame to resend; == size() when nothing waits
  uint64_t next_seq_ = 1;
};

}  // namespace airlock::stream
