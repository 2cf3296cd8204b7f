#include <doctest/doctest.h>

#include <string>

#include "common/relay/handshake.hpp"
#include "common/relay/protocol.hpp"

using namespace airlock;
using namespace airlock::relay;

namespace {

PeerKey key_of(uint8_t fill) {
  PeerKey k;
  k.fill(fill);
  return k;
}

Bytes raw(std::initializer_list<uint8_t> b) { return Bytes(b); }

Bytes with_type(FrameType t, Bytes payload) {
  payload.insert(payload.begin(), static_cast<uint8_t>(t));
  return payload;
}

Bytes text_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

// encode -> decode -> encode gives the same bytes, and decode names the same type.
void check_round_trip(const Frame& f) {
  Bytes once = encode(f);
  CHECK(once.size() == encoded_size(f));
  auto back = decode(once);
  REQUIRE_MESSAGE(back.ok(), back.error().message);
  CHECK(frame_type(*back) == frame_type(f));
  CHECK(encode(*back) == once);
}

std::string decode_error(const Bytes& b) {
  auto r = decode(b);
  REQUIRE_FALSE(r.ok());
  return r.error().message;
}

}  // namespace

TEST_CASE("every frame type round-trips") {
  Bytes packet(1000, 0xab);
  Challenge ch;
  ch.fill(7);
  check_round_trip(ServerHello{kProtocolVersion, key_of(1), ch});
  check_round_trip(ClientHello{kProtocolVersion, key_of(2), key_of(3), "tok.en", R"({"program":"airlock"})"});
  check_round_trip(ClientHello{kProtocolVersion, key_of(2), key_of(3), "t", ""});
  check_round_trip(ServerWelcome{"127.0.0.1:5555", R"({"relay":"airlock-relay"})"});
  check_round_trip(SendPacket{key_of(4), kFlagInteractive, packet});
  check_round_trip(RecvPacket{key_of(5), 0, packet});
  check_round_trip(KeepAlive{});
  check_round_trip(Ping{{1, 2, 3, 4, 5, 6, 7, 8}});
  check_round_trip(Pong{{8, 7, 6, 5, 4, 3, 2, 1}});
  check_round_trip(PeerGone{key_of(6), PeerGoneReason::not_allowed, "no dial grant"});
  check_round_trip(PeerGone{key_of(6), PeerGoneReason::disconnected, ""});
  check_round_trip(PeerPresent{key_of(7)});
  check_round_trip(Restarting{1500, 60000});
  check_round_trip(Control{R"({"type":"dial","id":1,"workspace":"demo"})"});
  check_round_trip(ErrorFrame{"token expired"});
}

TEST_CASE("decoded fields keep their values") {
  Bytes packet{1, 2, 3};
  // A decoded frame borrows from its bytes: they must outlive it (decode(encode(...)) would not).
  const Bytes send_wire = encode(SendPacket{key_of(9), kFlagInteractive, packet});
  auto f = decode(send_wire);
  REQUIRE(f.ok());
  auto& p = std::get<SendPacket>(*f);
  CHECK(p.dst == key_of(9));
  CHECK(p.flags == kFlagInteractive);
  CHECK(Bytes(p.packet.begin(), p.packet.end()) == packet);

  const Bytes restarting_wire = encode(Restarting{0x01020304, 0xa0b0c0d0});
  auto r = decode(restarting_wire);
  REQUIRE(r.ok());
  CHECK(std::get<Restarting>(*r).reconnect_in_ms == 0x01020304u);
  CHECK(std::get<Restarting>(*r).try_for_ms == 0xa0b0c0d0u);
  // Big-endian on the wire.
  Bytes wire = encode(Restarting{1, 2});
  CHECK(wire == raw({0x0b, 0, 0, 0, 1, 0, 0, 0, 2}));
}

TEST_CASE("the largest packet fits and one byte more does not") {
  Bytes big(kMaxPacketSize, 0x11);
  Bytes frame = encode(SendPacket{key_of(1), 0, big});
  CHECK(frame.size() == kMaxFrameSize);
  CHECK(decode(frame).ok());
  frame.push_back(0);
  CHECK(decode_error(frame).find("exceeds the 65570-byte limit") != std::string::npos);
}

TEST_CASE("headroom comes before the frame") {
  Bytes b = encode(KeepAlive{}, 16);
  REQUIRE(b.size() == 17);
  CHECK(b[16] == 0x06);
  CHECK(decode(ByteView(b).subspan(16)).ok());
}

TEST_CASE("send_packet is rewritten in place into recv_packet") {
  Bytes packet{9, 9, 9};
  Bytes frame = encode(SendPacket{key_of(1), kFlagInteractive, packet});
  rewrite_send_as_recv(frame, key_of(2));
  auto f = decode(frame);
  REQUIRE(f.ok());
  auto& r = std::get<RecvPacket>(*f);
  CHECK(r.src == key_of(2));
  CHECK(r.flags == kFlagInteractive);
  CHECK(r.packet.size() == 3);
}

TEST_CASE("empty, unknown and oversized frames are refused") {
  CHECK(decode_error({}) == "frame is empty");
  CHECK(decode_error(raw({0x00})) == "frame type 0x00 is unknown");
  CHECK(decode_error(raw({0x0e, 1, 2})) == "frame type 0x0e is unknown");
  CHECK(decode_error(raw({0xff})) == "frame type 0xff is unknown");
  CHECK(decode_error(Bytes(kMaxFrameSize + 1, 0x0c)).find("exceeds") != std::string::npos);
}

TEST_CASE("fixed-size frames must be exactly their size") {
  CHECK(decode_error(with_type(FrameType::server_hello, Bytes(64))).find("truncated") != std::string::npos);
  CHECK(decode_error(with_type(FrameType::server_hello, Bytes(66))).find("exactly 66") != std::string::npos);
  CHECK(decode_error(with_type(FrameType::keep_alive, Bytes(1))).find("exactly 1") != std::string::npos);
  CHECK(decode_error(with_type(FrameType::ping, Bytes(7))).find("truncated") != std::string::npos);
  CHECK(decode_error(with_type(FrameType::pong, Bytes(9))).find("exactly 9") != std::string::npos);
  CHECK(decode_error(with_type(FrameType::peer_present, Bytes(31))).find("truncated") != std::string::npos);
  CHECK(decode_error(with_type(FrameType::peer_present, Bytes(33))).find("exactly") != std::string::npos);
  CHECK(decode_error(with_type(FrameType::restarting, Bytes(7))).find("truncated") != std::string::npos);
  CHECK(decode_error(with_type(FrameType::restarting, Bytes(9))).find("exactly") != std::string::npos);
}

TEST_CASE("packets: truncated, empty and reserved flags are refused") {
  CHECK(decode_error(with_type(FrameType::send_packet, Bytes(20))).find("truncated") != std::string::npos);
  // header only: a packet must carry at least one byte
  CHECK(decode_error(with_type(FrameType::send_packet, Bytes(33))).find("truncated") != std::string::npos);
  Bytes p(34, 0);
  p[32] = 0x02;
  CHECK(decode_error(with_type(FrameType::recv_packet, p)) == "packet flags 0x02 set reserved bits");
  p[32] = 0x80;
  CHECK(decode_error(with_type(FrameType::send_packet, p)) == "packet flags 0x80 set reserved bits");
}

TEST_CASE("client hello: every malformed field is named") {
  auto hello = [](uint16_t token_len, std::string_view token, std::string_view meta) {
    Bytes b;
    b.push_back(static_cast<uint8_t>(FrameType::client_hello));
    b.push_back(kProtocolVersion);
    b.insert(b.end(), 64, 0x01);  // key + proof
    b.push_back(static_cast<uint8_t>(token_len >> 8));
    b.push_back(static_cast<uint8_t>(token_len));
    b.insert(b.end(), token.begin(), token.end());
    b.insert(b.end(), meta.begin(), meta.end());
    return b;
  };
  CHECK(decode(hello(3, "abc", "")).ok());
  CHECK(decode_error(hello(0, "", "")) == "client_hello carries an empty token");
  CHECK(decode_error(hello(5000, "", "")).find("token of 5000 bytes exceeds") != std::string::npos);
  CHECK(decode_error(hello(10, "abc", "")).find("truncated") != std::string::npos);
  CHECK(decode_error(hello(3, "a c", "")) == "client_hello token is not printable ASCII");
  CHECK(decode_error(hello(3, "abc", "[1,2]")) == "client_hello meta is not a JSON object");
  CHECK(decode_error(hello(3, "abc", "{bad")) == "client_hello meta is not a JSON object");
  std::string long_meta = R"({"x":")" + std::string(1100, 'a') + "\"}";
  CHECK(decode_error(hello(3, "abc", long_meta)).find("meta of") != std::string::npos);
  Bytes short_fixed = with_type(FrameType::client_hello, Bytes(40));
  CHECK(decode_error(short_fixed).find("truncated") != std::string::npos);
}

TEST_CASE("server welcome: address and info are checked") {
  auto welcome = [](uint8_t addr_len, std::string_view addr, std::string_view info) {
    Bytes b{static_cast<uint8_t>(FrameType::server_welcome), addr_len};
    b.insert(b.end(), addr.begin(), addr.end());
    b.insert(b.end(), info.begin(), info.end());
    return b;
  };
  CHECK(decode(welcome(3, "a:1", "{}")).ok());
  CHECK(decode_error(welcome(0, "", "{}")) == "server_welcome carries an empty observed address");
  CHECK(decode_error(welcome(100, std::string(100, 'a'), "{}")).find("address of 100 bytes") != std::string::npos);
  CHECK(decode_error(welcome(10, "a:1", "")).find("truncated") != std::string::npos);
  CHECK(decode_error(welcome(3, "a:1", "")) == "server_welcome info is not a JSON object");
  CHECK(decode_error(welcome(3, "a:1", "\"x\"")) == "server_welcome info is not a JSON object");
}

TEST_CASE("peer gone: reason codes and text are checked") {
  Bytes g(33, 0);
  g[32] = 0x03;
  CHECK(decode_error(with_type(FrameType::peer_gone, g)) == "peer_gone reason 0x03 is unknown");
  CHECK(decode_error(with_type(FrameType::peer_gone, Bytes(32))).find("truncated") != std::string::npos);
  Bytes bad_text(33, 0);
  bad_text.push_back(0xc3);  // a lead byte with no continuation
  CHECK(decode_error(with_type(FrameType::peer_gone, bad_text)) == "peer_gone text is not valid UTF-8");
  Bytes long_text(33 + kMaxReasonSize + 1, 'a');
  long_text[32] = 0;
  CHECK(decode_error(with_type(FrameType::peer_gone, long_text)).find("exceeds") != std::string::npos);
}

TEST_CASE("control and error: JSON objects and UTF-8 text within limits") {
  CHECK(decode_error(with_type(FrameType::control, text_bytes("{"))).find("truncated") != std::string::npos);
  CHECK(decode_error(with_type(FrameType::control, text_bytes("[1,2]"))) == "control payload is not a JSON object");
  CHECK(decode_error(with_type(FrameType::control, text_bytes("{\"a\":}"))) == "control payload is not a JSON object");
  CHECK(decode_error(with_type(FrameType::control, text_bytes("{} {}"))) == "control payload is not a JSON object");
  Bytes overlong = text_bytes("{\"a\":\"");
  overlong.push_back(0xc0);  // overlong encoding of '/'
  overlong.push_back(0xaf);
  overlong.push_back('"');
  overlong.push_back('}');
  CHECK(decode_error(with_type(FrameType::control, overlong)) == "control text is not valid UTF-8");
  std::string big = "{\"a\":\"" + std::string(kMaxControlSize, 'x') + "\"}";
  CHECK(decode_error(with_type(FrameType::control, text_bytes(big))).find("exceeds") != std::string::npos);

  CHECK(decode_error(raw({0x0d})).find("truncated") != std::string::npos);
  CHECK(decode_error(with_type(FrameType::error, Bytes{0xed, 0xa0, 0x80})) == "error text is not valid UTF-8");  // surrogate
  CHECK(decode_error(with_type(FrameType::error, Bytes(kMaxReasonSize + 1, 'a'))).find("exceeds") != std::string::npos);
  CHECK(decode(with_type(FrameType::error, text_bytes("caf\xc3\xa9 \xf0\x9f\x94\x91"))).ok());
}

TEST_CASE("every truncation of a valid frame is refused or still well-formed") {
  Bytes packet(100, 1);
  std::vector<Bytes> frames = {
      encode(ServerHello{kProtocolVersion, key_of(1), {}}),
      encode(ClientHello{kProtocolVersion, key_of(2), key_of(3), "token", R"({"a":1})"}),
      encode(ServerWelcome{"1.2.3.4:5", R"({"b":2})"}),
      encode(SendPacket{key_of(4), 0, packet}),
      encode(Restarting{1, 2}),
      encode(Control{R"({"type":"dial"})"}),
  };
  for (const Bytes& f : frames) {
    for (size_t n = 0; n < f.size(); ++n) {
      auto r = decode(ByteView(f).first(n));
      if (r.ok()) CHECK(encode(*r) == Bytes(f.begin(), f.begin() + static_cast<std::ptrdiff_t>(n)));
    }
  }
}

TEST_CASE("proof of key possession: both sides agree; a wrong key or challenge does not") {
  crypto::SecretKey relay_private = crypto::x25519_generate();
  PeerKey relay_public = crypto::x25519_public(relay_private);
  crypto::SecretKey client_private = crypto::x25519_generate();
  PeerKey client_public = crypto::x25519_public(client_private);
  Challenge challenge;
  crypto::random_bytes(challenge);

  auto proof = hello_proof(client_private, relay_public, challenge, client_public);
  REQUIRE(proof.ok());
  ClientHello h{kProtocolVersion, client_public, *proof, "t", ""};
  CHECK(verify_hello_proof(relay_private, h, challenge).ok());

  Challenge other = challenge;
  other[0] ^= 1;
  CHECK_FALSE(verify_hello_proof(relay_private, h, other).ok());

  // Claiming someone else's key with a proof made from our own private key fails.
  crypto::SecretKey victim = crypto::x25519_generate();
  ClientHello stolen{kProtocolVersion, crypto::x25519_public(victim), *proof, "t", ""};
  auto s = verify_hello_proof(relay_private, stolen, challenge);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().message.find("does not hold the private key") != std::string::npos);

  // A low-order (all-zero) public key is refused rather than yielding a predictable secret.
  ClientHello zero{kProtocolVersion, PeerKey{}, *proof, "t", ""};
  CHECK_FALSE(verify_hello_proof(relay_private, zero, challenge).ok());
}

TEST_CASE("handshake: the relay accepts a good hello and names what is wrong with a bad one") {
  auto issuer = token::IssuerKey::generate();
  crypto::SecretKey relay_private = crypto::x25519_generate();
  ServerHello sh{kProtocolVersion, crypto::x25519_public(relay_private), {}};
  crypto::random_bytes(sh.challenge);
  crypto::SecretKey me = crypto::x25519_generate();
  const int64_t now = 1'800'000'000;

  token::Claims c;
  c.sub = "alice";
  c.role = token::Role::member;
  c.iat = now - 10;
  c.exp = now + 600;
  std::string tok = token::mint(issuer, c);

  auto accept = [&](const Bytes& frame, const crypto::Key& issuer_public) {
    auto f = decode(frame);
    REQUIRE(f.ok());
    return accept_client_hello(std::get<ClientHello>(*f), relay_private, sh.challenge, issuer_public, now);
  };

  auto frame = make_client_hello(sh, me, tok, R"({"program":"test"})");
  REQUIRE(frame.ok());
  auto ok = accept(*frame, issuer.public_key);
  REQUIRE_MESSAGE(ok.ok(), ok.error().message);
  CHECK(ok->key == crypto::x25519_public(me));
  CHECK(ok->claims.sub == "alice");

  auto forged = accept(*frame, token::IssuerKey::generate().public_key);
  REQUIRE_FALSE(forged.ok());
  CHECK(forged.error().message.find("signature does not verify") != std::string::npos);

  token::Claims old = c;
  old.iat = now - 7200;
  old.exp = now - 3600;
  auto expired = accept(*make_client_hello(sh, me, token::mint(issuer, old), ""), issuer.public_key);
  REQUIRE_FALSE(expired.ok());
  CHECK(expired.error().message.find("expired") != std::string::npos);

  token::Claims agent = c;
  agent.role = token::Role::agent;
  auto no_ws = accept(*make_client_hello(sh, me, token::mint(issuer, agent), ""), issuer.public_key);
  REQUIRE_FALSE(no_ws.ok());
  CHECK(no_ws.error().message.find("does not name its workspace") != std::string::npos);

  ServerHello v2 = sh;
  v2.version = 2;
  CHECK_FALSE(make_client_hello(v2, me, tok, "").ok());
  Bytes wrong_version = *frame;
  wrong_version[1] = 9;
  auto wv = accept(wrong_version, issuer.public_key);
  REQUIRE_FALSE(wv.ok());
  CHECK(wv.error().message.find("version 9") != std::string::npos);
}
