// WireGuard's timer rules as pure logic (timers.hpp) and TAI64N timestamps (tai64n.hpp).
#include <doctest/doctest.h>

#include "common/tunnel/tai64n.hpp"
#include "common/tunnel/timers.hpp"

using namespace airlock;
using namespace airlock::tunnel;
using namespace std::chrono_literals;

namespace {
const TimePoint t0 = TimePoint{} + 1000s;
}

TEST_CASE("the paper's timer constants") {
  CHECK(REKEY_AFTER_TIME == 120s);
  CHECK(REJECT_AFTER_TIME == 180s);
  CHECK(REKEY_ATTEMPT_TIME == 90s);
  CHECK(REKEY_TIMEOUT == 5s);
  CHECK(REKEY_TIMEOUT_JITTER_MAX == 333ms);
  CHECK(KEEPALIVE_TIMEOUT == 10s);
  CHECK(COOKIE_REFRESH_TIME == 120s);
  CHECK(ZERO_KEY_MATERIAL_TIME == 540s);
  CHECK(INITIATION_MIN_INTERVAL == 20ms);
}

TEST_CASE("data sent arms new_handshake once; anything authenticated received disarms it") {
  PeerTimers t;
  t.data_sent(t0, 100ms);
  REQUIRE(t.new_handshake);
  CHECK(*t.new_handshake == t0 + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + 100ms);
  t.data_sent(t0 + 3s, 0ms);  // already armed: not pushed back
  CHECK(*t.new_handshake == t0 + 15s + 100ms);
  t.any_authenticated_packet_received();
  CHECK_FALSE(t.new_handshake);
}

TEST_CASE("data received arms one passive keepalive; anything sent cancels it") {
  PeerTimers t;
  t.data_received(t0);
  REQUIRE(t.send_keepalive);
  CHECK(*t.send_keepalive == t0 + KEEPALIVE_TIMEOUT);
  t.data_received(t0 + 1s);
  CHECK(*t.send_keepalive == t0 + KEEPALIVE_TIMEOUT);
  CHECK(t.need_another_keepalive);
  t.any_authenticated_packet_sent();
  CHECK_FALSE(t.send_keepalive);
}

TEST_CASE("handshake timers and the earliest deadline") {
  PeerTimers t;
  CHECK_FALSE(t.next());
  t.handshake_initiated(t0, 333ms);
  t.session_derived(t0);
  CHECK(*t.next() == t0 + REKEY_TIMEOUT + 333ms);
  t.handshake_attempts = 4;
  t.handshake_complete();
  CHECK(t.handshake_attempts == 0);
  CHECK(*t.next() == t0 + ZERO_KEY_MATERIAL_TIME);
  std::optional<TimePoint> d = t0;
  CHECK_FALSE(PeerTimers::expired(d, t0 - 1ns));
  CHECK(PeerTimers::expired(d, t0));
  CHECK_FALSE(d);
}

TEST_CASE("key freshness: rekey and reject thresholds") {
  // Time-based rekey belongs to the initiator only; message-based to both.
  CHECK(rekey_due_after_send(true, 1, REKEY_AFTER_TIME));
  CHECK_FALSE(rekey_due_after_send(true, 1, REKEY_AFTER_TIME - 1ns));
  CHECK_FALSE(rekey_due_after_send(false, 1, REKEY_AFTER_TIME + 1s));
  CHECK(rekey_due_after_send(false, REKEY_AFTER_MESSAGES + 1, 0s));
  CHECK_FALSE(rekey_due_after_send(false, REKEY_AFTER_MESSAGES, 0s));
  CHECK(rekey_due_after_receive(true, 165s));
  CHECK_FALSE(rekey_due_after_receive(true, 165s - 1ns));
  CHECK_FALSE(rekey_due_after_receive(false, 170s));

  CHECK(usable_for_sending(REJECT_AFTER_MESSAGES - 1, 0s));
  CHECK_FALSE(usable_for_sending(REJECT_AFTER_MESSAGES, 0s));
  CHECK_FALSE(usable_for_sending(0, REJECT_AFTER_TIME));
  CHECK(usable_for_sending(0, REJECT_AFTER_TIME - 1ns));
  CHECK_FALSE(usable_for_receiving(REJECT_AFTER_MESSAGES, 0s));
  CHECK_FALSE(usable_for_receiving(0, REJECT_AFTER_TIME));
}

TEST_CASE("TAI64N: layout, whitening and ordering") {
  const WallTime t = WallTime{} + std::chrono::seconds(1'700'000'000) + std::chrono::nanoseconds(123'456'789);
  Tai64n ts = tai64n(t);
  CHECK(load_be64(ts.data()) == 0x400000000000000aull + 1'700'000'000ull);
  // 123456789 rounded down to a multiple of 2^24.
  CHECK(load_be32(ts.data() + 8) == 117'440'512u);
  CHECK(to_hex(tai64n(WallTime{})) == "400000000000000a00000000");

  Tai64n later = tai64n(t + 20ms);
  CHECK(tai64n_after(later, ts));
  CHECK_FALSE(tai64n_after(ts, later));
  CHECK_FALSE(tai64n_after(ts, ts));
  CHECK(tai64n_after(tai64n(t + 1s), tai64n(t + 900ms)));  // across a second boundary
  // Within one whitening step, timestamps are equal: not "after".
  CHECK_FALSE(tai64n_after(tai64n(t + 1ms), ts));
  CHECK(tai64n_after(tai64n_next(ts), ts));
  Tai64n end_of_second{};
  store_be64(end_of_second.data(), 5);
  store_be32(end_of_second.data() + 8, 999'999'999);
  Tai64n next = tai64n_next(end_of_second);
  CHECK(load_be64(next.data()) == 6);
  CHECK(load_be32(next.data() + 8) == 0);
  // Before 1970 the nanoseconds stay in range.
  Tai64n before = tai64n(WallTime{} - 1ns);
  CHECK(load_be64(before.data()) == 0x400000000000000aull - 1);
  CHECK(load_be32(before.data() + 8) < 1'000'000'000u);
}
