// The building blocks of the relay's forwarding that need no I/O: a FIFO of encoded frames that
// costs nothing while empty, and a token bucket for rate limits. Kept here so unit tests and the
// relay share them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "common/util/bytes.hpp"

namespace airlock::relay {

// Frames waiting for one link, in order, with the byte count that backpressure decisions use.
// Holds no memory once drained: an idle link pays only for the empty vector.
class FrameQueue {
 public:
  bool empty() const { return head_ == items_.size(); }
  size_t count() const { return items_.size() - head_; }
  size_t bytes() const { return bytes_; }

  void push(Bytes frame) {
    bytes_ += frame.size();
    items_.push_back(std::move(frame));
  }
  Bytes& front() { return items_[head_]; }
  Bytes pop() {
    Bytes out = std::move(items_[head_++]);
    bytes_ -= out.size();
    if (head_ == items_.size()) {
      std::vector<Bytes>().swap(items_);  // release the slots, not just the frames
      head_ = 0;
    } else if (head_ >= 64 && head_ * 2 >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
    return out;
  }
  void clear() {
    std::vector<Bytes>().swap(items_);
    head_ = 0;
    bytes_ = 0;
  }

 private:
  std::vector<Bytes> items_;
  size_t head_ = 0;
  size_t bytes_ = 0;
};

// A token bucket: `rate` tokens a second up to `burst`. take() may run the balance negative (the
// caller then waits wait_time() before taking more: shaping); try_take() refuses instead (limits).
// A rate of zero means unlimited. Time comes in from the caller.
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  TokenBucket() = default;
  TokenBucket(double rate_per_second, double burst, Clock::time_point now)
      : rate_(rate_per_second), burst_(burst), tokens_(burst), last_(now) {}

  bool unlimited() const { return rate_ <= 0; }

  void take(double n, Clock::time_point now) {
    if (unlimited()) return;
    refill(now);
    tokens_ -= n;
  }
  bool try_take(double n, Clock::time_point now) {
    if (unlimited()) return true;
    refill(now);
    if (tokens_ < n) return false;
    tokens_ -= n;
    return true;
  }
  bool in_debt(Clock::time_point now) {
    if (unlimited()) return false;
    refill(now);
    return tokens_ < 0;
  }
  // How long until the balance is back to zero.
  std::chrono::milliseconds wait_time(Clock::time_point now) {
    if (unlimited()) return std::chrono::milliseconds(0);
    refill(now);
    if (tokens_ >= 0) return std::chrono::milliseconds(0);
    return std::chrono::milliseconds(static_cast<int64_t>(-tokens_ * 1000.0 / rate_) + 1);
  }

 private:
  void refill(Clock::time_point now) {
    if (now <= last_) return;
    double elapsed = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    tokens_ += elapsed * rate_;
    if (tokens_ > burst_) tokens_ = burst_;
  }

  double rate_ = 0;
  double burst_ = 0;
  double tokens_ = 0;
  Clock::time_point last_{};
};

}  // namespace airlock::relay
