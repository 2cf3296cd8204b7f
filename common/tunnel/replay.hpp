// The receiving counter window of a keypair (WireGuard paper §5.4.6), with the bitmap algorithm of
// RFC 6479: a ring of 64-bit blocks, where moving the window forward clears whole blocks instead
// of shifting bits, so every check is O(1) whatever the jump.
//
// A counter is accepted once, if it is below REJECT_AFTER_MESSAGES and not older than the window
// behind the highest counter accepted so far. Call it only after the message authenticated, so a
// forged counter can never move the window.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace airlock::tunnel {

class ReplayWindow {
 public:
  static constexpr size_t BITS_PER_BLOCK = 64;
  static constexpr size_t BLOCKS = 128;                            // a power of two: index by mask
  static constexpr size_t BITS_TOTAL = BLOCKS * BITS_PER_BLOCK;    // 8192, as Linux
  // One block is always being recycled, so the guaranteed window is one block short of the ring.
  static constexpr uint64_t WINDOW_SIZE = BITS_TOTAL - BITS_PER_BLOCK;  // 8128 counters

  // True if counter is new and inside the window; it is then marked as seen.
  [[nodiscard]] bool check_and_update(uint64_t counter);
  // What check_and_update would answer, without marking: a cheap filter before decryption.
  [[nodiscard]] bool would_accept(uint64_t counter) const;

  // Highest counter accepted + 1 (0 before any).
  uint64_t next_expected() const { return greatest_; }

 private:
  // Counters are stored off by one, so that 0 means "nothing received yet".
  uint64_t greatest_ = 0;
  std::array<uint64_t, BLOCKS> bitmap_{};
};

}  // namespace airlock::tunnel
