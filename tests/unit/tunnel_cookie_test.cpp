// mac1/mac2 and cookie replies: the responder's CookieChecker against the initiator's Cookie.
#include <doctest/doctest.h>

#include <algorithm>

#include "common/crypto/crypto.hpp"
#include "common/tunnel/cookie.hpp"
#include "common/tunnel/messages.hpp"
#include "common/tunnel/ratelimiter.hpp"

using namespace airlock;
using namespace airlock::tunnel;
using namespace std::chrono_literals;

namespace {

ByteArray<HANDSHAKE_INITIATION_SIZE> some_initiation(uint32_t sender) {
  ByteArray<HANDSHAKE_INITIATION_SIZE> m{};
  crypto::random_bytes(m);
  store_le32(m.data(), 1);
  store_le32(m.data() + 4, sender);
  return m;
}

const TimePoint t0 = TimePoint{} + 1000s;

}  // namespace

TEST_CASE("mac1 binds the message to the receiver's public key; any changed byte breaks it") {
  const auto responder = crypto::x25519_public(crypto::x25519_generate());
  Cookie cookie(responder);
  CookieChecker checker(responder);
  auto m = some_initiation(7);
  cookie.add_macs(m, t0);
  CHECK(checker.check_mac1(m));
  for (size_t i = 0; i < INITIATION_MAC1_OFFSET + MAC_SIZE; ++i) {
    auto forged = m;
    forged[i] ^= 0x80;
    REQUIRE_FALSE(checker.check_mac1(forged));
  }
  auto tail = m;
  tail[HANDSHAKE_INITIATION_SIZE - 1] ^= 1;  // mac2 is not covered by mac1
  CHECK(checker.check_mac1(tail));
  CHECK_FALSE(checker.check_mac1(ByteView(m).first(100)));
}

TEST_CASE("without a cookie mac2 is zero and fails; the cookie reply gives one that passes") {
  const auto responder = crypto::x25519_public(crypto::x25519_generate());
  Cookie cookie(responder);
  CookieChecker checker(responder);
  const Bytes source = {10, 0, 0, 1, 0x1f, 0x90};

  auto m = some_initiation(42);
  cookie.add_macs(m, t0);
  CHECK(std::all_of(m.end() - 16, m.end(), [](uint8_t b) { return b == 0; }));
  CHECK_FALSE(checker.check_mac2(m, source, t0));

  auto reply_bytes = checker.make_reply(m, 42, source, t0);
  CHECK(reply_bytes.size() == COOKIE_REPLY_SIZE);
  CHECK(message_type(reply_bytes) == MessageType::cookie_reply);
  auto reply = parse_cookie_reply(reply_bytes);
  REQUIRE(reply);
  CHECK(reply->receiver == 42);

  // A reply with a flipped byte does not decrypt.
  auto forged = *reply;
  forged.encrypted_cookie[3] ^= 1;
  CHECK_FALSE(cookie.consume_reply(forged, t0 + 1s));
  REQUIRE(cookie.consume_reply(*reply, t0 + 1s));
  CHECK(cookie.fresh(t0 + 1s));
  CHECK_FALSE(cookie.consume_reply(*reply, t0 + 1s));  // one cookie per message sent

  auto retry = some_initiation(43);
  cookie.add_macs(retry, t0 + 2s);
  CHECK(checker.check_mac1(retry));
  CHECK(checker.check_mac2(retry, source, t0 + 2s));
  // The cookie is bound to the source.
  CHECK_FALSE(checker.check_mac2(retry, Bytes{10, 0, 0, 2, 0x1f, 0x90}, t0 + 2s));
}

TEST_CASE("cookies expire with the responder's secret and are not used near the end of their life") {
  const auto responder = crypto::x25519_public(crypto::x25519_generate());
  Cookie cookie(responder);
  CookieChecker checker(responder);
  const Bytes source = {1, 2, 3};
  auto m = some_initiation(1);
  cookie.add_macs(m, t0);
  REQUIRE(cookie.consume_reply(*parse_cookie_reply(checker.make_reply(m, 1, source, t0)), t0));

  CHECK(cookie.fresh(t0 + COOKIE_REFRESH_TIME - COOKIE_SECRET_LATENCY - 1ms));
  CHECK_FALSE(cookie.fresh(t0 + COOKIE_REFRESH_TIME - COOKIE_SECRET_LATENCY));
  auto late = some_initiation(2);
  cookie.add_macs(late, t0 + 119s);
  CHECK(std::all_of(late.end() - 16, late.end(), [](uint8_t b) { return b == 0; }));

  // After COOKIE_REFRESH_TIME the responder's secret is new: an old cookie no longer passes.
  auto fresh = some_initiation(3);
  cookie.add_macs(fresh, t0 + 10s);
  CHECK(checker.check_mac2(fresh, source, t0 + 10s));
  CHECK_FALSE(checker.check_mac2(fresh, source, t0 + COOKIE_REFRESH_TIME + 1s));
}

TEST_CASE("a cookie reply to a message we never sent is refused") {
  const auto responder = crypto::x25519_public(crypto::x25519_generate());
  Cookie cookie(responder);
  CookieChecker checker(responder);
  auto m = some_initiation(9);
  auto reply = parse_cookie_reply(checker.make_reply(m, 9, Bytes{1}, t0));
  REQUIRE(reply);
  CHECK_FALSE(cookie.consume_reply(*reply, t0));  // we have sent no mac1 at all
  auto other = some_initiation(10);
  cookie.add_macs(other, t0);  // a different message: a different mac1, so no decrypt
  CHECK_FALSE(cookie.consume_reply(*reply, t0));
}

TEST_CASE("the under-load rate limiter allows a burst, then HANDSHAKES_PER_SECOND_PER_SOURCE") {
  RateLimiter limiter;
  const Bytes a = {1}, b = {2};
  unsigned allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += limiter.allow(a, t0);
  CHECK(allowed == HANDSHAKES_BURSTABLE_PER_SOURCE);
  CHECK(limiter.allow(b, t0));  // sources are independent
  // One per 1/20 s afterwards.
  allowed = 0;
  for (int ms = 1; ms <= 1000; ++ms) allowed += limiter.allow(a, t0 + std::chrono::milliseconds(ms));
  CHECK(allowed == HANDSHAKES_PER_SECOND_PER_SOURCE);
  // Idle sources are forgotten.
  CHECK(limiter.allow(b, t0 + 10s));
  CHECK(limiter.sources() == 1);
}
