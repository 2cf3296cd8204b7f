#include "common/tunnel/replay.hpp"

#include <algorithm>

#include "common/tunnel/messages.hpp"

namespace airlock::tunnel {

bool ReplayWindow::would_accept(uint64_t counter) const {
  if (counter >= REJECT_AFTER_MESSAGES) return false;
  const uint64_t c = counter + 1;
  if (c > greatest_) return true;
  if (greatest_ - c >= WINDOW_SIZE) return false;  // too old: its block may be recycled
  const uint64_t bit = uint64_t{1} << (c % BITS_PER_BLOCK);
  return (bitmap_[(c / BITS_PER_BLOCK) % BLOCKS] & bit) == 0;
}

bool ReplayWindow::check_and_update(uint64_t counter) {
  if (counter >= REJECT_AFTER_MESSAGES) return false;
  const uint64_t c = counter + 1;
  const uint64_t block = c / BITS_PER_BLOCK;
  if (c > greatest_) {
    // Moving forward: clear the blocks between the old head and the new one (at most the ring).
    const uint64_t current = greatest_ / BITS_PER_BLOCK;
    const uint64_t advance = std::min<uint64_t>(block - current, BLOCKS);
    for (uint64_t i = 1; i <= advance; ++i) bitmap_[(current + i) % BLOCKS] = 0;
    greatest_ = c;
  } else if (greatest_ - c >= WINDOW_SIZE) {
    return false;
  }
  uint64_t& word = bitmap_[block % BLOCKS];
  const uint64_t bit = uint64_t{1} << (c % BITS_PER_BLOCK);
  if (word & bit) return false;
  word |= bit;
  return true;
}

}  // namespace airlock::tunnel
