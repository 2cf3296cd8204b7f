// Credit flow control for one stream, both ends.
//
// ReceiveWindow is the receiver's side: it has granted the peer credit up to max_offset and
// grants more (a window frame) once the application has consumed half a window, so a stream
// whose consumer stalls stops at most one window of bytes later, and its buffer stays bounded.
// The window auto-tunes as QUIC stacks do (Chromium's QuicFlowController, ngtcp2): if the
// application consumed half a window in less than two round trips, the window is what limits
// the stream, so it doubles (up to a maximum). A consumer slower than the link never triggers it.
//
// SendCredit is the sender's side: how far the peer lets it send.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>

#include "common/stream/frames.hpp"
#include "common/stream/rtt.hpp"

namespace airlock::stream {

class ReceiveWindow {
 public:
  explicit ReceiveWindow(uint64_t max_window = kDefaultMaxWindow) : max_window_(std::max(max_window, kInitialWindow)) {}

  uint64_t received() const { return received_; }   // bytes taken from the peer
  uint64_t consumed() const { return consumed_; }   // bytes the application is done with
  uint64_t max_offset() const { return max_offset_; }
  uint64_t window() const { return window_; }
  uint64_t buffered() const { return received_ - consumed_; }

  // True if [offset, offset + length) is within the credit granted.
  bool allows(uint64_t offset, uint64_t length) const { return length <= max_offset_ && offset <= max_offset_ - length; }
  void on_received(uint64_t length) { received_ += length; }
  // The application is done with n more bytes (n <= buffered()).
  void on_consumed(uint64_t n) { consumed_ += n; }

  // Time for a window frame: less than half a window of credit is left unused.
  bool wants_update() const { return 2 * (max_offset_ - consumed_) <= window_; }

  // Grants new credit as of `now` and returns the new max_offset (nullopt if it would not grow).
  std::optional<uint64_t> grant(TimePoint now, const RttEstimator& rtt) {
    auto_tune(now, rtt);
    uint64_t next = consumed_ + window_;
    if (next <= max_offset_) return std::nullopt;
    max_offset_ = next;
    return max_offset_;
  }

 private:
  void auto_tune(TimePoint now, const RttEstimator& rtt) {
    std::optional<TimePoint> previous = last_grant_;
    last_grant_ = now;
    if (!previous || !rtt.has_sample() || window_ >= max_window_) return;
    if (now - *previous < 2 * rtt.smoothed()) window_ = std::min(window_ * 2, max_window_);
  }

  uint64_t max_window_;
  uint64_t window_ = kInitialWindow;
  uint64_t max_offset_ = kInitialWindow;
  uint64_t received_ = 0;
  uint64_t consumed_ = 0;
  std::optional<TimePoint> last_grant_;
};

class SendCredit {
 public:
  uint64_t max_offset() const { return max_offset_; }
  // A window frame: credit never shrinks, so an old or repeated one changes nothing.
  bool raise(uint64_t max_offset) {
    if (max_offset <= max_offset_) return false;
    max_offset_ = max_offset;
    return true;
  }

 private:
  uint64_t max_offset_ = kInitialWindow;
};

}  // namespace airlock::stream
