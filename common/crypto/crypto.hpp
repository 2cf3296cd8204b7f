// The cryptographic primitives Airlock uses, all on OpenSSL 3 libcrypto.
//
// WireGuard's construction (Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s) needs:
//   DH      X25519 (RFC 7748), clamped, all-zero shared secret rejected
//   AEAD    ChaCha20-Poly1305 (RFC 8439), 96-bit nonce = 32 zero bits || 64-bit LE counter
//   XAEAD   XChaCha20-Poly1305 (cookie replies); HChaCha20 is the one piece OpenSSL lacks
//   HASH    BLAKE2s-256 (RFC 7693)
//   MAC     keyed BLAKE2s with a 16-byte digest (digest length in the parameter block)
//   HMAC    HMAC-BLAKE2s-256, and the Noise KDF1/KDF2/KDF3 built from it
// Tokens use Ed25519 (RFC 8032). Keys are exchanged in WireGuard's base64 form.
#pragma once

#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/util/bytes.hpp"
#include "common/util/result.hpp"

namespace airlock::crypto {

constexpr size_t kKeySize = 32;        // X25519 keys, symmetric keys, hashes
constexpr size_t kAeadTagSize = 16;    // Poly1305 tag
constexpr size_t kMacSize = 16;        // keyed BLAKE2s digest used for mac1/mac2
constexpr size_t kXNonceSize = 24;     // XChaCha20-Poly1305 nonce
constexpr size_t kEd25519SignatureSize = 64;

using Key = ByteArray<kKeySize>;  // public keys, hashes, chaining keys that need not be secret

// Wipes memory so that key material does not outlive its use (OPENSSL_cleanse).
void wipe(void* data, size_t size);
template <size_t N>
void wipe(ByteArray<N>& a) { wipe(a.data(), a.size()); }

// Constant-time equality. Different lengths compare unequal (length is not secret).
bool equal_ct(ByteView a, ByteView b);

// A 32-byte secret (private key, chaining key, symmetric key) that wipes itself on destruction.
struct SecretKey {
  Key bytes{};
  SecretKey() = default;
  explicit SecretKey(const Key& k) : bytes(k) {}
  SecretKey(const SecretKey&) = default;
  SecretKey& operator=(const SecretKey&) = default;
  ~SecretKey() { wipe(bytes); }
  uint8_t* data() { return bytes.data(); }
  const uint8_t* data() const { return bytes.data(); }
  static constexpr size_t size() { return kKeySize; }
  operator ByteView() const { return {bytes.data(), bytes.size()}; }
};

// --- randomness (OpenSSL's CSPRNG) -----------------------------------------------------------
void random_bytes(MutableByteView out);
uint32_t random_u32();
uint64_t random_u64();

// --- BLAKE2s ----------------------------------------------------------------------------------
// HASH(a || b || ...), BLAKE2s-256.
Key blake2s256(std::initializer_list<ByteView> parts);
inline Key blake2s256(ByteView data) { return blake2s256({data}); }
// Keyed BLAKE2s (key up to 32 bytes) with a digest of out_len bytes (1..32) set in the parameter
// block — not a truncation of the 256-bit digest. An empty key is allowed only with out_len 32
// (plain BLAKE2s-256: OpenSSL 3.0 cannot vary the unkeyed digest length); other misuse aborts.
Bytes blake2s_keyed(ByteView key, ByteView data, size_t out_len);
// MAC(key, data) as WireGuard's mac1/mac2: keyed BLAKE2s, 16-byte digest.
ByteArray<kMacSize> mac16(ByteView key, ByteView data);
// HMAC-BLAKE2s-256.
Key hmac_blake2s(ByteView key, ByteView data);

// Noise KDFn(key, input): n outputs of 32 bytes.
void kdf1(ByteView key, ByteView input, SecretKey& t1);
void kdf2(ByteView key, ByteView input, SecretKey& t1, SecretKey& t2);
void kdf3(ByteView key, ByteView input, SecretKey& t1, SecretKey& t2, SecretKey& t3);

// --- X25519 -----------------------------------------------------------------------------------
// A fresh private key, clamped as RFC 7748 says.
SecretKey x25519_generate();
void x25519_clamp(Key& private_key);
Key x25519_public(const SecretKey& private_key);
// DH(private, public). Fails when the shared secret is all zero (a low-order public key).
Result<SecretKey> x25519(const SecretKey& private_key, const Key& public_key);

// --- ChaCha20-Poly1305 ------------------------------------------------------------------------
// A ChaCha20-Poly1305 key with its OpenSSL contexts, created once and reused for every message
// (a transport keypair seals and opens millions of messages with one of these).
class ChaChaPoly {
 public:
  explicit ChaChaPoly(const SecretKey& key);
  ~ChaChaPoly();
  ChaChaPoly(const ChaChaPoly&) = delete;
  ChaChaPoly& operator=(const ChaChaPoly&) = delete;

  // out must hold plaintext.size() + 16 bytes; out may alias plaintext exactly (in place).
  void seal(uint64_t counter, ByteView plaintext, ByteView aad, uint8_t* out);
  // Seals plaintext followed by `zero_padding` zero bytes (WireGuard pads transport payloads to
  // 16), reading plaintext where it lies: out holds plaintext.size() + zero_padding + 16 bytes
  // and must not overlap plaintext.
  void seal_padded(uint64_t counter, ByteView plaintext, size_t zero_padding, uint8_t* out);
  // out must hold ciphertext.size() - 16 bytes. False if the tag does not verify (out is then
  // wiped) or the ciphertext is shorter than a tag.
  [[nodiscard]] bool open(uint64_t counter, ByteView ciphertext, ByteView aad, uint8_t* out);

 private:
  struct Contexts;
  std::unique_ptr<Contexts> ctx_;
};

// One-shot forms for the handshake (a key used for one message).
Bytes aead_seal(const SecretKey& key, uint64_t counter, ByteView plaintext, ByteView aad);
std::optional<Bytes> aead_open(const SecretKey& key, uint64_t counter, ByteView ciphertext, ByteView aad);

// The same AEAD with an explicit 96-bit nonce, as RFC 8439 defines it (test vectors, XChaCha).
constexpr size_t kNonceSize = 12;
Bytes aead_seal_nonce12(const SecretKey& key, const ByteArray<kNonceSize>& nonce, ByteView plaintext, ByteView aad);
std::optional<Bytes> aead_open_nonce12(const SecretKey& key, const ByteArray<kNonceSize>& nonce,
                                       ByteView ciphertext, ByteView aad);

// HChaCha20(key, 16-byte nonce) -> 32-byte subkey (draft-irtf-cfrg-xchacha §2.2).
Key hchacha20(const SecretKey& key, const ByteArray<16>& nonce);
// XChaCha20-Poly1305 with a 24-byte nonce.
Bytes xaead_seal(const SecretKey& key, const ByteArray<kXNonceSize>& nonce, ByteView plaintext, ByteView aad);
std::optional<Bytes> xaead_open(const SecretKey& key, const ByteArray<kXNonceSize>& nonce, ByteView ciphertext,
                                ByteView aad);

// --- Ed25519 (tokens) -------------------------------------------------------------------------
SecretKey ed25519_generate();  // the 32-byte seed
Key ed25519_public(const SecretKey& seed);
ByteArray<kEd25519SignatureSize> ed25519_sign(const SecretKey& seed, ByteView message);
bool ed25519_verify(const Key& public_key, ByteView message, ByteView signature);

// --- encodings --------------------------------------------------------------------------------
std::string base64_encode(ByteView data);     // standard alphabet, padded
std::string base64url_encode(ByteView data);  // URL alphabet, no padding (tokens)
// Strict decoders: wrong alphabet, wrong padding, non-canonical trailing bits or whitespace fail.
Result<Bytes> base64_decode(std::string_view text);
Result<Bytes> base64url_decode(std::string_view text);

// WireGuard's key form: 32 bytes as 44 characters of padded base64 (`wg genkey`, `wg pubkey`).
std::string key_to_base64(ByteView key32);
Result<Key> key_from_base64(std::string_view text);

}  // namespace airlock::crypto
