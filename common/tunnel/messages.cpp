#include "common/tunnel/messages.hpp"

#include <algorithm>

namespace airlock::tunnel {
namespace {

// The first four bytes as WireGuard reads them: type in the low byte, three reserved zero bytes.
uint32_t header_word(MessageType type) { return static_cast<uint32_t>(type); }

template <size_t N>
void copy_from(ByteArray<N>& dst, const uint8_t* src) {
  std::copy_n(src, N, dst.begin());
}

template <size_t N>
uint8_t* copy_to(uint8_t* dst, const ByteArray<N>& src) {
  return std::copy(src.begin(), src.end(), dst);
}

}  // namespace

std::optional<MessageType> message_type(ByteView datagram) {
  if (datagram.size() < 4) return std::nullopt;
  switch (load_le32(datagram.data())) {
    case 1:
      if (datagram.size() == HANDSHAKE_INITIATION_SIZE) return MessageType::handshake_initiation;
      break;
    case 2:
      if (datagram.size() == HANDSHAKE_RESPONSE_SIZE) return MessageType::handshake_response;
      break;
    case 3:
      if (datagram.size() == COOKIE_REPLY_SIZE) return MessageType::cookie_reply;
      break;
    case 4:
      if (datagram.size() >= TRANSPORT_MIN_SIZE && datagram.size() <= TRANSPORT_MAX_SIZE)
        return MessageType::transport_data;
      break;
    default:
      break;
  }
  return std::nullopt;
}

std::optional<HandshakeInitiation> parse_handshake_initiation(ByteView d) {
  if (message_type(d) != MessageType::handshake_initiation) return std::nullopt;
  HandshakeInitiation m;
  const uint8_t* p = d.data() + 4;
  m.sender = load_le32(p), p += 4;
  copy_from(m.ephemeral, p), p += m.ephemeral.size();
  copy_from(m.encrypted_static, p), p += m.encrypted_static.size();
  copy_from(m.encrypted_timestamp, p), p += m.encrypted_timestamp.size();
  copy_from(m.mac1, p), p += m.mac1.size();
  copy_from(m.mac2, p);
  return m;
}

std::optional<HandshakeResponse> parse_handshake_response(ByteView d) {
  if (message_type(d) != MessageType::handshake_response) return std::nullopt;
  HandshakeResponse m;
  const uint8_t* p = d.data() + 4;
  m.sender = load_le32(p), p += 4;
  m.receiver = load_le32(p), p += 4;
  copy_from(m.ephemeral, p), p += m.ephemeral.size();
  copy_from(m.encrypted_nothing, p), p += m.encrypted_nothing.size();
  copy_from(m.mac1, p), p += m.mac1.size();
  copy_from(m.mac2, p);
  return m;
}

std::optional<CookieReply> parse_cookie_reply(ByteView d) {
  if (message_type(d) != MessageType::cookie_reply) return std::nullopt;
  CookieReply m;
  const uint8_t* p = d.data() + 4;
  m.receiver = load_le32(p), p += 4;
  copy_from(m.nonce, p), p += m.nonce.size();
  copy_from(m.encrypted_cookie, p);
  return m;
}

std::optional<TransportHeader> parse_transport_header(ByteView d) {
  if (message_type(d) != MessageType::transport_data) return std::nullopt;
  return TransportHeader{load_le32(d.data() + 4), load_le64(d.data() + 8)};
}

void serialize(const HandshakeInitiation& m, ByteArray<HANDSHAKE_INITIATION_SIZE>& out) {
  uint8_t* p = out.data();
  store_le32(p, header_word(MessageType::handshake_initiation)), p += 4;
  store_le32(p, m.sender), p += 4;
  p = copy_to(p, m.ephemeral);
  p = copy_to(p, m.encrypted_static);
  p = copy_to(p, m.encrypted_timestamp);
  p = copy_to(p, m.mac1);
  copy_to(p, m.mac2);
}

void serialize(const HandshakeResponse& m, ByteArray<HANDSHAKE_RESPONSE_SIZE>& out) {
  uint8_t* p = out.data();
  store_le32(p, header_word(MessageType::handshake_response)), p += 4;
  store_le32(p, m.sender), p += 4;
  store_le32(p, m.receiver), p += 4;
  p = copy_to(p, m.ephemeral);
  p = copy_to(p, m.encrypted_nothing);
  p = copy_to(p, m.mac1);
  copy_to(p, m.mac2);
}

void serialize(const CookieReply& m, ByteArray<COOKIE_REPLY_SIZE>& out) {
  uint8_t* p = out.data();
  store_le32(p, header_word(MessageType::cookie_reply)), p += 4;
  store_le32(p, m.receiver), p += 4;
  p = copy_to(p, m.nonce);
  copy_to(p, m.encrypted_cookie);
}

void write_transport_header(uint8_t* out, const TransportHeader& h) {
  store_le32(out, header_word(MessageType::transport_data));
  store_le32(out + 4, h.receiver);
  store_le64(out + 8, h.counter);
}

}  // namespace airlock::tunnel
