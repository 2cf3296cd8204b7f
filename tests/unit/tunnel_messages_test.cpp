// The four message layouts: exact sizes, field offsets, strict parsing.
#include <doctest/doctest.h>

#include "common/crypto/crypto.hpp"
#include "common/tunnel/messages.hpp"

using namespace airlock;
using namespace airlock::tunnel;

TEST_CASE("message sizes are WireGuard's") {
  CHECK(HANDSHAKE_INITIATION_SIZE == 148);
  CHECK(HANDSHAKE_RESPONSE_SIZE == 92);
  CHECK(COOKIE_REPLY_SIZE == 64);
  CHECK(TRANSPORT_MIN_SIZE == 32);
  CHECK(padded_size(0) == 0);
  CHECK(padded_size(1) == 16);
  CHECK(padded_size(16) == 16);
  CHECK(padded_size(MAX_PAYLOAD_SIZE) == MAX_PAYLOAD_SIZE);
}

TEST_CASE("an initiation round-trips with every field at its offset") {
  HandshakeInitiation m;
  m.sender = 0xa1b2c3d4;
  crypto::random_bytes(m.ephemeral);
  crypto::random_bytes(m.encrypted_static);
  crypto::random_bytes(m.encrypted_timestamp);
  crypto::random_bytes(m.mac1);
  crypto::random_bytes(m.mac2);
  ByteArray<HANDSHAKE_INITIATION_SIZE> wire;
  serialize(m, wire);
  CHECK(to_hex(ByteView(wire).first(8)) == "01000000d4c3b2a1");
  CHECK(std::equal(m.ephemeral.begin(), m.ephemeral.end(), wire.begin() + 8));
  CHECK(std::equal(m.encrypted_static.begin(), m.encrypted_static.end(), wire.begin() + 40));
  CHECK(std::equal(m.encrypted_timestamp.begin(), m.encrypted_timestamp.end(), wire.begin() + 88));
  CHECK(std::equal(m.mac1.begin(), m.mac1.end(), wire.begin() + 116));
  CHECK(std::equal(m.mac2.begin(), m.mac2.end(), wire.begin() + 132));
  auto back = parse_handshake_initiation(wire);
  REQUIRE(back);
  CHECK(back->sender == m.sender);
  CHECK(back->ephemeral == m.ephemeral);
  CHECK(back->encrypted_static == m.encrypted_static);
  CHECK(back->encrypted_timestamp == m.encrypted_timestamp);
  CHECK(back->mac1 == m.mac1);
  CHECK(back->mac2 == m.mac2);
}

TEST_CASE("a response and a cookie reply round-trip") {
  HandshakeResponse r;
  r.sender = 1;
  r.receiver = 0xffffffff;
  crypto::random_bytes(r.ephemeral);
  crypto::random_bytes(r.encrypted_nothing);
  ByteArray<HANDSHAKE_RESPONSE_SIZE> rw;
  serialize(r, rw);
  CHECK(to_hex(ByteView(rw).first(12)) == "0200000001000000ffffffff");
  auto rb = parse_handshake_response(rw);
  REQUIRE(rb);
  CHECK(rb->receiver == r.receiver);
  CHECK(rb->encrypted_nothing == r.encrypted_nothing);

  CookieReply c;
  c.receiver = 77;
  crypto::random_bytes(c.nonce);
  crypto::random_bytes(c.encrypted_cookie);
  ByteArray<COOKIE_REPLY_SIZE> cw;
  serialize(c, cw);
  CHECK(std::equal(c.nonce.begin(), c.nonce.end(), cw.begin() + 8));
  CHECK(std::equal(c.encrypted_cookie.begin(), c.encrypted_cookie.end(), cw.begin() + 32));
  auto cb = parse_cookie_reply(cw);
  REQUIRE(cb);
  CHECK(cb->receiver == 77);
  CHECK(cb->nonce == c.nonce);
}

TEST_CASE("transport header") {
  uint8_t h[TRANSPORT_HEADER_SIZE];
  write_transport_header(h, {0x01020304, 0x1122334455667788});
  CHECK(to_hex(ByteView(h, 16)) == "04000000040302018877665544332211");
  Bytes msg(h, h + 16);
  msg.resize(TRANSPORT_MIN_SIZE);
  auto back = parse_transport_header(msg);
  REQUIRE(back);
  CHECK(back->receiver == 0x01020304);
  CHECK(back->counter == 0x1122334455667788);
}

TEST_CASE("parsing is strict: wrong type, reserved bytes or length are refused") {
  Bytes initiation(HANDSHAKE_INITIATION_SIZE);
  initiation[0] = 1;
  CHECK(message_type(initiation) == MessageType::handshake_initiation);
  for (size_t i = 1; i < 4; ++i) {
    Bytes bad = initiation;
    bad[i] = 1;
    CHECK_FALSE(message_type(bad));
  }
  initiation.push_back(0);
  CHECK_FALSE(parse_handshake_initiation(initiation));
  initiation.resize(HANDSHAKE_INITIATION_SIZE - 1);
  CHECK_FALSE(parse_handshake_initiation(initiation));
  CHECK_FALSE(message_type(Bytes{}));
  CHECK_FALSE(message_type(Bytes{4, 0, 0}));
  for (uint8_t t : {0, 5, 255}) CHECK_FALSE(message_type(Bytes(148, t)));

  Bytes transport(TRANSPORT_MIN_SIZE - 1);
  transport[0] = 4;
  CHECK_FALSE(message_type(transport));
  transport.resize(TRANSPORT_MAX_SIZE);
  CHECK(message_type(transport) == MessageType::transport_data);
  transport.resize(TRANSPORT_MAX_SIZE + 1);
  CHECK_FALSE(message_type(transport));
  // A response is not accepted as an initiation or the other way round.
  Bytes response(HANDSHAKE_RESPONSE_SIZE);
  response[0] = 2;
  CHECK_FALSE(parse_handshake_initiation(response));
  CHECK(parse_handshake_response(response));
  CHECK_FALSE(parse_cookie_reply(response));
}
