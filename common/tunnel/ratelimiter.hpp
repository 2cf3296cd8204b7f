// Under load, handshake messages that passed mac2 are still limited per source: a token bucket of
// HANDSHAKES_PER_SECOND_PER_SOURCE with a burst of HANDSHAKES_BURSTABLE_PER_SOURCE, as Linux's
// ratelimiter.c. A valid mac2 proves the source is real, not that it is polite.
#pragma once

#include <string>
#include <unordered_map>

#include "common/tunnel/messages.hpp"

namespace airlock::tunnel {

class RateLimiter {
 public:
  static constexpr size_t MAX_SOURCES = 16384;  // a table past this size refuses new sources

  // True if this source may have one more handshake message now.
  bool allow(ByteView source, TimePoint now);
  size_t sources() const { return buckets_.size(); }

 private:
  struct Bucket {
    TimePoint last;
    int64_t tokens;  // nanoseconds of credit
  };
  void collect_garbage(TimePoint now);

  std::unordered_map<std::string, Bucket> buckets_;
  std::optional<TimePoint> last_gc_;
};

}  // namespace airlock::tunnel
