// TAI64N timestamps (cr.yp.to/libtai/tai64.html), the payload of a handshake initiation.
//
// 12 bytes: big-endian u64 seconds label (2^62 + 10 + Unix seconds, as WireGuard writes it) and
// big-endian u32 nanoseconds. A responder accepts an initiation only if its timestamp is greater
// than the last one it accepted from that peer, so a replayed initiation is refused. Big-endian
// makes "greater" a byte-wise comparison.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "common/tunnel/messages.hpp"

namespace airlock::tunnel {

using Tai64n = ByteArray<TAI64N_SIZE>;

inline constexpr uint64_t TAI64_BASE = (1ull << 62) + 10;
// Nanoseconds are rounded down to 2^24 ns (about 16.8 ms), as Linux and wireguard-go do, so the
// timestamp does not leak a precise clock; 2^24 ns is still below 1 s / INITIATIONS_PER_SECOND.
inline constexpr uint32_t TAI64N_WHITENER_MASK = (1u << 24) - 1;

inline Tai64n tai64n(WallTime wall) {
  using namespace std::chrono;
  auto since_epoch = duration_cast<nanoseconds>(wall.time_since_epoch()).count();
  int64_t seconds = since_epoch / 1'000'000'000;
  int64_t nanos = since_epoch % 1'000'000'000;
  if (nanos < 0) nanos += 1'000'000'000, seconds -= 1;  // floor for instants before 1970
  Tai64n out{};
  store_be64(out.data(), TAI64_BASE + static_cast<uint64_t>(seconds));
  store_be32(out.data() + 8, static_cast<uint32_t>(nanos) & ~TAI64N_WHITENER_MASK);
  return out;
}

// a > b as instants.
inline bool tai64n_after(const Tai64n& a, const Tai64n& b) {
  return std::lexicographical_compare(b.begin(), b.end(), a.begin(), a.end());
}

// The smallest timestamp after t (t plus one nanosecond), for a sender whose clock went back.
inline Tai64n tai64n_next(const Tai64n& t) {
  uint64_t seconds = load_be64(t.data());
  uint32_t nanos = load_be32(t.data() + 8) + 1;
  if (nanos >= 1'000'000'000) nanos = 0, ++seconds;
  Tai64n out{};
  store_be64(out.data(), seconds);
  store_be32(out.data() + 8, nanos);
  return out;
}

}  // namespace airlock::tunnel
