// Fuzzes Tunnel::receive with a live session behind it. Two tunnels complete a handshake first, so
// inputs reach transport parsing, the keypair slots and the replay window, not just mac1. The input
// is a little program: deliver raw bytes to either side, have a side send a payload and deliver it
// mutated (bit flip, truncation, extension, replay), move the clock, tick, toggle load.
//
// The oracle: a payload event must be exactly a payload its peer sent (with zero padding) and each
// is delivered at most once; anything else means a forged or replayed message was accepted.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>

#include "common/crypto/crypto.hpp"
#include "common/tunnel/tunnel.hpp"

using namespace airlock;
using namespace airlock::tunnel;

namespace {

struct Side {
  explicit Side(uint8_t seed) : tunnel(crypto::SecretKey(Key{seed, 0x55, seed})), endpoint(ByteView(&seed, 1)) {}
  Tunnel tunnel;
  Endpoint endpoint;
  std::map<Bytes, int> sent;  // padded payloads this side sent, and how many times
  Bytes last_datagram;
};

struct World {
  Side a{1}, b{2};
  Now now{TimePoint{} + std::chrono::hours(1), WallTime{} + std::chrono::seconds(1'700'000'000)};
  Datagram d;
  Event e;

  World() {
    if (!a.tunnel.add_peer(b.tunnel.public_key(), std::nullopt, b.endpoint).ok()) std::abort();
    if (!b.tunnel.add_peer(a.tunnel.public_key(), std::nullopt, a.endpoint).ok()) std::abort();
    a.tunnel.connect(b.tunnel.public_key(), now);
    pump();
  }

  void check_events(Side& self, Side& peer) {
    while (self.tunnel.poll_event(e)) {
      if (e.kind != Event::Kind::payload) continue;
      auto it = peer.sent.find(e.payload);
      if (it == peer.sent.end() || it->second == 0) std::abort();  // forged or replayed
      --it->second;
    }
  }
  void deliver(Side& from, Side& to, ByteView bytes) {
    to.tunnel.receive(bytes, from.endpoint, now);
    check_events(to, from);
  }
  // Delivers everything queued, as a lossless network would.
  void pump() {
    for (int round = 0; round < 64; ++round) {
      bool moved = false;
      for (auto [from, to] : {std::pair{&a, &b}, std::pair{&b, &a}}) {
        while (from->tunnel.poll_datagram(d)) {
          moved = true;
          from->last_datagram = d.bytes;
          deliver(*from, *to, d.bytes);
        }
      }
      check_events(a, b);
      check_events(b, a);
      if (!moved) return;
    }
  }
  // Side `from` sends a payload; its first datagram is handed back for mutation.
  Bytes send(Side& from, Side& to, ByteView payload) {
    Bytes padded(payload.begin(), payload.end());
    padded.resize(padded_size(payload.size()));
    if (!payload.empty()) ++from.sent[padded];
    from.tunnel.send(to.tunnel.public_key(), payload, now);
    Bytes first;
    if (from.tunnel.poll_datagram(d)) first = d.bytes;
    return first;
  }
};

struct Reader {
  const uint8_t* p;
  size_t n;
  bool empty() const { return n == 0; }
  uint8_t byte() {
    if (!n) return 0;
    --n;
    return *p++;
  }
  ByteView take(size_t k) {
    k = std::min(k, n);
    ByteView v(p, k);
    p += k, n -= k;
    return v;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A fresh session per input: inputs reproduce alone, and nothing outlives them to look like a leak.
  World w;
  Reader in{data, size};
  for (int steps = 0; !in.empty() && steps < 64; ++steps) {
    const uint8_t op = in.byte();
    Side& from = (op & 0x80) ? w.b : w.a;
    Side& to = (op & 0x80) ? w.a : w.b;
    switch (op & 0x7) {
      case 0: {  // raw bytes
        size_t len = in.byte();
        if (len == 0xff) len = 148;
        w.deliver(from, to, in.take(len));
        break;
      }
      case 1: {  // a genuine message, mutated
        Bytes m = w.send(from, to, in.take(in.byte() % 64));
        const uint8_t how = in.byte();
        if (!m.empty()) {
          const size_t at = in.byte() % m.size();
          switch (how % 5) {
            case 0: m[at] ^= static_cast<uint8_t>(1u << (in.byte() % 8)); break;
            case 1: m.resize(at); break;
            case 2: m.push_back(in.byte()); break;
            case 3: break;  // as sent
            case 4: w.deliver(from, to, m); break;  // twice
          }
          w.deliver(from, to, m);
        }
        w.pump();
        break;
      }
      case 2:  // replay the last datagram this side sent
        if (!from.last_datagram.empty()) w.deliver(from, to, from.last_datagram);
        break;
      case 3:  // time passes
        w.now.monotonic += std::chrono::milliseconds(in.byte()) * 997;
        w.now.wall += std::chrono::milliseconds(in.byte()) * 1009;
        break;
      case 4:
        w.a.tunnel.tick(w.now);
        w.b.tunnel.tick(w.now);
        w.pump();
        break;
      case 5:
        to.tunnel.set_under_load(!to.tunnel.under_load());
        break;
      case 6:  // a genuine exchange
        w.send(from, to, in.take(in.byte() % 32));
        w.pump();
        break;
      case 7: {  // a datagram from a stranger's endpoint
        uint8_t stranger = 0xee;
        to.tunnel.receive(in.take(in.byte()), Endpoint(ByteView(&stranger, 1)), w.now);
        w.check_events(to, from);
        break;
      }
    }
  }
  w.check_events(w.a, w.b);
  w.check_events(w.b, w.a);
  return 0;
}
