#include "common/tunnel/cookie.hpp"

#include <algorithm>

namespace airlock::tunnel {

using namespace airlock::crypto;

namespace {

// The message bytes mac1 covers (all but the two macs) and mac2 covers (all but mac2).
ByteView mac1_input(ByteView message) { return message.first(message.size() - 2 * MAC_SIZE); }
ByteView mac2_input(ByteView message) { return message.first(message.size() - MAC_SIZE); }
ByteView mac1_of(ByteView message) { return message.subspan(message.size() - 2 * MAC_SIZE, MAC_SIZE); }
ByteView mac2_of(ByteView message) { return message.subspan(message.size() - MAC_SIZE, MAC_SIZE); }

bool is_handshake_size(size_t n) { return n == HANDSHAKE_INITIATION_SIZE || n == HANDSHAKE_RESPONSE_SIZE; }

}  // namespace

Key mac1_key(const Key& public_key) { return blake2s256({as_bytes(LABEL_MAC1), public_key}); }
Key cookie_key(const Key& public_key) { return blake2s256({as_bytes(LABEL_COOKIE), public_key}); }

// --- responder -----------------------------------------------------------------------------------

CookieChecker::CookieChecker(const Key& local_public_key)
    : mac1_key_(mac1_key(local_public_key)), cookie_key_(cookie_key(local_public_key)) {}

bool CookieChecker::check_mac1(ByteView message) const {
  if (!is_handshake_size(message.size())) return false;
  auto expected = mac16(mac1_key_, mac1_input(message));
  return equal_ct(expected, mac1_of(message));
}

ByteArray<COOKIE_SIZE> CookieChecker::cookie_for(ByteView source, TimePoint now) {
  // R changes every COOKIE_REFRESH_TIME, so a cookie stops working within two minutes.
  if (!secret_birthdate_ || now - *secret_birthdate_ >= COOKIE_REFRESH_TIME) {
    random_bytes({secret_.data(), secret_.size()});
    secret_birthdate_ = now;
  }
  return mac16(secret_, source);
}

bool CookieChecker::check_mac2(ByteView message, ByteView source, TimePoint now) {
  if (!is_handshake_size(message.size())) return false;
  auto cookie = cookie_for(source, now);
  auto expected = mac16(cookie, mac2_input(message));
  wipe(cookie);
  return equal_ct(expected, mac2_of(message));
}

ByteArray<COOKIE_REPLY_SIZE> CookieChecker::make_reply(ByteView message, uint32_t sender, ByteView source,
                                                        TimePoint now) {
  CookieReply reply;
  reply.receiver = sender;
  random_bytes(reply.nonce);
  auto cookie = cookie_for(source, now);
  Bytes sealed = xaead_seal(cookie_key_, reply.nonce, cookie, mac1_of(message));
  wipe(cookie);
  std::copy_n(sealed.begin(), reply.encrypted_cookie.size(), reply.encrypted_cookie.begin());
  ByteArray<COOKIE_REPLY_SIZE> out;
  serialize(reply, out);
  return out;
}

// --- initiator -----------------------------------------------------------------------------------

Cookie::Cookie(const Key& remote_public_key)
    : mac1_key_(mac1_key(remote_public_key)), cookie_key_(cookie_key(remote_public_key)) {}

bool Cookie::fresh(TimePoint now) const {
  return birthdate_ && now - *birthdate_ < COOKIE_REFRESH_TIME - COOKIE_SECRET_LATENCY;
}

void Cookie::add_macs(MutableByteView message, TimePoint now) {
  if (!is_handshake_size(message.size())) return;
  uint8_t* mac1 = message.data() + message.size() - 2 * MAC_SIZE;
  uint8_t* mac2 = mac1 + MAC_SIZE;
  auto m1 = mac16(mac1_key_, mac1_input(message));
  std::copy(m1.begin(), m1.end(), mac1);
  last_mac1_sent_ = m1;
  have_sent_mac1_ = true;
  if (fresh(now)) {
    auto m2 = mac16(ByteView{cookie_.data(), COOKIE_SIZE}, mac2_input(message));
    std::copy(m2.begin(), m2.end(), mac2);
  } else {
    std::fill_n(mac2, MAC_SIZE, 0);
  }
}

bool Cookie::consume_reply(const CookieReply& reply, TimePoint now) {
  if (!have_sent_mac1_) return false;
  auto opened = xaead_open(cookie_key_, reply.nonce, reply.encrypted_cookie, last_mac1_sent_);
  if (!opened || opened->size() != COOKIE_SIZE) return false;
  std::copy(opened->begin(), opened->end(), cookie_.data());
  wipe(opened->data(), opened->size());
  birthdate_ = now;
  // One cookie per message sent: a second reply to the same message is not accepted.
  have_sent_mac1_ = false;
  return true;
}

}  // namespace airlock::tunnel
