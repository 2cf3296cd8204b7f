// bench_tunnel: the tunnel's transport path against raw OpenSSL ChaCha20-Poly1305, and handshakes.
//
// For 1 KiB, 16 KiB and 64 KiB payloads: seal on one Tunnel + open on another (through send,
// poll_datagram, receive, poll_event: the whole transport path) against EVP seal + open of the
// same size with contexts created once, measured alternately in the same run; the best of a few
// rounds each, so a neighbour's burst of CPU does not decide the ratio. Then complete handshakes
// per second (initiation, response, confirming keepalive: both sides' work). Prints one JSON object.
#include <openssl/evp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/crypto/crypto.hpp"
#include "common/tunnel/tunnel.hpp"

using namespace airlock;
using namespace airlock::tunnel;
using Clock = std::chrono::steady_clock;

namespace {

constexpr double kSecondsPerRound = 0.2;
constexpr int kRounds = 6;  // per size and per side: ~2.4 s per size in all

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "bench_tunnel: %s\n", what);
  std::exit(1);
}

// Runs op in batches until the round's time is up; returns operations per second.
template <typename Op>
double rate(Op&& op) {
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(kSecondsPerRound);
  uint64_t ops = 0;
  auto now = start;
  do {
    for (int i = 0; i < 64; ++i) op();
    ops += 64;
    now = Clock::now();
  } while (now < end);
  return static_cast<double>(ops) / std::chrono::duration<double>(now - start).count();
}

// Raw EVP ChaCha20-Poly1305, the way a careful caller uses it: contexts and keys set up once,
// per message only the nonce, the data and the tag.
struct RawAead {
  EVP_CIPHER_CTX* seal_ctx = EVP_CIPHER_CTX_new();
  EVP_CIPHER_CTX* open_ctx = EVP_CIPHER_CTX_new();
  uint64_t counter = 0;
  Bytes plaintext, ciphertext, opened;

  explicit RawAead(size_t size) : plaintext(size, 0x5a), ciphertext(size + 16), opened(size) {
    uint8_t key[32];
    crypto::random_bytes(key);
    if (!EVP_EncryptInit_ex(seal_ctx, EVP_chacha20_poly1305(), nullptr, key, nullptr) ||
        !EVP_DecryptInit_ex(open_ctx, EVP_chacha20_poly1305(), nullptr, key, nullptr))
      die("EVP init");
  }
  ~RawAead() {
    EVP_CIPHER_CTX_free(seal_ctx);
    EVP_CIPHER_CTX_free(open_ctx);
  }
  void nonce(uint8_t out[12], uint64_t c) {
    std::fill_n(out, 4, 0);
    store_le64(out + 4, c);
  }
  void seal_open() {
    uint8_t iv[12];
    nonce(iv, counter++);
    int len = 0;
    const int n = static_cast<int>(plaintext.size());
    if (!EVP_EncryptInit_ex(seal_ctx, nullptr, nullptr, nullptr, iv) ||
        !EVP_EncryptUpdate(seal_ctx, ciphertext.data(), &len, plaintext.data(), n) ||
        !EVP_EncryptFinal_ex(seal_ctx, ciphertext.data() + len, &len) ||
        !EVP_CIPHER_CTX_ctrl(seal_ctx, EVP_CTRL_AEAD_GET_TAG, 16, ciphertext.data() + n))
      die("EVP seal");
    if (!EVP_DecryptInit_ex(open_ctx, nullptr, nullptr, nullptr, iv) ||
        !EVP_DecryptUpdate(open_ctx, opened.data(), &len, ciphertext.data(), n) ||
        !EVP_CIPHER_CTX_ctrl(open_ctx, EVP_CTRL_AEAD_SET_TAG, 16, ciphertext.data() + n) ||
        EVP_DecryptFinal_ex(open_ctx, opened.data() + len, &len) <= 0)
      die("EVP open");
  }
};

struct TunnelPair {
  crypto::SecretKey ka = crypto::x25519_generate(), kb = crypto::x25519_generate();
  Tunnel a{ka}, b{kb};
  Endpoint ea{as_bytes("a")}, eb{as_bytes("b")};
  Now now{Clock::now(), std::chrono::system_clock::now()};
  Datagram d;
  Event e;

  TunnelPair() {
    if (!a.add_peer(b.public_key(), std::nullopt, eb).ok() || !b.add_peer(a.public_key()).ok()) die("add_peer");
    handshake();
  }
  void pump() {
    for (bool moved = true; moved;) {
      moved = false;
      while (a.poll_datagram(d)) b.receive(d.bytes, ea, now), moved = true;
      while (b.poll_datagram(d)) a.receive(d.bytes, eb, now), moved = true;
      while (a.poll_event(e)) {
      }
      while (b.poll_event(e)) {
      }
    }
  }
  // A complete handshake; the clock moves past REKEY_TIMEOUT so the next one is not rate limited.
  void handshake() {
    now.monotonic += std::chrono::seconds(6);
    now.wall += std::chrono::seconds(6);
    if (!a.connect(b.public_key(), now)) die("connect");
    pump();
  }
  // One payload sealed by a and opened by b, through the whole transport path.
  void transport(ByteView payload) {
    if (a.send(b.public_key(), payload, now) != SendOutcome::sent) die("send");
    if (!a.poll_datagram(d)) die("no datagram");
    if (b.receive(d.bytes, ea, now) != Outcome::transport_data) die("receive");
    if (!b.poll_event(e) || e.payload.size() != payload.size()) die("no payload");
  }
};

}  // namespace

int main() {
  const size_t sizes[] = {1024, 16384, 65536};
  std::string json = "{\"benchmark\":\"tunnel\",\"transport\":[";
  bool first = true;
  for (size_t size : sizes) {
    RawAead raw(size);
    TunnelPair pair;
    Bytes payload(size, 0x5a);
    double best_raw = 0, best_tunnel = 0;
    for (int round = 0; round < kRounds; ++round) {
      best_raw = std::max(best_raw, rate([&] { raw.seal_open(); }));
      best_tunnel = std::max(best_tunnel, rate([&] { pair.transport(payload); }));
    }
    const double gb = static_cast<double>(size) / 1e9;
    char entry[320];
    std::snprintf(entry, sizeof entry,
                  "%s{\"size\":%zu,\"tunnel_seal_open_per_s\":%.0f,\"tunnel_gbytes_per_s\":%.3f,"
                  "\"openssl_seal_open_per_s\":%.0f,\"openssl_gbytes_per_s\":%.3f,\"ratio\":%.3f}",
                  first ? "" : ",", size, best_tunnel, best_tunnel * gb, best_raw, best_raw * gb,
                  best_tunnel / best_raw);
    json += entry;
    first = false;
  }
  TunnelPair pair;
  double handshakes = 0;
  for (int round = 0; round < kRounds; ++round) handshakes = std::max(handshakes, rate([&] { pair.handshake(); }) );
  char tail[160];
  std::snprintf(tail, sizeof tail, "],\"handshakes_per_s\":%.0f,\"seconds_per_round\":%.1f,\"rounds\":%d}\n",
                handshakes, kSecondsPerRound, kRounds);
  json += tail;
  std::fputs(json.c_str(), stdout);
  return 0;
}
