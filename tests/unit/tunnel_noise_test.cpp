// The Noise layer against the cacophony test vector for Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s
// (haskell-cryptography/cacophony, vectors/cacophony.txt), byte for byte, then WireGuard's use of
// the same pattern: message sizes, indices, mac1, and the session keys both sides derive.
#include <doctest/doctest.h>

#include <string>

#include "common/crypto/crypto.hpp"
#include "common/tunnel/cookie.hpp"
#include "common/tunnel/handshake.hpp"
#include "common/tunnel/messages.hpp"
#include "common/tunnel/noise.hpp"

using namespace airlock;
using namespace airlock::tunnel;
using crypto::Key;
using crypto::SecretKey;

namespace {

Bytes hex(std::string_view h) {
  Bytes b;
  REQUIRE(from_hex(h, b));
  return b;
}

Key key(std::string_view h) {
  Bytes b = hex(h);
  REQUIRE(b.size() == 32);
  Key k;
  std::copy(b.begin(), b.end(), k.begin());
  return k;
}

SecretKey secret(std::string_view h) { return SecretKey(key(h)); }

// The vector's data, as published.
struct Vector {
  std::string_view protocol_name = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
  std::string_view prologue = "4a6f686e2047616c74";
  std::string_view psk = "54686973206973206d7920417573747269616e20706572737065637469766521";
  std::string_view init_static = "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1";
  std::string_view init_ephemeral = "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a";
  std::string_view init_remote_static = "31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62";
  std::string_view resp_static = "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893";
  std::string_view resp_ephemeral = "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b";
  struct Message {
    std::string_view payload, ciphertext;
  };
  Message messages[6] = {
      {"4c756477696720766f6e204d69736573",
       "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944001e21de9f98ddd8e2ad57527207feb56253c9c94a9"
       "e496782ecfcb2a75fbcaf1b52948cc48daefe660c62119ab5000980c84831215f2441eba616548e832985464cf17e51ee93109008399"
       "a21f7e13f"},
      {"4d757272617920526f746862617264",
       "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843cb765f2caef0751b8f007572dab0322217755c0632f3"
       "65717edbf34d33e87a"},
      {"462e20412e20486179656b", "8153ca9833bc3c1b91a7e66e5f4d4f5b59bf9e64c2f20d15f0bba7"},
      {"4361726c204d656e676572", "07af0c9c86e1b4e80f36b04ff7688d51141af3debd0332f0a705ef"},
      {"4a65616e2d426170746973746520536179", "6ab1467c0448cc78394494abaaf23afce0e234315d6e2624dcbfa8a21c1c4d073d"},
      {"457567656e2042f6686d20766f6e2042617765726b",
       "dfc346c0d2296ae6cf1acf6f12b8456a1dba228cf8d8b774aacf1c47fc53aa80ebc7a4c292"},
  };
};

}  // namespace

TEST_CASE("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s reproduces the cacophony vector byte for byte") {
  const Vector v;
  const Bytes prologue = hex(v.prologue);
  const noise::Protocol protocol{as_bytes(v.protocol_name), prologue};
  const SecretKey psk = secret(v.psk);
  const noise::StaticKeypair initiator(secret(v.init_static));
  const noise::StaticKeypair responder(secret(v.resp_static));
  REQUIRE(to_hex(responder.public_key) == v.init_remote_static);

  noise::HandshakeState init, resp;
  init.remote_static = key(v.init_remote_static);
  noise::initialize(init, protocol, init.remote_static);
  noise::initialize(resp, protocol, responder.public_key);

  // -> e, es, s, ss, {payload}
  const Bytes payload0 = hex(v.messages[0].payload);
  Bytes message0(noise::message_1_size(payload0.size()));
  REQUIRE(noise::write_message_1(init, initiator, secret(v.init_ephemeral), payload0, message0.data()));
  CHECK(to_hex(message0) == v.messages[0].ciphertext);

  Bytes read0(noise::message_1_payload_size(message0.size()));
  REQUIRE(noise::read_message_1(resp, responder, message0, read0.data()));
  CHECK(read0 == payload0);
  CHECK(resp.remote_static == initiator.public_key);

  // <- e, ee, se, psk, {payload}
  const Bytes payload1 = hex(v.messages[1].payload);
  Bytes message1(noise::message_2_size(payload1.size()));
  REQUIRE(noise::write_message_2(resp, secret(v.resp_ephemeral), psk, payload1, message1.data()));
  CHECK(to_hex(message1) == v.messages[1].ciphertext);

  Bytes read1(noise::message_2_payload_size(message1.size()));
  REQUIRE(noise::read_message_2(init, initiator, psk, message1, read1.data()));
  CHECK(read1 == payload1);
  CHECK(init.hash == resp.hash);

  // Transport: the split's first key carries initiator -> responder, nonces count from zero, and
  // the messages alternate initiator, responder, initiator, responder.
  SecretKey init_send, init_recv, resp_recv, resp_send;
  noise::split(init, init_send, init_recv);
  noise::split(resp, resp_recv, resp_send);
  crypto::ChaChaPoly i_send(init_send), i_recv(init_recv), r_send(resp_send), r_recv(resp_recv);
  for (int i = 2; i < 6; ++i) {
    const bool from_initiator = i % 2 == 0;
    const uint64_t nonce = static_cast<uint64_t>((i - 2) / 2);
    const Bytes payload = hex(v.messages[i].payload);
    Bytes sealed(payload.size() + crypto::kAeadTagSize);
    (from_initiator ? i_send : r_send).seal(nonce, payload, {}, sealed.data());
    CHECK_MESSAGE(to_hex(sealed) == v.messages[i].ciphertext, "transport message ", i);
    Bytes opened(payload.size());
    CHECK((from_initiator ? r_recv : i_recv).open(nonce, sealed, {}, opened.data()));
    CHECK(opened == payload);
  }
}

TEST_CASE("a Noise message that was tampered with does not authenticate and leaves nothing usable") {
  const Vector v;
  const Bytes prologue = hex(v.prologue);
  const noise::Protocol protocol{as_bytes(v.protocol_name), prologue};
  const noise::StaticKeypair initiator(secret(v.init_static));
  const noise::StaticKeypair responder(secret(v.resp_static));
  noise::HandshakeState init;
  init.remote_static = responder.public_key;
  noise::initialize(init, protocol, responder.public_key);
  Bytes message0(noise::message_1_size(0));
  REQUIRE(noise::write_message_1(init, initiator, secret(v.init_ephemeral), {}, message0.data()));
  for (size_t i = 0; i < message0.size(); i += 7) {
    Bytes forged = message0;
    forged[i] ^= 0x01;
    noise::HandshakeState resp;
    noise::initialize(resp, protocol, responder.public_key);
    uint8_t none[1];
    CHECK_FALSE(noise::read_message_1(resp, responder, forged, none));
  }
  // A different prologue is a different protocol: it must not authenticate either.
  noise::HandshakeState other;
  noise::initialize(other, {as_bytes(v.protocol_name), as_bytes("Jane Galt")}, responder.public_key);
  uint8_t none[1];
  CHECK_FALSE(noise::read_message_1(other, responder, message0, none));
}

TEST_CASE("a low-order public key makes the handshake fail instead of deriving a known key") {
  const noise::StaticKeypair initiator(crypto::x25519_generate());
  noise::HandshakeState hs;
  hs.remote_static = Key{};  // the all-zero point: every DH with it is zero
  noise::initialize(hs, noise::wireguard_protocol(), hs.remote_static);
  Bytes out(noise::message_1_size(12));
  CHECK_FALSE(noise::write_message_1(hs, initiator, crypto::x25519_generate(), Bytes(12), out.data()));
}

TEST_CASE("WireGuard's handshake: 148- and 92-byte messages, indices in place, matching session keys") {
  const noise::StaticKeypair initiator(crypto::x25519_generate());
  const noise::StaticKeypair responder(crypto::x25519_generate());
  SecretKey psk;
  crypto::random_bytes({psk.data(), psk.size()});

  Handshake hs;
  Tai64n timestamp = tai64n(WallTime{} + std::chrono::seconds(1700000000));
  ByteArray<HANDSHAKE_INITIATION_SIZE> initiation;
  REQUIRE(create_initiation(hs, initiator, responder.public_key, 0x11223344, crypto::x25519_generate(), timestamp,
                            initiation));
  CHECK(initiation.size() == 148);
  CHECK(initiation[0] == 1);
  CHECK(initiation[1] == 0);
  CHECK(load_le32(initiation.data() + 4) == 0x11223344);

  Cookie to_responder(responder.public_key);
  to_responder.add_macs(initiation, TimePoint{});
  // mac1 as WireGuard computes it, from the primitives: MAC(HASH("mac1----" || S_pub_r), msg[0:116]).
  const Key mac1_key = crypto::blake2s256({as_bytes("mac1----"), responder.public_key});
  const auto mac1 = crypto::mac16(mac1_key, ByteView(initiation).first(116));
  CHECK(std::equal(mac1.begin(), mac1.end(), initiation.begin() + 116));
  CHECK(std::all_of(initiation.begin() + 132, initiation.end(), [](uint8_t b) { return b == 0; }));  // no cookie
  CHECK(CookieChecker(responder.public_key).check_mac1(initiation));
  CHECK_FALSE(CookieChecker(initiator.public_key).check_mac1(initiation));
  auto parsed = parse_handshake_initiation(initiation);
  REQUIRE(parsed);
  CHECK(parsed->sender == 0x11223344);
  CHECK(std::equal(parsed->mac1.begin(), parsed->mac1.end(), mac1.begin()));

  auto consumed = consume_initiation(responder, initiation);
  REQUIRE(consumed);
  CHECK(consumed->noise.remote_static == initiator.public_key);
  CHECK(consumed->sender == 0x11223344);
  CHECK(consumed->timestamp == timestamp);

  ByteArray<HANDSHAKE_RESPONSE_SIZE> response;
  REQUIRE(create_response(*consumed, 0x55667788, crypto::x25519_generate(), psk, response));
  Cookie(initiator.public_key).add_macs(response, TimePoint{});
  CHECK(response.size() == 92);
  CHECK(response[0] == 2);
  CHECK(load_le32(response.data() + 4) == 0x55667788);
  CHECK(load_le32(response.data() + 8) == 0x11223344);
  CHECK(CookieChecker(initiator.public_key).check_mac1(response));

  // A wrong PSK fails, and leaves the initiator's state able to take the right response.
  SecretKey wrong_psk;
  wrong_psk.bytes[0] = 1;
  CHECK_FALSE(consume_response(hs, initiator, wrong_psk, response));
  REQUIRE(consume_response(hs, initiator, psk, response));

  auto i_keys = begin_session(hs.noise, true, 0x11223344, 0x55667788, TimePoint{});
  auto r_keys = begin_session(consumed->noise, false, 0x55667788, 0x11223344, TimePoint{});
  const Bytes hello = {'h', 'e', 'l', 'l', 'o', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  Bytes sealed(hello.size() + 16), opened(hello.size());
  i_keys->sending.seal(0, hello, {}, sealed.data());
  REQUIRE(r_keys->receiving.open(0, sealed, {}, opened.data()));
  CHECK(opened == hello);
  r_keys->sending.seal(0, hello, {}, sealed.data());
  REQUIRE(i_keys->receiving.open(0, sealed, {}, opened.data()));
  CHECK_FALSE(i_keys->receiving.open(1, sealed, {}, opened.data()));  // nonce is bound
}

TEST_CASE("WireGuard's protocol constants are the paper's") {
  CHECK(CONSTRUCTION == "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s");
  CHECK(IDENTIFIER == "WireGuard v1 zx2c4 Jason@zx2c4.com");
  CHECK(LABEL_MAC1 == "mac1----");
  CHECK(LABEL_COOKIE == "cookie--");
  CHECK(noise::message_1_size(TAI64N_SIZE) == INITIATION_NOISE_SIZE);
  CHECK(INITIATION_NOISE_OFFSET + INITIATION_NOISE_SIZE + 2 * MAC_SIZE == HANDSHAKE_INITIATION_SIZE);
  CHECK(noise::message_2_size(0) == RESPONSE_NOISE_SIZE);
  CHECK(RESPONSE_NOISE_OFFSET + RESPONSE_NOISE_SIZE + 2 * MAC_SIZE == HANDSHAKE_RESPONSE_SIZE);
  CHECK(REJECT_AFTER_MESSAGES == 18446744073709543423ull);  // 2^64 - 2^13 - 1
  CHECK(REKEY_AFTER_MESSAGES == 1152921504606846976ull);    // 2^60
  CHECK(MAX_TIMER_HANDSHAKES == 18);
}
