// ReplayWindow: every counter accepted once, reordering within the window accepted, anything older
// or at REJECT_AFTER_MESSAGES refused; the ring's block recycling checked across large jumps.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <set>
#include <vector>

#include "common/tunnel/messages.hpp"
#include "common/tunnel/replay.hpp"

using namespace airlock::tunnel;

TEST_CASE("the window is at least 2048 counters, as the brief and RFC 6479 sizing ask") {
  CHECK(ReplayWindow::WINDOW_SIZE >= 2048);
  CHECK(ReplayWindow::WINDOW_SIZE == 8128);  // Linux's: 8192 bits less one recycled block
}

TEST_CASE("in-order counters are accepted once") {
  ReplayWindow w;
  for (uint64_t i = 0; i < 20000; ++i) {
    REQUIRE(w.check_and_update(i));
    REQUIRE_FALSE(w.check_and_update(i));
  }
  CHECK(w.next_expected() == 20000);
}

TEST_CASE("reordered counters inside the window are accepted, duplicates and stale ones are not") {
  ReplayWindow w;
  CHECK(w.check_and_update(5000));
  CHECK(w.check_and_update(4999));
  CHECK(w.check_and_update(0));  // 5000 behind: still inside
  CHECK_FALSE(w.check_and_update(0));
  CHECK(w.check_and_update(10000));
  // 10000 - WINDOW_SIZE + 1 is the oldest still tracked.
  CHECK(w.would_accept(10000 - ReplayWindow::WINDOW_SIZE + 1));
  CHECK(w.check_and_update(10000 - ReplayWindow::WINDOW_SIZE + 1));
  CHECK_FALSE(w.would_accept(10000 - ReplayWindow::WINDOW_SIZE));
  CHECK_FALSE(w.check_and_update(10000 - ReplayWindow::WINDOW_SIZE));
  CHECK_FALSE(w.check_and_update(4999));  // now far behind
}

TEST_CASE("a jump past the whole ring forgets everything behind it") {
  ReplayWindow w;
  for (uint64_t i = 0; i < 100; ++i) REQUIRE(w.check_and_update(i));
  const uint64_t far = 1'000'000;
  CHECK(w.check_and_update(far));
  // Counters just behind the jump were never seen: all accepted once.
  for (uint64_t i = far - 1000; i < far; ++i) REQUIRE(w.check_and_update(i));
  for (uint64_t i = far - 1000; i < far; ++i) REQUIRE_FALSE(w.check_and_update(i));
  CHECK_FALSE(w.check_and_update(50));
}

TEST_CASE("REJECT_AFTER_MESSAGES is the end of a keypair's counters") {
  ReplayWindow w;
  CHECK_FALSE(w.check_and_update(REJECT_AFTER_MESSAGES));
  CHECK_FALSE(w.check_and_update(UINT64_MAX));
  CHECK(w.check_and_update(REJECT_AFTER_MESSAGES - 1));
  CHECK_FALSE(w.check_and_update(REJECT_AFTER_MESSAGES - 1));
}

TEST_CASE("random shuffles within the window: each counter exactly once, against a reference set") {
  std::mt19937_64 rng(42);
  ReplayWindow w;
  std::set<uint64_t> seen;
  uint64_t greatest = 0;
  bool any = false;
  for (int round = 0; round < 200000; ++round) {
    // Mostly near the head, sometimes far behind, sometimes a jump ahead.
    uint64_t base = any ? greatest : 0;
    uint64_t c;
    switch (rng() % 10) {
      case 0: c = base + rng() % 20000; break;
      case 1: c = base > 20000 ? base - rng() % 20000 : rng() % 20000; break;
      default: c = base > 3000 ? base - 3000 + rng() % 3100 : rng() % 3100; break;
    }
    const bool fresh = !seen.contains(c);
    const bool inside = !any || c > greatest || greatest - c < ReplayWindow::WINDOW_SIZE;
    const bool expected = fresh && inside;
    REQUIRE(w.would_accept(c) == expected);
    REQUIRE(w.check_and_update(c) == expected);
    if (expected) {
      seen.insert(c);
      if (!any || c > greatest) greatest = c;
      any = true;
    }
  }
}
