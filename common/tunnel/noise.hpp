// The Noise handshake pattern WireGuard uses, written generically (protocol name, prologue and
// payloads are parameters) so the same code reproduces Noise's own test vectors and WireGuard:
//
//   Noise_IKpsk2:
//     <- s
//     ...
//     -> e, es, s, ss, {payload}
//     <- e, ee, se, psk, {payload}
//
// WireGuard is this pattern with protocol name CONSTRUCTION, prologue IDENTIFIER, message 1's
// payload the TAI64N timestamp and message 2's payload empty (paper §5.4.2-§5.4.3). Every
// operation is a small function named after the Noise specification (§5): mix_hash, mix_key,
// mix_dh, mix_key_and_hash (the psk token), encrypt_and_hash, decrypt_and_hash, split. With this
// pattern every key k encrypts exactly one message, so the AEAD nonce is always zero.
//
// The ephemeral private key is an argument so tests can inject the vector's keys; the tunnel
// passes a fresh crypto::x25519_generate() one.
#pragma once

#include <cstddef>

#include "common/crypto/crypto.hpp"
#include "common/util/bytes.hpp"

namespace airlock::tunnel::noise {

using crypto::Key;
using crypto::SecretKey;

struct Protocol {
  ByteView name;      // e.g. "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
  ByteView prologue;  // e.g. "WireGuard v1 zx2c4 Jason@zx2c4.com"
};
// WireGuard's: CONSTRUCTION and IDENTIFIER.
Protocol wireguard_protocol();

struct StaticKeypair {
  SecretKey private_key;
  Key public_key{};
  StaticKeypair() = default;
  explicit StaticKeypair(const SecretKey& private_key);  // derives the public key
};

// Both sides' handshake state between messages. Secrets wipe themselves.
struct HandshakeState {
  SecretKey chaining_key;  // ck
  Key hash{};              // h
  SecretKey ephemeral_private;
  Key ephemeral_public{};
  Key remote_ephemeral{};
  Key remote_static{};  // initiator: known beforehand; responder: learned from message 1
  HandshakeState() = default;
  HandshakeState(const HandshakeState&) = default;
  HandshakeState& operator=(const HandshakeState&) = default;
  ~HandshakeState() { crypto::wipe(hash); }
};

constexpr size_t DH_SIZE = 32;
constexpr size_t TAG_SIZE = crypto::kAeadTagSize;
constexpr size_t message_1_size(size_t payload) { return DH_SIZE + (DH_SIZE + TAG_SIZE) + (payload + TAG_SIZE); }
constexpr size_t message_2_size(size_t payload) { return DH_SIZE + (payload + TAG_SIZE); }
// Payload sizes a message of this length carries, or SIZE_MAX when it is too short.
constexpr size_t message_1_payload_size(size_t message) {
  return message < message_1_size(0) ? SIZE_MAX : message - message_1_size(0);
}
constexpr size_t message_2_payload_size(size_t message) {
  return message < message_2_size(0) ? SIZE_MAX : message - message_2_size(0);
}

// h = HASH(protocol name) (or the name zero-padded when it fits), ck = h, MixHash(prologue),
// then the pre-message "<- s": MixHash(responder's static public key). Both sides call this; the
// responder passes its own public key.
void initialize(HandshakeState& hs, const Protocol& protocol, const Key& responder_static_public);

// -> e, es, s, ss, {payload}. out must hold message_1_size(payload.size()) bytes.
// False only when a DH result is zero (a low-order remote static key).
[[nodiscard]] bool write_message_1(HandshakeState& hs, const StaticKeypair& local, const SecretKey& ephemeral,
                                   ByteView payload, uint8_t* out);
// Reads message 1 as responder: sets hs.remote_static to the initiator's key. payload_out must
// hold message_1_payload_size(message.size()) bytes. False if it does not authenticate.
[[nodiscard]] bool read_message_1(HandshakeState& hs, const StaticKeypair& local, ByteView message,
                                  uint8_t* payload_out);

// <- e, ee, se, psk, {payload}. out must hold message_2_size(payload.size()) bytes.
[[nodiscard]] bool write_message_2(HandshakeState& hs, const SecretKey& ephemeral, const SecretKey& psk,
                                   ByteView payload, uint8_t* out);
// Reads message 2 as initiator. payload_out must hold message_2_payload_size(message.size()).
[[nodiscard]] bool read_message_2(HandshakeState& hs, const StaticKeypair& local, const SecretKey& psk,
                                  ByteView message, uint8_t* payload_out);

// The two transport keys: KDF2(ck, empty).
void split(const HandshakeState& hs, SecretKey& initiator_to_responder, SecretKey& responder_to_initiator);

// --- the Noise operations, exposed for tests -----------------------------------------------------
void mix_hash(Key& h, ByteView data);                                     // h = HASH(h || data)
// ck = KDF1(ck, input): the "e" token of a psk pattern mixes the ephemeral key into ck (the k
// Noise would also derive is replaced by the next DH before any use).
void mix_key(SecretKey& ck, ByteView input);
// ck, k = KDF2(ck, DH(private, public)). False when the DH result is all zero.
[[nodiscard]] bool mix_dh(SecretKey& ck, SecretKey& k, const SecretKey& private_key, const Key& public_key);
void mix_key_and_hash(SecretKey& ck, Key& h, SecretKey& k, const SecretKey& psk);  // KDF3, h += tau
void encrypt_and_hash(Key& h, const SecretKey& k, ByteView plaintext, uint8_t* out);  // out: +16 bytes
[[nodiscard]] bool decrypt_and_hash(Key& h, const SecretKey& k, ByteView ciphertext, uint8_t* out);

}  // namespace airlock::tunnel::noise
