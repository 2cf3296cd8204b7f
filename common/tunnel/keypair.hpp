// Transport keypairs and their three slots (WireGuard paper §5.4.5-§5.4.6, §6.1).
//
// A Keypair is one session's two ChaCha20-Poly1305 keys (contexts created once), the two indices
// that name it on the wire, its sending counter and receiving window, its birthdate, and whether
// we were the initiator of the handshake that made it.
//
// A peer holds up to three:
//   current   what we send with
//   previous  the one before, still accepted for messages in flight
//   next      a responder's new keypair before key confirmation: the responder may not send with
//             it until the initiator has used it (it has no other proof the initiator finished
//             the handshake), so it becomes current only when a message arrives on it.
#pragma once

#include <array>
#include <memory>

#include "common/crypto/crypto.hpp"
#include "common/tunnel/messages.hpp"
#include "common/tunnel/replay.hpp"
#include "common/tunnel/timers.hpp"

namespace airlock::tunnel {

struct Keypair {
  Keypair(const crypto::SecretKey& sending_key, const crypto::SecretKey& receiving_key, bool initiator,
          uint32_t local_index, uint32_t remote_index, TimePoint birthdate)
      : sending(sending_key),
        receiving(receiving_key),
        initiator(initiator),
        local_index(local_index),
        remote_index(remote_index),
        birthdate(birthdate) {}

  crypto::ChaChaPoly sending;
  crypto::ChaChaPoly receiving;
  uint64_t sending_counter = 0;  // the next counter to use
  ReplayWindow receiving_counter;
  bool initiator;
  uint32_t local_index;   // receiver index the peer puts on messages to us
  uint32_t remote_index;  // receiver index we put on messages to the peer
  TimePoint birthdate;

  Duration age(TimePoint now) const { return now - birthdate; }
  bool can_send(TimePoint now) const { return usable_for_sending(sending_counter, age(now)); }
  bool can_receive(TimePoint now) const { return usable_for_receiving(receiving_counter.next_expected(), age(now)); }
};

class KeypairSlots {
 public:
  // Keypairs pushed out of their slots, for the caller to unregister their indices.
  using Dropped = std::array<std::unique_ptr<Keypair>, 3>;

  Keypair* current() const { return current_.get(); }
  Keypair* previous() const { return previous_.get(); }
  Keypair* next() const { return next_.get(); }
  // The slot's keypair with this local index, or null.
  Keypair* find(uint32_t local_index) const;

  // A new session. As initiator it is confirmed (we received the response) and becomes current;
  // an unconfirmed next one, if any, is kept as previous rather than lost. As responder it waits
  // in next for key confirmation.
  [[nodiscard]] Dropped add(std::unique_ptr<Keypair> keypair);
  // A message authenticated with `keypair`. If it was next, it is confirmed: next becomes current
  // and current previous. True when that rotation happened.
  bool received_with(Keypair* keypair, Dropped& dropped);
  // Everything, for zeroing key material.
  [[nodiscard]] Dropped clear();

 private:
  std::unique_ptr<Keypair> current_, previous_, next_;
};

}  // namespace airlock::tunnel
