// WireGuard's per-peer timers (paper §6), as pure deadline logic: the hooks below are called when
// the tunnel sends or receives something, and each sets or clears a deadline exactly where the
// Linux implementation (timers.c) arms or deletes its timer. Nothing here reads a clock or sends:
// Tunnel::tick() asks which deadlines passed and acts on them.
//
//   retransmit_handshake  REKEY_TIMEOUT + jitter after an initiation; resend it, give up after
//                         MAX_TIMER_HANDSHAKES retries (about REKEY_ATTEMPT_TIME)
//   send_keepalive        KEEPALIVE_TIMEOUT after data arrived and nothing was sent back:
//                         a passive keepalive, so the sender knows the session works
//   new_handshake         KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter after data was sent and
//                         nothing authenticated came back: the session is presumed dead
//   zero_key_material     ZERO_KEY_MATERIAL_TIME after the last session was derived: wipe keys
#pragma once

#include <optional>

#include "common/tunnel/messages.hpp"

namespace airlock::tunnel {

struct PeerTimers {
  std::optional<TimePoint> retransmit_handshake;
  std::optional<TimePoint> send_keepalive;
  std::optional<TimePoint> new_handshake;
  std::optional<TimePoint> zero_key_material;
  unsigned handshake_attempts = 0;
  bool need_another_keepalive = false;

  // A data packet (not a keepalive) was sent.
  void data_sent(TimePoint now, Duration jitter) {
    if (!new_handshake) new_handshake = now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter;
  }
  // A data packet (not a keepalive) was received.
  void data_received(TimePoint now) {
    if (!send_keepalive)
      send_keepalive = now + KEEPALIVE_TIMEOUT;
    else
      need_another_keepalive = true;
  }
  // Any authenticated packet (handshake, data or keepalive) was sent: it serves as a keepalive.
  void any_authenticated_packet_sent() { send_keepalive.reset(); }
  // Any authenticated packet was received: the peer is alive.
  void any_authenticated_packet_received() { new_handshake.reset(); }
  void handshake_initiated(TimePoint now, Duration jitter) {
    retransmit_handshake = now + REKEY_TIMEOUT + jitter;
  }
  void handshake_complete() {
    retransmit_handshake.reset();
    handshake_attempts = 0;
  }
  void session_derived(TimePoint now) { zero_key_material = now + ZERO_KEY_MATERIAL_TIME; }

  // The earliest armed deadline.
  std::optional<TimePoint> next() const {
    std::optional<TimePoint> earliest;
    for (const auto* t : {&retransmit_handshake, &send_keepalive, &new_handshake, &zero_key_material})
      if (*t && (!earliest || **t < *earliest)) earliest = **t;
    return earliest;
  }

  // Clears a deadline that has passed and says so.
  static bool expired(std::optional<TimePoint>& deadline, TimePoint now) {
    if (!deadline || *deadline > now) return false;
    deadline.reset();
    return true;
  }
};

// --- key freshness (paper §6.2): pure predicates on a keypair's age and counters ---------------

// The sender should start a new handshake after using this keypair (Linux keep_key_fresh on send):
// too many messages, or too old when we were the initiator (only one side rekeys on time, so the
// two do not race).
inline bool rekey_due_after_send(bool initiator, uint64_t sending_counter, Duration age) {
  return sending_counter > REKEY_AFTER_MESSAGES || (initiator && age >= REKEY_AFTER_TIME);
}

// The receiver should start a new handshake (Linux keep_key_fresh on receive): as initiator, the
// keypair is close to REJECT_AFTER_TIME and the responder, who does not rekey on time, is still
// sending on it.
inline bool rekey_due_after_receive(bool initiator, Duration age) {
  return initiator && age >= REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT;
}

// A keypair may encrypt with this counter at this age.
inline bool usable_for_sending(uint64_t counter, Duration age) {
  return counter < REJECT_AFTER_MESSAGES && age < REJECT_AFTER_TIME;
}
// A keypair may still decrypt at this age given the next expected counter.
inline bool usable_for_receiving(uint64_t next_expected_counter, Duration age) {
  return next_expected_counter < REJECT_AFTER_MESSAGES && age < REJECT_AFTER_TIME;
}

}  // namespace airlock::tunnel
