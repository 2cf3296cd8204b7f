#include "common/tunnel/ratelimiter.hpp"

#include <algorithm>

namespace airlock::tunnel {

namespace {
constexpr int64_t PACKET_COST = 1'000'000'000 / HANDSHAKES_PER_SECOND_PER_SOURCE;
constexpr int64_t TOKEN_MAX = PACKET_COST * HANDSHAKES_BURSTABLE_PER_SOURCE;
constexpr Duration GC_INTERVAL = std::chrono::seconds(1);
}  // namespace

void RateLimiter::collect_garbage(TimePoint now) {
  // A bucket idle for a second is full again: forgetting it changes nothing.
  std::erase_if(buckets_, [&](const auto& entry) { return now - entry.second.last >= GC_INTERVAL; });
  last_gc_ = now;
}

bool RateLimiter::allow(ByteView source, TimePoint now) {
  if (!last_gc_ || now - *last_gc_ >= GC_INTERVAL) collect_garbage(now);
  std::string key(as_chars(source));
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= MAX_SOURCES) return false;
    buckets_.emplace(std::move(key), Bucket{now, TOKEN_MAX - PACKET_COST});
    return true;
  }
  Bucket& b = it->second;
  const int64_t elapsed = std::chrono::duration_cast<Duration>(now - b.last).count();
  b.tokens = std::min(TOKEN_MAX, b.tokens + std::max<int64_t>(elapsed, 0));
  b.last = now;
  if (b.tokens < PACKET_COST) return false;
  b.tokens -= PACKET_COST;
  return true;
}

}  // namespace airlock::tunnel
