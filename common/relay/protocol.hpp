// The relay link (layer 1): every frame type with its exact layout, the limits beside them, and
// a sans-I/O codec. docs/PROTOCOL.md "## Relay link" says the same in prose; keep them in step.
//
// A relay link is one WebSocket (RFC 6455) connection, subprotocol "airlock-relay.v1", from a
// peer (agent, CLI, gateway) to the relay. One binary WebSocket message is one frame:
//
//     [type u8][payload ...]
//
// Integers are big-endian. Keys are 32-byte X25519 public keys; a peer is known by its key.
// Text is UTF-8; JSON is a single object. Every frame has an exact layout: a frame that is
// shorter, longer, or carries a value outside the ranges below is malformed, and the relay closes
// the link that sent it (after an error frame saying why).
//
// The handshake:
//
//     relay -> peer   server hello    (version, relay key, 32-byte random challenge)
//     peer -> relay   client hello    (version, peer key, proof, token, meta)
//     relay -> peer   server welcome  (observed source address, info JSON)   or error + close
//
// proof = HMAC-BLAKE2s(key = BLAKE2s(kProofLabel || X25519(client_private, relay_public)),
//                      message = challenge || client_public)
// The relay recomputes it with X25519(relay_private, client_public): only the holder of the
// private key for peer key can produce it, and the challenge makes it useless to replay.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "common/crypto/crypto.hpp"
#include "common/util/bytes.hpp"
#include "common/util/result.hpp"

namespace airlock::relay {

using namespace std::chrono_literals;

constexpr std::string_view kSubprotocol = "airlock-relay.v1";
constexpr uint8_t kProtocolVersion = 1;

using PeerKey = crypto::Key;  // a peer's X25519 public key: its address on the relay
using Challenge = ByteArray<32>;
using Proof = crypto::Key;
using PingData = ByteArray<8>;

constexpr size_t kKeySize = 32;
constexpr size_t kChallengeSize = 32;
constexpr size_t kProofSize = 32;
constexpr size_t kPingSize = 8;

// ---- frame types -------------------------------------------------------------------------------
enum class FrameType : uint8_t {
  // relay -> peer, the first frame on every link.
  //   [version u8][relay key 32][challenge 32]                                   = 65 bytes
  server_hello = 0x01,
  // peer -> relay, the answer to server hello; nothing else is accepted before it.
  //   [version u8][peer key 32][proof 32][token_len u16][token][meta]
  //   token: 1..kMaxTokenSize bytes of printable ASCII (the control-plane token)
  //   meta:  the rest, 0..kMaxMetaSize bytes: empty or a JSON object {"program":..,"version":..}
  client_hello = 0x02,
  // relay -> peer, hello accepted; the link is up.
  //   [addr_len u8][observed address][info]
  //   observed address: 1..kMaxAddressSize bytes of text, the peer's source "ip:port" as seen
  //   info: the rest, a JSON object (relay version, limits, the peer's identity)
  server_welcome = 0x03,
  // peer -> relay: deliver a packet to the peer with key dst.
  //   [dst key 32][flags u8][packet 1..kMaxPacketSize]
  send_packet = 0x04,
  // relay -> peer: a packet from the peer with key src.
  //   [src key 32][flags u8][packet 1..kMaxPacketSize]
  // Same size as the send_packet it came from: the relay rewrites type and key in place.
  recv_packet = 0x05,
  // either way, nothing else to say: keeps NAT and load-balancer state alive.
  //   []                                                                          = 0 bytes
  keep_alive = 0x06,
  // either way: please answer with a pong carrying the same 8 bytes.
  //   [data 8]
  ping = 0x07,
  // the answer to a ping.
  //   [data 8]
  pong = 0x08,
  // relay -> peer: packets for key cannot be delivered (the peer left, is not connected, or this
  // link may not reach it). The relay never drops a packet for a connected peer silently.
  //   [key 32][reason u8 = PeerGoneReason][text 0..kMaxReasonSize]
  peer_gone = 0x09,
  // relay -> peer: key is connected again (it had gone while the two were paired).
  //   [key 32]
  peer_present = 0x0a,
  // relay -> peer: the relay is shutting down; reconnect in reconnect_in ms, keep trying for
  // try_for ms.
  //   [reconnect_in_ms u32][try_for_ms u32]                                       = 8 bytes
  restarting = 0x0b,
  // either way: coordination, one JSON object (dial, dial_ok, dial_error, peer_incoming, ...).
  //   [JSON object 2..kMaxControlSize]
  control = 0x0c,
  // relay -> peer, sent just before the relay closes the link: why.
  //   [text 1..kMaxReasonSize]
  error = 0x0d,
};

// Packet flags (send_packet, recv_packet).
constexpr uint8_t kFlagInteractive = 0x01;  // serve ahead of bulk (keystrokes, small RPCs)
constexpr uint8_t kFlagsKnown = kFlagInteractive;  // every other bit must be zero

enum class PeerGoneReason : uint8_t {
  disconnected = 0x00,   // the peer's link closed
  not_connected = 0x01,  // no peer with that key is connected to this relay
  not_allowed = 0x02,    // this link has no dial grant that reaches that key
};
constexpr uint8_t kPeerGoneReasonMax = 0x02;

// ---- limits ------------------------------------------------------------------------------------
constexpr size_t kMaxPacketSize = 64 * 1024;                        // bytes in one packet
constexpr size_t kPacketHeaderSize = 1 + kKeySize + 1;              // type, key, flags
constexpr size_t kMaxFrameSize = kPacketHeaderSize + kMaxPacketSize;  // the largest frame: 65570
constexpr size_t kMaxTokenSize = 4096;
constexpr size_t kMaxMetaSize = 1024;
constexpr size_t kMaxAddressSize = 64;
constexpr size_t kMaxWelcomeInfoSize = 4096;
constexpr size_t kMaxControlSize = 16 * 1024;
constexpr size_t kMaxReasonSize = 1024;

// Defaults for the relay's limits (each is a flag of airlock-relay).
constexpr auto kKeepAliveInterval = 60s;   // a keep-alive after this long with nothing sent
constexpr auto kIdleTimeout = 150s;        // nothing received for this long: the link is dead
constexpr auto kHelloDeadline = 10s;       // the client hello must arrive within this
constexpr size_t kQueueHighWatermark = 1024 * 1024;  // per destination: pause the senders above
constexpr size_t kQueueLowWatermark = 256 * 1024;    //   ... and resume them below this
constexpr size_t kQueueHardCap = 8 * 1024 * 1024;    // a sender that pushes past this is closed
constexpr size_t kControlQueueCap = 256 * 1024;      // frames the relay itself queued for a peer
constexpr uint64_t kRateBytesPerSecond = 1024ull * 1024 * 1024;  // per peer (8.6 Gbit/s), shaped by pausing
constexpr uint64_t kRateBurstBytes = 16ull * 1024 * 1024;
constexpr double kControlFramesPerSecond = 50;   // control/ping frames; past the burst: closed
constexpr double kControlFramesBurst = 200;
constexpr auto kRestartReconnectIn = 1000ms;     // hint in the restarting frame
constexpr auto kRestartTryFor = 60s;

// ---- frames ------------------------------------------------------------------------------------
// Decoded frames borrow from the bytes they were decoded from (views, not copies).
struct ServerHello {
  uint8_t version = kProtocolVersion;
  PeerKey relay_key{};
  Challenge challenge{};
};
struct ClientHello {
  uint8_t version = kProtocolVersion;
  PeerKey peer_key{};
  Proof proof{};
  std::string_view token;
  std::string_view meta;  // empty or a JSON object
};
struct ServerWelcome {
  std::string_view observed_address;
  std::string_view info;  // JSON object
};
struct SendPacket {
  PeerKey dst{};
  uint8_t flags = 0;
  ByteView packet;
};
struct RecvPacket {
  PeerKey src{};
  uint8_t flags = 0;
  ByteView packet;
};
struct KeepAlive {};
struct Ping {
  PingData data{};
};
struct Pong {
  PingData data{};
};
struct PeerGone {
  PeerKey key{};
  PeerGoneReason reason = PeerGoneReason::disconnected;
  std::string_view text;
};
struct PeerPresent {
  PeerKey key{};
};
struct Restarting {
  uint32_t reconnect_in_ms = 0;
  uint32_t try_for_ms = 0;
};
struct Control {
  std::string_view json;  // a JSON object
};
struct ErrorFrame {
  std::string_view text;
};

using Frame = std::variant<ServerHello, ClientHello, ServerWelcome, SendPacket, RecvPacket, KeepAlive, Ping, Pong,
                           PeerGone, PeerPresent, Restarting, Control, ErrorFrame>;

FrameType frame_type(const Frame& frame);
std::string_view frame_type_name(FrameType type);  // "send_packet", ...
std::string_view peer_gone_reason_name(PeerGoneReason reason);

// Checks everything the layouts above say and returns the frame, or an error naming what is
// wrong: "frame type 0x13 is unknown", "send_packet is truncated: 20 of at least 35 bytes",
// "packet flags 0x02 set reserved bits", "frame of 70000 bytes exceeds the 65570-byte limit".
Result<Frame> decode(ByteView frame);

// The encoded size of a frame; encode() writes exactly this many bytes after headroom.
size_t encoded_size(const Frame& frame);
// Encodes a well-formed frame (the caller keeps to the limits; decode() of the result succeeds).
// headroom zero bytes come first so link code can prepend transport headers without a copy.
Bytes encode(const Frame& frame, size_t headroom = 0);
// The same bytes written to out, which has room for encoded_size(frame) of them.
void encode_into(const Frame& frame, uint8_t* out);

// Rewrites an encoded send_packet frame into the recv_packet the destination receives: same
// size, type byte and key replaced. frame must be a send_packet that decode() accepted.
void rewrite_send_as_recv(MutableByteView frame, const PeerKey& src);

// ---- proof of key possession -----------------------------------------------------------------
constexpr std::string_view kProofLabel = "airlock-relay.v1 proof of key possession";

// The client computes it with (client_private, relay_public); the relay with (relay_private,
// client_public): both sides derive the same X25519 secret. Fails for a low-order public key.
Result<Proof> hello_proof(const crypto::SecretKey& own_private, const PeerKey& their_public,
                          const Challenge& challenge, const PeerKey& client_public);

// Checks the proof in a client hello, in constant time.
Status verify_hello_proof(const crypto::SecretKey& relay_private, const ClientHello& hello,
                          const Challenge& challenge);

}  // namespace airlock::relay
