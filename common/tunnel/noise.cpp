#include "common/tunnel/noise.hpp"

#include <algorithm>
#include <cstring>

#include "common/tunnel/messages.hpp"

namespace airlock::tunnel::noise {

using namespace airlock::crypto;

Protocol wireguard_protocol() { return {as_bytes(CONSTRUCTION), as_bytes(IDENTIFIER)}; }

StaticKeypair::StaticKeypair(const SecretKey& key) : private_key(key), public_key(x25519_public(key)) {}

// --- Noise operations ----------------------------------------------------------------------------

void mix_hash(Key& h, ByteView data) { h = blake2s256({h, data}); }

void mix_key(SecretKey& ck, ByteView input) {
  SecretKey next;
  kdf1(ck, input, next);
  ck = next;
}

bool mix_dh(SecretKey& ck, SecretKey& k, const SecretKey& private_key, const Key& public_key) {
  auto shared = x25519(private_key, public_key);
  if (!shared) return false;
  SecretKey next;
  kdf2(ck, *shared, next, k);
  ck = next;
  return true;
}

void mix_key_and_hash(SecretKey& ck, Key& h, SecretKey& k, const SecretKey& psk) {
  SecretKey next, tau;
  kdf3(ck, psk, next, tau, k);
  ck = next;
  mix_hash(h, tau);
}

void encrypt_and_hash(Key& h, const SecretKey& k, ByteView plaintext, uint8_t* out) {
  Bytes sealed = aead_seal(k, 0, plaintext, h);
  std::memcpy(out, sealed.data(), sealed.size());
  mix_hash(h, sealed);
}

bool decrypt_and_hash(Key& h, const SecretKey& k, ByteView ciphertext, uint8_t* out) {
  auto opened = aead_open(k, 0, ciphertext, h);
  if (!opened) return false;
  if (!opened->empty()) std::memcpy(out, opened->data(), opened->size());
  wipe(opened->data(), opened->size());
  mix_hash(h, ciphertext);
  return true;
}

// --- the pattern ---------------------------------------------------------------------------------

void initialize(HandshakeState& hs, const Protocol& protocol, const Key& responder_static_public) {
  if (protocol.name.size() <= kKeySize) {
    hs.hash.fill(0);
    std::copy(protocol.name.begin(), protocol.name.end(), hs.hash.begin());
  } else {
    hs.hash = blake2s256(protocol.name);
  }
  hs.chaining_key = SecretKey(hs.hash);
  mix_hash(hs.hash, protocol.prologue);
  mix_hash(hs.hash, responder_static_public);
}

bool write_message_1(HandshakeState& hs, const StaticKeypair& local, const SecretKey& ephemeral, ByteView payload,
                     uint8_t* out) {
  SecretKey k;
  // e
  hs.ephemeral_private = ephemeral;
  hs.ephemeral_public = x25519_public(ephemeral);
  std::memcpy(out, hs.ephemeral_public.data(), DH_SIZE);
  mix_hash(hs.hash, hs.ephemeral_public);
  mix_key(hs.chaining_key, hs.ephemeral_public);
  // es
  if (!mix_dh(hs.chaining_key, k, hs.ephemeral_private, hs.remote_static)) return false;
  // s
  encrypt_and_hash(hs.hash, k, local.public_key, out + DH_SIZE);
  // ss
  if (!mix_dh(hs.chaining_key, k, local.private_key, hs.remote_static)) return false;
  // {payload}
  encrypt_and_hash(hs.hash, k, payload, out + DH_SIZE + DH_SIZE + TAG_SIZE);
  return true;
}

bool read_message_1(HandshakeState& hs, const StaticKeypair& local, ByteView message, uint8_t* payload_out) {
  if (message_1_payload_size(message.size()) == SIZE_MAX) return false;
  SecretKey k;
  const uint8_t* p = message.data();
  // e
  std::copy_n(p, DH_SIZE, hs.remote_ephemeral.begin());
  mix_hash(hs.hash, hs.remote_ephemeral);
  mix_key(hs.chaining_key, hs.remote_ephemeral);
  // es
  if (!mix_dh(hs.chaining_key, k, local.private_key, hs.remote_ephemeral)) return false;
  // s
  if (!decrypt_and_hash(hs.hash, k, message.subspan(DH_SIZE, DH_SIZE + TAG_SIZE), hs.remote_static.data()))
    return false;
  // ss
  if (!mix_dh(hs.chaining_key, k, local.private_key, hs.remote_static)) return false;
  // {payload}
  return decrypt_and_hash(hs.hash, k, message.subspan(DH_SIZE + DH_SIZE + TAG_SIZE), payload_out);
}

bool write_message_2(HandshakeState& hs, const SecretKey& ephemeral, const SecretKey& psk, ByteView payload,
                     uint8_t* out) {
  SecretKey k;
  // e
  hs.ephemeral_private = ephemeral;
  hs.ephemeral_public = x25519_public(ephemeral);
  std::memcpy(out, hs.ephemeral_public.data(), DH_SIZE);
  mix_hash(hs.hash, hs.ephemeral_public);
  mix_key(hs.chaining_key, hs.ephemeral_public);
  // ee
  if (!mix_dh(hs.chaining_key, k, hs.ephemeral_private, hs.remote_ephemeral)) return false;
  // se
  if (!mix_dh(hs.chaining_key, k, hs.ephemeral_private, hs.remote_static)) return false;
  // psk
  mix_key_and_hash(hs.chaining_key, hs.hash, k, psk);
  // {payload}
  encrypt_and_hash(hs.hash, k, payload, out + DH_SIZE);
  return true;
}

bool read_message_2(HandshakeState& hs, const StaticKeypair& local, const SecretKey& psk, ByteView message,
                    uint8_t* payload_out) {
  if (message_2_payload_size(message.size()) == SIZE_MAX) return false;
  SecretKey k;
  // e
  std::copy_n(message.data(), DH_SIZE, hs.remote_ephemeral.begin());
  mix_hash(hs.hash, hs.remote_ephemeral);
  mix_key(hs.chaining_key, hs.remote_ephemeral);
  // ee
  if (!mix_dh(hs.chaining_key, k, hs.ephemeral_private, hs.remote_ephemeral)) return false;
  // se
  if (!mix_dh(hs.chaining_key, k, local.private_key, hs.remote_ephemeral)) return false;
  // psk
  mix_key_and_hash(hs.chaining_key, hs.hash, k, psk);
  // {payload}
  return decrypt_and_hash(hs.hash, k, message.subspan(DH_SIZE), payload_out);
}

void split(const HandshakeState& hs, SecretKey& initiator_to_responder, SecretKey& responder_to_initiator) {
  kdf2(hs.chaining_key, ByteView{}, initiator_to_responder, responder_to_initiator);
}

}  // namespace airlock::tunnel::noise
