// mac1, mac2 and cookies (WireGuard paper §5.3, §5.4.4, §5.4.7): the DoS defence of handshakes.
//
//   mac1 = MAC(HASH(LABEL_MAC1 || S_pub of the receiver), message up to mac1)   always
//   mac2 = MAC(cookie, message up to mac2)   when the sender holds a cookie, else 16 zero bytes
//   cookie = MAC(R, source)   R: a random secret the responder replaces every COOKIE_REFRESH_TIME
//
// mac1 proves the sender knows our public key, so the handshake's DH work is not spent on noise.
// Under load a responder also demands mac2: a message without it gets a cookie reply (encrypted
// with XChaCha20-Poly1305 under HASH(LABEL_COOKIE || S_pub of the cookie's sender), with mac1 of
// the message as additional data) and is dropped; the initiator retries with mac2, proving it can
// receive at its source. "source" is opaque bytes from the I/O layer (IP and port over UDP, the
// relay peer key over the relay).
#pragma once

#include <optional>

#include "common/crypto/crypto.hpp"
#include "common/tunnel/messages.hpp"

namespace airlock::tunnel {

Key mac1_key(const Key& public_key);    // HASH(LABEL_MAC1 || public_key)
Key cookie_key(const Key& public_key);  // HASH(LABEL_COOKIE || public_key)

// The responder's side, one per Tunnel: checks the macs of handshake messages sent to us and makes
// cookie replies.
class CookieChecker {
 public:
  explicit CookieChecker(const Key& local_public_key);

  // mac1 of a whole handshake initiation or response is right (constant time).
  bool check_mac1(ByteView message) const;
  // mac2 is right for the cookie this source gets now (constant time).
  bool check_mac2(ByteView message, ByteView source, TimePoint now);
  // The cookie reply to a handshake message whose sender index is `sender`, from `source`.
  ByteArray<COOKIE_REPLY_SIZE> make_reply(ByteView message, uint32_t sender, ByteView source, TimePoint now);

 private:
  ByteArray<COOKIE_SIZE> cookie_for(ByteView source, TimePoint now);

  Key mac1_key_;
  crypto::SecretKey cookie_key_;
  crypto::SecretKey secret_;  // R
  std::optional<TimePoint> secret_birthdate_;
};

// The initiator's side, one per peer: the macs on handshake messages we send to that peer, and the
// latest cookie it gave us.
class Cookie {
 public:
  explicit Cookie(const Key& remote_public_key);

  // Writes mac1 and mac2 into a whole handshake initiation or response (their last 32 bytes).
  void add_macs(MutableByteView message, TimePoint now);
  // Takes the cookie from a reply to the last message we sent with mac1. False if it does not
  // decrypt, or we sent nothing it could answer.
  bool consume_reply(const CookieReply& reply, TimePoint now);
  // A cookie young enough to be used for mac2.
  bool fresh(TimePoint now) const;

 private:
  Key mac1_key_;
  crypto::SecretKey cookie_key_;
  crypto::SecretKey cookie_;  // only the first COOKIE_SIZE bytes are used
  std::optional<TimePoint> birthdate_;
  ByteArray<MAC_SIZE> last_mac1_sent_{};
  bool have_sent_mac1_ = false;
};

}  // namespace airlock::tunnel
