// Fuzzes the tunnel's parsers and the code that reads what they parsed: message_type, the four
// layouts (a parsed message must serialize back to the same bytes), the Noise reading of an
// initiation, mac checks, cookie replies and the replay window.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>

#include "common/crypto/crypto.hpp"
#include "common/tunnel/cookie.hpp"
#include "common/tunnel/handshake.hpp"
#include "common/tunnel/messages.hpp"
#include "common/tunnel/replay.hpp"

using namespace airlock;
using namespace airlock::tunnel;

namespace {

const noise::StaticKeypair& local() {
  static const noise::StaticKeypair k(crypto::SecretKey(Key{1, 2, 3, 4, 5, 6, 7, 8}));
  return k;
}

void check(bool ok) {
  if (!ok) std::abort();
}

template <size_t N>
bool same(const ByteArray<N>& a, ByteView b) {
  return b.size() == N && std::equal(a.begin(), a.end(), b.begin());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ByteView in(data, size);
  const auto type = message_type(in);
  const TimePoint now = TimePoint{} + std::chrono::seconds(size);

  if (auto m = parse_handshake_initiation(in)) {
    check(type == MessageType::handshake_initiation);
    ByteArray<HANDSHAKE_INITIATION_SIZE> out;
    serialize(*m, out);
    check(same(out, in));
    CookieChecker checker(local().public_key);
    (void)checker.check_mac1(in);
    (void)checker.check_mac2(in, in.first(6), now);
    if (auto c = consume_initiation(local(), in)) {
      // Authenticating garbage would need our key and a forged AEAD tag: it must not happen.
      std::abort();
    }
  }
  if (auto m = parse_handshake_response(in)) {
    check(type == MessageType::handshake_response);
    ByteArray<HANDSHAKE_RESPONSE_SIZE> out;
    serialize(*m, out);
    check(same(out, in));
    Handshake hs;  // no initiation pending: nothing to consume
    check(!consume_response(hs, local(), crypto::SecretKey{}, in));
  }
  if (auto m = parse_cookie_reply(in)) {
    check(type == MessageType::cookie_reply);
    ByteArray<COOKIE_REPLY_SIZE> out;
    serialize(*m, out);
    check(same(out, in));
    Cookie cookie(local().public_key);
    check(!cookie.consume_reply(*m, now));  // we sent nothing it could answer
  }
  if (auto h = parse_transport_header(in)) {
    check(type == MessageType::transport_data);
    uint8_t header[TRANSPORT_HEADER_SIZE];
    write_transport_header(header, *h);
    check(std::equal(header, header + TRANSPORT_HEADER_SIZE, in.begin()));
  }
  if (!type) {
    check(!parse_handshake_initiation(in) && !parse_handshake_response(in) && !parse_cookie_reply(in) &&
          !parse_transport_header(in));
  }

  // The input as a sequence of counters for a replay window, against a reference set.
  ReplayWindow window;
  std::set<uint64_t> seen;
  uint64_t greatest = 0;
  bool any = false;
  for (size_t i = 0; i + 8 <= size; i += 8) {
    uint64_t c = load_le64(data + i);
    if (c >> 62) c &= 0xffff;  // keep most counters close enough to interact
    const bool inside = !any || c > greatest || greatest - c < ReplayWindow::WINDOW_SIZE;
    const bool expected = c < REJECT_AFTER_MESSAGES && !seen.contains(c) && inside;
    check(window.would_accept(c) == expected);
    check(window.check_and_update(c) == expected);
    if (expected) {
      seen.insert(c);
      if (!any || c > greatest) greatest = c;
      any = true;
    }
  }
  return 0;
}
