#include <doctest/doctest.h>

#include "common/relay/queue.hpp"

using namespace airlock;
using namespace airlock::relay;
using namespace std::chrono_literals;

TEST_CASE("frame queue keeps order and byte counts, and holds nothing once drained") {
  FrameQueue q;
  CHECK(q.empty());
  for (uint8_t i = 0; i < 200; ++i) q.push(Bytes(10 + i, i));
  CHECK(q.count() == 200);
  size_t expected_bytes = 0;
  for (int i = 0; i < 200; ++i) expected_bytes += 10 + i;
  CHECK(q.bytes() == expected_bytes);
  for (uint8_t i = 0; i < 150; ++i) {
    Bytes b = q.pop();
    CHECK(b.size() == 10u + i);
    CHECK(b[0] == i);
  }
  q.push(Bytes(5, 0xee));
  for (uint8_t i = 150; i < 200; ++i) CHECK(q.pop()[0] == i);
  CHECK(q.pop()[0] == 0xee);
  CHECK(q.empty());
  CHECK(q.bytes() == 0);
}

TEST_CASE("token bucket: burst, refill, debt and wait time") {
  auto t0 = TokenBucket::Clock::now();
  TokenBucket b(1000, 500, t0);  // 1000 tokens/s, burst 500
  CHECK(b.try_take(500, t0));
  CHECK_FALSE(b.try_take(1, t0));
  CHECK(b.try_take(100, t0 + 100ms));  // refilled 100
  b.take(1000, t0 + 100ms);            // shaping may go into debt
  CHECK(b.in_debt(t0 + 100ms));
  auto wait = b.wait_time(t0 + 100ms);
  CHECK(wait >= 999ms);
  CHECK(wait <= 1001ms);
  CHECK_FALSE(b.in_debt(t0 + 100ms + wait));
  // Refill never exceeds the burst.
  CHECK(b.try_take(500, t0 + 100s));
  CHECK_FALSE(b.try_take(1, t0 + 100s));
}

TEST_CASE("an unlimited bucket never refuses") {
  TokenBucket b(0, 0, TokenBucket::Clock::now());
  CHECK(b.unlimited());
  b.take(1e12, TokenBucket::Clock::now());
  CHECK_FALSE(b.in_debt(TokenBucket::Clock::now()));
  CHECK(b.try_take(1e12, TokenBucket::Clock::now()));
}
