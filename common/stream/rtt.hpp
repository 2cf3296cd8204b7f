// Round-trip time estimate (RFC 6298 smoothing, RFC 9002 ack-delay handling) and the
// retransmission timeout derived from it.
#pragma once

#include <algorithm>
#include <chrono>

namespace airlock::stream {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;  // monotonic time, always passed in by the caller
using Duration = std::chrono::nanoseconds;

class RttEstimator {
 public:
  bool has_sample() const { return has_sample_; }
  Duration smoothed() const { return srtt_; }
  Duration variation() const { return rttvar_; }
  Duration min() const { return min_; }
  Duration latest() const { return latest_; }

  // One sample: time from sending to the ack, and how long the peer says it held the ack back.
  void add_sample(Duration measured, Duration ack_delay) {
    if (measured <= Duration::zero()) measured = Duration(1);
    latest_ = measured;
    min_ = has_sample_ ? std::min(min_, measured) : measured;
    // Subtract the peer's delay only while that cannot push the sample below the minimum seen,
    // so a lying or confused peer cannot shrink the estimate.
    Duration adjusted = measured;
    if (ack_delay > Duration::zero() && measured - ack_delay >= min_) adjusted = measured - ack_delay;
    if (!has_sample_) {
      srtt_ = adjusted;
      rttvar_ = adjusted / 2;
      has_sample_ = true;
      return;
    }
    Duration diff = srtt_ > adjusted ? srtt_ - adjusted : adjusted - srtt_;
    rttvar_ = (3 * rttvar_ + diff) / 4;
    srtt_ = (7 * srtt_ + adjusted) / 8;
  }

  // When to give up waiting for an ack: the classic srtt + 4 rttvar plus the peer's ack delay,
  // but never less than 4 srtt or `floor` (a relay restart should be handled by resume(), not by
  // a storm of early retransmissions).
  Duration retransmit_timeout(Duration max_ack_delay, Duration floor) const {
    if (!has_sample_) return floor;
    Duration rto = std::max(srtt_ + 4 * rttvar_ + max_ack_delay, 4 * srtt_);
    return std::max(rto, floor);
  }

 private:
  bool has_sample_ = false;
  Duration srtt_{0};
  Duration rttvar_{0};
  Duration min_{0};
  Duration latest_{0};
};

}  // namespace airlock::stream
