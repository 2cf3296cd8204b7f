// The relay frame codec: decode() checks each layout in protocol.hpp exactly; encode() writes it.
#include <cstdio>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "common/relay/protocol.hpp"

namespace airlock::relay {
namespace {

std::string hex_byte(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", b);
  return buf;
}

// Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<uint8_t>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xe0) == 0xc0) { n = 1; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { n = 3; cp = c & 0x07; }
    else return false;
    if (i + n >= s.size()) return false;  // continuation bytes missing
    for (size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)) return false;
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

// A JSON object and nothing else (leading/trailing whitespace allowed by the grammar).
bool is_json_object(std::string_view s) {
  size_t i = s.find_first_not_of(" \t\r\n");
  if (i == std::string_view::npos || s[i] != '{') return false;
  return nlohmann::json::accept(s);
}

bool printable_ascii(std::string_view s) {
  for (char c : s) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

// A cursor over the payload that reports what was missing in the frame's own terms.
class Reader {
 public:
  explicit Reader(ByteView payload) : p_(payload) {}
  size_t remaining() const { return p_.size() - pos_; }
  bool has(size_t n) const { return remaining() >= n; }
  uint8_t u8() { return p_[pos_++]; }
  uint16_t u16() { uint16_t v = load_be16(p_.data() + pos_); pos_ += 2; return v; }
  uint32_t u32() { uint32_t v = load_be32(p_.data() + pos_); pos_ += 4; return v; }
  template <size_t N>
  void array(ByteArray<N>& out) { std::memcpy(out.data(), p_.data() + pos_, N); pos_ += N; }
  ByteView bytes(size_t n) { ByteView v = p_.subspan(pos_, n); pos_ += n; return v; }
  ByteView rest() { return bytes(remaining()); }
  std::string_view text(size_t n) { return as_chars(bytes(n)); }

 private:
  ByteView p_;
  size_t pos_ = 0;
};

Error truncated(std::string_view what, size_t got, size_t need, bool at_least = false) {
  return make_error(std::string(what) + " is truncated: " + std::to_string(got) + " of " +
                    (at_least ? "at least " : "") + std::to_string(need) + " bytes");
}
Error wrong_size(std::string_view what, size_t got, size_t need) {
  return make_error(std::string(what) + " must be exactly " + std::to_string(need) + " bytes, got " +
                    std::to_string(got));
}

Result<Frame> decode_packet(FrameType type, ByteView frame) {
  std::string_view what = frame_type_name(type);
  if (frame.size() < kPacketHeaderSize + 1) return truncated(what, frame.size(), kPacketHeaderSize + 1, true);
  Reader r(frame.subspan(1));
  PeerKey key;
  r.array(key);
  uint8_t flags = r.u8();
  if (flags & ~kFlagsKnown) return make_error("packet flags " + hex_byte(flags) + " set reserved bits");
  ByteView packet = r.rest();
  if (type == FrameType::send_packet) return Frame{SendPacket{key, flags, packet}};
  return Frame{RecvPacket{key, flags, packet}};
}

Result<Frame> decode_client_hello(ByteView frame) {
  constexpr size_t fixed = 1 + 1 + kKeySize + kProofSize + 2;
  if (frame.size() < fixed) return truncated("client_hello", frame.size(), fixed + 1, true);
  Reader r(frame.subspan(1));
  ClientHello h;
  h.version = r.u8();
  r.array(h.peer_key);
  r.array(h.proof);
  uint16_t token_len = r.u16();
  if (token_len == 0) return make_error("client_hello carries an empty token");
  if (token_len > kMaxTokenSize)
    return make_error("client_hello token of " + std::to_string(token_len) + " bytes exceeds the " +
                      std::to_string(kMaxTokenSize) + "-byte limit");
  if (!r.has(token_len)) return truncated("client_hello", frame.size(), fixed + token_len, true);
  h.token = r.text(token_len);
  if (!printable_ascii(h.token)) return make_error("client_hello token is not printable ASCII");
  h.meta = r.text(r.remaining());
  if (h.meta.size() > kMaxMetaSize)
    return make_error("client_hello meta of " + std::to_string(h.meta.size()) + " bytes exceeds the " +
                      std::to_string(kMaxMetaSize) + "-byte limit");
  if (!h.meta.empty() && !is_json_object(h.meta)) return make_error("client_hello meta is not a JSON object");
  return Frame{h};
}

Result<Frame> decode_welcome(ByteView frame) {
  if (frame.size() < 1 + 1 + 1) return truncated("server_welcome", frame.size(), 3, true);
  Reader r(frame.subspan(1));
  size_t addr_len = r.u8();
  if (addr_len == 0) return make_error("server_welcome carries an empty observed address");
  if (addr_len > kMaxAddressSize)
    return make_error("server_welcome address of " + std::to_string(addr_len) + " bytes exceeds the " +
                      std::to_string(kMaxAddressSize) + "-byte limit");
  if (!r.has(addr_len)) return truncated("server_welcome", frame.size(), 2 + addr_len, true);
  ServerWelcome w;
  w.observed_address = r.text(addr_len);
  if (!printable_ascii(w.observed_address)) return make_error("server_welcome address is not printable ASCII");
  w.info = r.text(r.remaining());
  if (w.info.size() > kMaxWelcomeInfoSize)
    return make_error("server_welcome info of " + std::to_string(w.info.size()) + " bytes exceeds the " +
                      std::to_string(kMaxWelcomeInfoSize) + "-byte limit");
  if (!is_json_object(w.info)) return make_error("server_welcome info is not a JSON object");
  return Frame{w};
}

Result<Frame> decode_text(FrameType type, ByteView frame, size_t min, size_t max) {
  std::string_view what = frame_type_name(type);
  std::string_view text = as_chars(frame.subspan(1));
  if (text.size() < min) return truncated(what, frame.size(), 1 + min, true);
  if (text.size() > max)
    return make_error(std::string(what) + " text of " + std::to_string(text.size()) + " bytes exceeds the " +
                      std::to_string(max) + "-byte limit");
  if (!valid_utf8(text)) return make_error(std::string(what) + " text is not valid UTF-8");
  if (type == FrameType::error) return Frame{ErrorFrame{text}};
  if (!is_json_object(text)) return make_error("control payload is not a JSON object");
  return Frame{Control{text}};
}

}  // namespace

FrameType frame_type(const Frame& frame) {
  struct Visitor {
    FrameType operator()(const ServerHello&) const { return FrameType::server_hello; }
    FrameType operator()(const ClientHello&) const { return FrameType::client_hello; }
    FrameType operator()(const ServerWelcome&) const { return FrameType::server_welcome; }
    FrameType operator()(const SendPacket&) const { return FrameType::send_packet; }
    FrameType operator()(const RecvPacket&) const { return FrameType::recv_packet; }
    FrameType operator()(const KeepAlive&) const { return FrameType::keep_alive; }
    FrameType operator()(const Ping&) const { return FrameType::ping; }
    FrameType operator()(const Pong&) const { return FrameType::pong; }
    FrameType operator()(const PeerGone&) const { return FrameType::peer_gone; }
    FrameType operator()(const PeerPresent&) const { return FrameType::peer_present; }
    FrameType operator()(const Restarting&) const { return FrameType::restarting; }
    FrameType operator()(const Control&) const { return FrameType::control; }
    FrameType operator()(const ErrorFrame&) const { return FrameType::error; }
  };
  return std::visit(Visitor{}, frame);
}

std::string_view frame_type_name(FrameType type) {
  switch (type) {
    case FrameType::server_hello: return "server_hello";
    case FrameType::client_hello: return "client_hello";
    case FrameType::server_welcome: return "server_welcome";
    case FrameType::send_packet: return "send_packet";
    case FrameType::recv_packet: return "recv_packet";
    case FrameType::keep_alive: return "keep_alive";
    case FrameType::ping: return "ping";
    case FrameType::pong: return "pong";
    case FrameType::peer_gone: return "peer_gone";
    case FrameType::peer_present: return "peer_present";
    case FrameType::restarting: return "restarting";
    case FrameType::control: return "control";
    case FrameType::error: return "error";
  }
  return "unknown";
}

std::string_view peer_gone_reason_name(PeerGoneReason reason) {
  switch (reason) {
    case PeerGoneReason::disconnected: return "disconnected";
    case PeerGoneReason::not_connected: return "not_connected";
    case PeerGoneReason::not_allowed: return "not_allowed";
  }
  return "unknown";
}

Result<Frame> decode(ByteView frame) {
  if (frame.empty()) return make_error("frame is empty");
  if (frame.size() > kMaxFrameSize)
    return make_error("frame of " + std::to_string(frame.size()) + " bytes exceeds the " +
                      std::to_string(kMaxFrameSize) + "-byte limit");
  const uint8_t type_byte = frame[0];
  const auto type = static_cast<FrameType>(type_byte);
  const size_t payload = frame.size() - 1;
  Reader r(frame.subspan(1));
  switch (type) {
    case FrameType::server_hello: {
      constexpr size_t need = 1 + kKeySize + kChallengeSize;
      if (payload != need) return payload < need ? truncated("server_hello", frame.size(), 1 + need)
                                                 : wrong_size("server_hello", frame.size(), 1 + need);
      ServerHello h;
      h.version = r.u8();
      r.array(h.relay_key);
      r.array(h.challenge);
      return Frame{h};
    }
    case FrameType::client_hello: return decode_client_hello(frame);
    case FrameType::server_welcome: return decode_welcome(frame);
    case FrameType::send_packet:
    case FrameType::recv_packet: return decode_packet(type, frame);
    case FrameType::keep_alive:
      if (payload != 0) return wrong_size("keep_alive", frame.size(), 1);
      return Frame{KeepAlive{}};
    case FrameType::ping:
    case FrameType::pong: {
      if (payload != kPingSize) return payload < kPingSize ? truncated(frame_type_name(type), frame.size(), 1 + kPingSize)
                                                           : wrong_size(frame_type_name(type), frame.size(), 1 + kPingSize);
      PingData d;
      r.array(d);
      if (type == FrameType::ping) return Frame{Ping{d}};
      return Frame{Pong{d}};
    }
    case FrameType::peer_gone: {
      if (payload < kKeySize + 1) return truncated("peer_gone", frame.size(), 2 + kKeySize, true);
      PeerGone g;
      r.array(g.key);
      uint8_t reason = r.u8();
      if (reason > kPeerGoneReasonMax) return make_error("peer_gone reason " + hex_byte(reason) + " is unknown");
      g.reason = static_cast<PeerGoneReason>(reason);
      g.text = r.text(r.remaining());
      if (g.text.size() > kMaxReasonSize)
        return make_error("peer_gone text of " + std::to_string(g.text.size()) + " bytes exceeds the " +
                          std::to_string(kMaxReasonSize) + "-byte limit");
      if (!valid_utf8(g.text)) return make_error("peer_gone text is not valid UTF-8");
      return Frame{g};
    }
    case FrameType::peer_present: {
      if (payload != kKeySize) return payload < kKeySize ? truncated("peer_present", frame.size(), 1 + kKeySize)
                                                         : wrong_size("peer_present", frame.size(), 1 + kKeySize);
      PeerPresent p;
      r.array(p.key);
      return Frame{p};
    }
    case FrameType::restarting: {
      if (payload != 8) return payload < 8 ? truncated("restarting", frame.size(), 9)
                                           : wrong_size("restarting", frame.size(), 9);
      Restarting x;
      x.reconnect_in_ms = r.u32();
      x.try_for_ms = r.u32();
      return Frame{x};
    }
    case FrameType::control: return decode_text(type, frame, 2, kMaxControlSize);
    case FrameType::error: return decode_text(type, frame, 1, kMaxReasonSize);
  }
  return make_error("frame type " + hex_byte(type_byte) + " is unknown");
}

size_t encoded_size(const Frame& frame) {
  struct Visitor {
    size_t operator()(const ServerHello&) const { return 1 + 1 + kKeySize + kChallengeSize; }
    size_t operator()(const ClientHello& h) const {
      return 1 + 1 + kKeySize + kProofSize + 2 + h.token.size() + h.meta.size();
    }
    size_t operator()(const ServerWelcome& w) const { return 1 + 1 + w.observed_address.size() + w.info.size(); }
    size_t operator()(const SendPacket& p) const { return kPacketHeaderSize + p.packet.size(); }
    size_t operator()(const RecvPacket& p) const { return kPacketHeaderSize + p.packet.size(); }
    size_t operator()(const KeepAlive&) const { return 1; }
    size_t operator()(const Ping&) const { return 1 + kPingSize; }
    size_t operator()(const Pong&) const { return 1 + kPingSize; }
    size_t operator()(const PeerGone& g) const { return 1 + kKeySize + 1 + g.text.size(); }
    size_t operator()(const PeerPresent&) const { return 1 + kKeySize; }
    size_t operator()(const Restarting&) const { return 1 + 8; }
    size_t operator()(const Control& c) const { return 1 + c.json.size(); }
    size_t operator()(const ErrorFrame& e) const { return 1 + e.text.size(); }
  };
  return std::visit(Visitor{}, frame);
}

namespace {

class Writer {
 public:
  explicit Writer(uint8_t* p) : p_(p) {}
  void u8(uint8_t v) { *p_++ = v; }
  void u16(uint16_t v) { store_be16(p_, v); p_ += 2; }
  void u32(uint32_t v) { store_be32(p_, v); p_ += 4; }
  void bytes(ByteView b) {
    if (!b.empty()) std::memcpy(p_, b.data(), b.size());
    p_ += b.size();
  }
  void text(std::string_view s) { bytes(as_bytes(s)); }

 private:
  uint8_t* p_;
};

}  // namespace

Bytes encode(const Frame& frame, size_t headroom) {
  Bytes out(headroom + encoded_size(frame));
  encode_into(frame, out.data() + headroom);
  return out;
}

void encode_into(const Frame& frame, uint8_t* out) {
  Writer w(out);
  w.u8(static_cast<uint8_t>(frame_type(frame)));
  struct Visitor {
    Writer& w;
    void operator()(const ServerHello& h) const { w.u8(h.version); w.bytes(h.relay_key); w.bytes(h.challenge); }
    void operator()(const ClientHello& h) const {
      w.u8(h.version);
      w.bytes(h.peer_key);
      w.bytes(h.proof);
      w.u16(static_cast<uint16_t>(h.token.size()));
      w.text(h.token);
      w.text(h.meta);
    }
    void operator()(const ServerWelcome& x) const {
      w.u8(static_cast<uint8_t>(x.observed_address.size()));
      w.text(x.observed_address);
      w.text(x.info);
    }
    void operator()(const SendPacket& p) const { w.bytes(p.dst); w.u8(p.flags); w.bytes(p.packet); }
    void operator()(const RecvPacket& p) const { w.bytes(p.src); w.u8(p.flags); w.bytes(p.packet); }
    void operator()(const KeepAlive&) const {}
    void operator()(const Ping& p) const { w.bytes(p.data); }
    void operator()(const Pong& p) const { w.bytes(p.data); }
    void operator()(const PeerGone& g) const { w.bytes(g.key); w.u8(static_cast<uint8_t>(g.reason)); w.text(g.text); }
    void operator()(const PeerPresent& p) const { w.bytes(p.key); }
    void operator()(const Restarting& x) const { w.u32(x.reconnect_in_ms); w.u32(x.try_for_ms); }
    void operator()(const Control& c) const { w.text(c.json); }
    void operator()(const ErrorFrame& e) const { w.text(e.text); }
  };
  std::visit(Visitor{w}, frame);
}

void rewrite_send_as_recv(MutableByteView frame, const PeerKey& src) {
  frame[0] = static_cast<uint8_t>(FrameType::recv_packet);
  std::memcpy(frame.data() + 1, src.data(), kKeySize);
}

}  // namespace airlock::relay
