// WireGuard's constants and the four message layouts, in one place, before any code that uses them.
// Names are the WireGuard paper's (§5.4, §6); docs/PROTOCOL.md "## Tunnel" mirrors this header.
//
// Every message starts with a little-endian u32 whose low byte is the type and whose three upper
// bytes are reserved zero; all integers are little-endian.
//
//   1 handshake initiation, 148 bytes
//     type u8 = 1 | reserved [3] = 0 | sender u32 | ephemeral [32] | encrypted_static [32+16]
//     | encrypted_timestamp [12+16] | mac1 [16] | mac2 [16]
//   2 handshake response, 92 bytes
//     type u8 = 2 | reserved [3] = 0 | sender u32 | receiver u32 | ephemeral [32]
//     | encrypted_nothing [0+16] | mac1 [16] | mac2 [16]
//   3 cookie reply, 64 bytes
//     type u8 = 3 | reserved [3] = 0 | receiver u32 | nonce [24] | encrypted_cookie [16+16]
//   4 transport data, 32 bytes or more
//     type u8 = 4 | reserved [3] = 0 | receiver u32 | counter u64 | encrypted_packet [n+16]
//     (plaintext zero-padded to a multiple of 16; an empty plaintext is a keepalive)
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "common/crypto/crypto.hpp"
#include "common/util/bytes.hpp"

namespace airlock::tunnel {

using crypto::Key;
using Duration = std::chrono::nanoseconds;
using TimePoint = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

// --- protocol names (Noise prologue and labels) ------------------------------------------------
inline constexpr std::string_view CONSTRUCTION = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
inline constexpr std::string_view IDENTIFIER = "WireGuard v1 zx2c4 Jason@zx2c4.com";
inline constexpr std::string_view LABEL_MAC1 = "mac1----";
inline constexpr std::string_view LABEL_COOKIE = "cookie--";

// --- message types and sizes -------------------------------------------------------------------
enum class MessageType : uint8_t {
  handshake_initiation = 1,
  handshake_response = 2,
  cookie_reply = 3,
  transport_data = 4,
};

inline constexpr size_t TAI64N_SIZE = 12;
inline constexpr size_t AEAD_TAG_SIZE = crypto::kAeadTagSize;
inline constexpr size_t MAC_SIZE = crypto::kMacSize;
inline constexpr size_t COOKIE_SIZE = 16;
inline constexpr size_t COOKIE_NONCE_SIZE = crypto::kXNonceSize;

inline constexpr size_t HANDSHAKE_INITIATION_SIZE = 148;
inline constexpr size_t HANDSHAKE_RESPONSE_SIZE = 92;
inline constexpr size_t COOKIE_REPLY_SIZE = 64;
inline constexpr size_t TRANSPORT_HEADER_SIZE = 16;
inline constexpr size_t TRANSPORT_MIN_SIZE = TRANSPORT_HEADER_SIZE + AEAD_TAG_SIZE;  // a keepalive
inline constexpr size_t TRANSPORT_PADDING = 16;  // plaintext is padded to a multiple of this

// Payloads are opaque byte strings up to 64 KiB: over the relay a transport message is one relay
// packet, not bound by a UDP MTU. Padding never pushes a 64 KiB payload past this bound.
inline constexpr size_t MAX_PAYLOAD_SIZE = 65536;
inline constexpr size_t TRANSPORT_MAX_SIZE = TRANSPORT_HEADER_SIZE + MAX_PAYLOAD_SIZE + AEAD_TAG_SIZE;

// Offsets inside the handshake messages: the Noise message sits contiguously after the indices;
// mac1 covers everything before it, mac2 everything before mac2.
inline constexpr size_t INITIATION_NOISE_OFFSET = 8;    // ephemeral, encrypted_static, timestamp
inline constexpr size_t INITIATION_NOISE_SIZE = 32 + 48 + 28;
inline constexpr size_t RESPONSE_NOISE_OFFSET = 12;     // ephemeral, encrypted_nothing
inline constexpr size_t RESPONSE_NOISE_SIZE = 32 + 16;
inline constexpr size_t INITIATION_MAC1_OFFSET = HANDSHAKE_INITIATION_SIZE - 2 * MAC_SIZE;  // 116
inline constexpr size_t RESPONSE_MAC1_OFFSET = HANDSHAKE_RESPONSE_SIZE - 2 * MAC_SIZE;      // 60

// --- limits and timers (WireGuard paper §6.1, and the Linux implementation's values) ------------
inline constexpr uint64_t REKEY_AFTER_MESSAGES = 1ull << 60;
inline constexpr uint64_t REJECT_AFTER_MESSAGES = UINT64_MAX - (1ull << 13);  // 2^64 - 2^13 - 1
inline constexpr Duration REKEY_AFTER_TIME = std::chrono::seconds(120);
inline constexpr Duration REJECT_AFTER_TIME = std::chrono::seconds(180);
inline constexpr Duration REKEY_ATTEMPT_TIME = std::chrono::seconds(90);
inline constexpr Duration REKEY_TIMEOUT = std::chrono::seconds(5);
inline constexpr Duration REKEY_TIMEOUT_JITTER_MAX = std::chrono::milliseconds(333);
inline constexpr Duration KEEPALIVE_TIMEOUT = std::chrono::seconds(10);
inline constexpr Duration COOKIE_REFRESH_TIME = std::chrono::seconds(120);
// A cookie is not used for mac2 in its last seconds, so that it is not stale when it arrives.
inline constexpr Duration COOKIE_SECRET_LATENCY = std::chrono::seconds(5);
// Retransmissions before a handshake is given up (the first one plus these, as Linux counts).
inline constexpr unsigned MAX_TIMER_HANDSHAKES = REKEY_ATTEMPT_TIME / REKEY_TIMEOUT;  // 18
// Keys are wiped when no new session came for this long.
inline constexpr Duration ZERO_KEY_MATERIAL_TIME = 3 * REJECT_AFTER_TIME;  // 540 s
// A responder consumes at most this many initiations per second from one peer.
inline constexpr unsigned INITIATIONS_PER_SECOND = 50;
inline constexpr Duration INITIATION_MIN_INTERVAL = Duration(std::chrono::seconds(1)) / INITIATIONS_PER_SECOND;
// Under load, handshake messages with a valid mac2 are still rate limited per source.
inline constexpr unsigned HANDSHAKES_PER_SECOND_PER_SOURCE = 20;
inline constexpr unsigned HANDSHAKES_BURSTABLE_PER_SOURCE = 5;
// Payloads waiting for a session, per peer; the oldest is dropped beyond this.
inline constexpr size_t MAX_STAGED_PACKETS = 128;

// --- layouts -------------------------------------------------------------------------------------
struct HandshakeInitiation {
  uint32_t sender = 0;
  ByteArray<32> ephemeral{};
  ByteArray<32 + AEAD_TAG_SIZE> encrypted_static{};
  ByteArray<TAI64N_SIZE + AEAD_TAG_SIZE> encrypted_timestamp{};
  ByteArray<MAC_SIZE> mac1{};
  ByteArray<MAC_SIZE> mac2{};
};

struct HandshakeResponse {
  uint32_t sender = 0;
  uint32_t receiver = 0;
  ByteArray<32> ephemeral{};
  ByteArray<AEAD_TAG_SIZE> encrypted_nothing{};
  ByteArray<MAC_SIZE> mac1{};
  ByteArray<MAC_SIZE> mac2{};
};

struct CookieReply {
  uint32_t receiver = 0;
  ByteArray<COOKIE_NONCE_SIZE> nonce{};
  ByteArray<COOKIE_SIZE + AEAD_TAG_SIZE> encrypted_cookie{};
};

// A transport message's header; the ciphertext is a view into the parsed datagram.
struct TransportHeader {
  uint32_t receiver = 0;
  uint64_t counter = 0;
};

// The type of a datagram when its length and reserved bytes are right for that type, else nothing.
std::optional<MessageType> message_type(ByteView datagram);

// Parsers accept exactly the layout above (type, reserved zero bytes, exact length) and nothing
// else; they never throw.
std::optional<HandshakeInitiation> parse_handshake_initiation(ByteView datagram);
std::optional<HandshakeResponse> parse_handshake_response(ByteView datagram);
std::optional<CookieReply> parse_cookie_reply(ByteView datagram);
std::optional<TransportHeader> parse_transport_header(ByteView datagram);

void serialize(const HandshakeInitiation& m, ByteArray<HANDSHAKE_INITIATION_SIZE>& out);
void serialize(const HandshakeResponse& m, ByteArray<HANDSHAKE_RESPONSE_SIZE>& out);
void serialize(const CookieReply& m, ByteArray<COOKIE_REPLY_SIZE>& out);
// Writes the 16-byte header at out (which must hold TRANSPORT_HEADER_SIZE bytes).
void write_transport_header(uint8_t* out, const TransportHeader& h);

// Plaintext length after WireGuard's zero padding to a multiple of 16.
constexpr size_t padded_size(size_t n) { return (n + TRANSPORT_PADDING - 1) / TRANSPORT_PADDING * TRANSPORT_PADDING; }

}  // namespace airlock::tunnel
