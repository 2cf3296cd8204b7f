#include "common/tunnel/keypair.hpp"

namespace airlock::tunnel {

Keypair* KeypairSlots::find(uint32_t local_index) const {
  for (Keypair* k : {current_.get(), previous_.get(), next_.get()})
    if (k && k->local_index == local_index) return k;
  return nullptr;
}

KeypairSlots::Dropped KeypairSlots::add(std::unique_ptr<Keypair> keypair) {
  Dropped dropped;
  if (keypair->initiator) {
    if (next_) {
      // An unconfirmed responder keypair is demoted to previous rather than thrown away, and the
      // old current goes: as Linux does, for robustness when both sides handshake at once.
      dropped[0] = std::move(previous_);
      dropped[1] = std::move(current_);
      previous_ = std::move(next_);
    } else {
      dropped[0] = std::move(previous_);
      previous_ = std::move(current_);
    }
    current_ = std::move(keypair);
  } else {
    // Not usable before confirmation: wait in next. The old previous goes, so at most one keypair
    // from before the newest two handshakes stays alive.
    dropped[0] = std::move(next_);
    dropped[1] = std::move(previous_);
    next_ = std::move(keypair);
  }
  return dropped;
}

bool KeypairSlots::received_with(Keypair* keypair, Dropped& dropped) {
  if (!keypair || keypair != next_.get()) return false;
  dropped[0] = std::move(previous_);
  previous_ = std::move(current_);
  current_ = std::move(next_);
  return true;
}

KeypairSlots::Dropped KeypairSlots::clear() {
  return {std::move(current_), std::move(previous_), std::move(next_)};
}

}  // namespace airlock::tunnel
