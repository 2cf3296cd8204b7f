// Airlock's primitives on OpenSSL 3 libcrypto. Algorithms are fetched once per process and
// per-call contexts are kept per thread, so the hot paths do not allocate or consult the
// provider store. OpenSSL failures on valid input mean a broken library: they abort. Failures
// caused by input (a bad tag, a low-order point, a bad signature) are values, and the OpenSSL
// error queue is cleared so they cannot leak into a later TLS call on the same thread.
#include "common/crypto/crypto.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>

namespace airlock::crypto {
namespace {

[[noreturn]] void fatal(const char* what) {
  std::fprintf(stderr, "airlock: fatal: OpenSSL %s failed; libcrypto is broken or misconfigured\n", what);
  ERR_print_errors_fp(stderr);
  std::abort();
}

void check(int ok, const char* what) {
  if (ok != 1) fatal(what);
}

struct MdDeleter { void operator()(EVP_MD* p) const { EVP_MD_free(p); } };
struct MdCtxDeleter { void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); } };
struct MacDeleter { void operator()(EVP_MAC* p) const { EVP_MAC_free(p); } };
struct MacCtxDeleter { void operator()(EVP_MAC_CTX* p) const { EVP_MAC_CTX_free(p); } };
struct CipherDeleter { void operator()(EVP_CIPHER* p) const { EVP_CIPHER_free(p); } };
struct CipherCtxDeleter { void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); } };
struct PkeyDeleter { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct PkeyCtxDeleter { void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); } };

using MdPtr = std::unique_ptr<EVP_MD, MdDeleter>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;
using MacPtr = std::unique_ptr<EVP_MAC, MacDeleter>;
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, MacCtxDeleter>;
using CipherPtr = std::unique_ptr<EVP_CIPHER, CipherDeleter>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;

template <typename P>
P fetched(typename P::pointer p, const char* name) {
  if (p == nullptr) fatal(name);
  return P(p);
}

// Fetched once: EVP_*_fetch takes a lock and searches the provider store on every call.
const EVP_MD* blake2s_md() {
  static const MdPtr md = fetched<MdPtr>(EVP_MD_fetch(nullptr, "BLAKE2S-256", nullptr), "fetch BLAKE2S-256");
  return md.get();
}
EVP_MAC* blake2s_mac() {
  static const MacPtr mac = fetched<MacPtr>(EVP_MAC_fetch(nullptr, "BLAKE2SMAC", nullptr), "fetch BLAKE2SMAC");
  return mac.get();
}
EVP_MAC* hmac_mac() {
  static const MacPtr mac = fetched<MacPtr>(EVP_MAC_fetch(nullptr, "HMAC", nullptr), "fetch HMAC");
  return mac.get();
}
const EVP_CIPHER* chacha20_poly1305() {
  static const CipherPtr cipher =
      fetched<CipherPtr>(EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr), "fetch ChaCha20-Poly1305");
  return cipher.get();
}

// Per-thread contexts, re-initialised for each use (a key is always passed on init, so nothing
// from the previous use survives).
EVP_MD_CTX* thread_md_ctx() {
  thread_local MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) fatal("EVP_MD_CTX_new");
  return ctx.get();
}
EVP_MAC_CTX* thread_blake2s_mac_ctx() {
  thread_local MacCtxPtr ctx(EVP_MAC_CTX_new(blake2s_mac()));
  if (!ctx) fatal("EVP_MAC_CTX_new(BLAKE2SMAC)");
  return ctx.get();
}
EVP_MAC_CTX* thread_hmac_ctx() {
  thread_local MacCtxPtr ctx = [] {
    MacCtxPtr c(EVP_MAC_CTX_new(hmac_mac()));
    if (!c) fatal("EVP_MAC_CTX_new(HMAC)");
    // The digest is set once; EVP_MAC_init with only a key keeps it.
    char digest[] = "BLAKE2S-256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    check(EVP_MAC_CTX_set_params(c.get(), params), "HMAC set digest BLAKE2S-256");
    return c;
  }();
  return ctx.get();
}

// OpenSSL treats a NULL key as "reuse the previous key"; an empty span may carry a NULL pointer.
const uint8_t* key_pointer(ByteView key) {
  static const uint8_t empty = 0;
  return key.data() != nullptr ? key.data() : &empty;
}

// HMAC-BLAKE2s over the concatenation of parts.
void hmac_parts(ByteView key, std::initializer_list<ByteView> parts, uint8_t out[kKeySize]) {
  EVP_MAC_CTX* ctx = thread_hmac_ctx();
  check(EVP_MAC_init(ctx, key_pointer(key), key.size(), nullptr), "HMAC init");
  for (ByteView part : parts)
    if (!part.empty()) check(EVP_MAC_update(ctx, part.data(), part.size()), "HMAC update");
  size_t len = 0;
  check(EVP_MAC_final(ctx, out, &len, kKeySize), "HMAC final");
  if (len != kKeySize) fatal("HMAC-BLAKE2s output length");
}

int checked_int(size_t n) {
  if (n > static_cast<size_t>(INT_MAX)) fatal("AEAD input larger than INT_MAX");
  return static_cast<int>(n);
}

// RFC 8439 AEAD on a context that already holds the key; only the nonce is set per message.
// Seals plaintext, then `zero_padding` zero bytes (at most 16), as one message.
void seal_on(EVP_CIPHER_CTX* ctx, const uint8_t nonce[kNonceSize], ByteView plaintext, ByteView aad,
             uint8_t* out, size_t zero_padding = 0) {
  static constexpr uint8_t kZeros[16] = {};
  if (zero_padding > sizeof kZeros) fatal("AEAD padding longer than 16 bytes");
  check(EVP_CipherInit_ex2(ctx, nullptr, nullptr, nonce, 1, nullptr), "ChaCha20-Poly1305 set nonce");
  int len = 0;
  if (!aad.empty()) check(EVP_EncryptUpdate(ctx, nullptr, &len, aad.data(), checked_int(aad.size())), "AEAD aad");
  size_t written = 0;
  if (!plaintext.empty()) {
    check(EVP_EncryptUpdate(ctx, out, &len, plaintext.data(), checked_int(plaintext.size())), "AEAD encrypt");
    written += static_cast<size_t>(len);
  }
  if (zero_padding > 0) {
    check(EVP_EncryptUpdate(ctx, out + written, &len, kZeros, checked_int(zero_padding)), "AEAD encrypt padding");
    written += static_cast<size_t>(len);
  }
  check(EVP_EncryptFinal_ex(ctx, out + written, &len), "AEAD encrypt final");
  written += static_cast<size_t>(len);
  if (written != plaintext.size() + zero_padding) fatal("AEAD encrypt length");
  check(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kAeadTagSize, out + written), "AEAD get tag");
}

bool open_on(EVP_CIPHER_CTX* ctx, const uint8_t nonce[kNonceSize], ByteView ciphertext, ByteView aad,
             uint8_t* out) {
  if (ciphertext.size() < kAeadTagSize) return false;
  const size_t text_len = ciphertext.size() - kAeadTagSize;
  // Copy the tag first: out may alias ciphertext and decryption overwrites it.
  uint8_t tag[kAeadTagSize];
  std::copy_n(ciphertext.data() + text_len, kAeadTagSize, tag);
  check(EVP_CipherInit_ex2(ctx, nullptr, nullptr, nonce, 0, nullptr), "ChaCha20-Poly1305 set nonce");
  check(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kAeadTagSize, tag), "AEAD set tag");
  int len = 0;
  if (!aad.empty()) check(EVP_DecryptUpdate(ctx, nullptr, &len, aad.data(), checked_int(aad.size())), "AEAD aad");
  int written = 0;
  if (text_len != 0) {
    check(EVP_DecryptUpdate(ctx, out, &written, ciphertext.data(), checked_int(text_len)), "AEAD decrypt");
  }
  if (EVP_DecryptFinal_ex(ctx, out + written, &len) != 1) {
    ERR_clear_error();
    if (text_len != 0) wipe(out, text_len);
    return false;
  }
  return true;
}

CipherCtxPtr new_aead_ctx(const SecretKey& key, int enc) {
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) fatal("EVP_CIPHER_CTX_new");
  check(EVP_CipherInit_ex2(ctx.get(), chacha20_poly1305(), key.data(), nullptr, enc, nullptr),
        "ChaCha20-Poly1305 set key");
  return ctx;
}

// WireGuard's nonce: 32 zero bits || 64-bit little-endian counter.
ByteArray<kNonceSize> counter_nonce(uint64_t counter) {
  ByteArray<kNonceSize> nonce{};
  store_le64(nonce.data() + 4, counter);
  return nonce;
}

PkeyPtr raw_private(int type, const SecretKey& key) {
  PkeyPtr pkey(EVP_PKEY_new_raw_private_key(type, nullptr, key.data(), kKeySize));
  if (!pkey) fatal("EVP_PKEY_new_raw_private_key");
  return pkey;
}

Key raw_public_of(EVP_PKEY* pkey) {
  Key pub{};
  size_t len = pub.size();
  check(EVP_PKEY_get_raw_public_key(pkey, pub.data(), &len), "EVP_PKEY_get_raw_public_key");
  if (len != kKeySize) fatal("public key length");
  return pub;
}

// ChaCha quarter round and the 20-round core, for HChaCha20 only (OpenSSL does not export it).
inline uint32_t rotl32(uint32_t v, int n) { return (v << n) | (v >> (32 - n)); }
inline void quarter_round(uint32_t& a, uint32_t& b, uint32_t& c, uint32_t& d) {
  a += b; d ^= a; d = rotl32(d, 16);
  c += d; b ^= c; b = rotl32(b, 12);
  a += b; d ^= a; d = rotl32(d, 8);
  c += d; b ^= c; b = rotl32(b, 7);
}

}  // namespace

// --- memory -----------------------------------------------------------------------------------

void wipe(void* data, size_t size) {
  if (data != nullptr && size != 0) OPENSSL_cleanse(data, size);
}

bool equal_ct(ByteView a, ByteView b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// --- randomness -------------------------------------------------------------------------------

void random_bytes(MutableByteView out) {
  size_t done = 0;
  while (done < out.size()) {
    const int chunk = static_cast<int>(std::min<size_t>(out.size() - done, 1 << 20));
    if (RAND_bytes(out.data() + done, chunk) != 1) fatal("RAND_bytes");
    done += static_cast<size_t>(chunk);
  }
}

uint32_t random_u32() {
  uint8_t b[4];
  random_bytes(b);
  return load_le32(b);
}

uint64_t random_u64() {
  uint8_t b[8];
  random_bytes(b);
  return load_le64(b);
}

// --- BLAKE2s ----------------------------------------------------------------------------------

Key blake2s256(std::initializer_list<ByteView> parts) {
  EVP_MD_CTX* ctx = thread_md_ctx();
  check(EVP_DigestInit_ex2(ctx, blake2s_md(), nullptr), "BLAKE2s init");
  for (ByteView part : parts)
    if (!part.empty()) check(EVP_DigestUpdate(ctx, part.data(), part.size()), "BLAKE2s update");
  Key out{};
  unsigned int len = 0;
  check(EVP_DigestFinal_ex(ctx, out.data(), &len), "BLAKE2s final");
  if (len != kKeySize) fatal("BLAKE2s-256 output length");
  return out;
}

Bytes blake2s_keyed(ByteView key, ByteView data, size_t out_len) {
  if (key.size() > kKeySize || out_len < 1 || out_len > kKeySize) {
    std::fprintf(stderr, "airlock: fatal: blake2s_keyed(key %zu bytes, out_len %zu) is outside 0..32 / 1..32\n",
                 key.size(), out_len);
    std::abort();
  }
  if (key.empty()) {
    if (out_len != kKeySize) {
      std::fprintf(stderr, "airlock: fatal: unkeyed BLAKE2s with a %zu-byte digest is not supported\n", out_len);
      std::abort();
    }
    Key h = blake2s256(data);
    return Bytes(h.begin(), h.end());
  }
  EVP_MAC_CTX* ctx = thread_blake2s_mac_ctx();
  // The "size" parameter sets digest_length in BLAKE2s's parameter block, as WireGuard's MAC needs.
  size_t size = out_len;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size), OSSL_PARAM_construct_end()};
  check(EVP_MAC_init(ctx, key.data(), key.size(), params), "BLAKE2SMAC init");
  if (!data.empty()) check(EVP_MAC_update(ctx, data.data(), data.size()), "BLAKE2SMAC update");
  Bytes out(out_len);
  size_t len = 0;
  check(EVP_MAC_final(ctx, out.data(), &len, out.size()), "BLAKE2SMAC final");
  if (len != out_len) fatal("BLAKE2SMAC output length");
  return out;
}

ByteArray<kMacSize> mac16(ByteView key, ByteView data) {
  if (key.empty() || key.size() > kKeySize) {
    std::fprintf(stderr, "airlock: fatal: mac16 key of %zu bytes (must be 1..32)\n", key.size());
    std::abort();
  }
  EVP_MAC_CTX* ctx = thread_blake2s_mac_ctx();
  size_t size = kMacSize;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size), OSSL_PARAM_construct_end()};
  check(EVP_MAC_init(ctx, key.data(), key.size(), params), "BLAKE2SMAC init");
  if (!data.empty()) check(EVP_MAC_update(ctx, data.data(), data.size()), "BLAKE2SMAC update");
  ByteArray<kMacSize> out{};
  size_t len = 0;
  check(EVP_MAC_final(ctx, out.data(), &len, out.size()), "BLAKE2SMAC final");
  if (len != kMacSize) fatal("BLAKE2SMAC output length");
  return out;
}

Key hmac_blake2s(ByteView key, ByteView data) {
  Key out{};
  hmac_parts(key, {data}, out.data());
  return out;
}

// Noise's HKDF over HMAC-BLAKE2s, as the WireGuard paper writes it:
//   t0 = HMAC(key, input); t1 = HMAC(t0, 0x1); t2 = HMAC(t0, t1 || 0x2); t3 = HMAC(t0, t2 || 0x3)
// Outputs are computed into locals first so that key or input may alias an output.
namespace {
void kdf(ByteView key, ByteView input, SecretKey* t1, SecretKey* t2, SecretKey* t3) {
  static constexpr uint8_t one = 1, two = 2, three = 3;
  SecretKey t0, o1, o2, o3;
  hmac_parts(key, {input}, t0.data());
  hmac_parts(t0, {ByteView(&one, 1)}, o1.data());
  if (t2 != nullptr) hmac_parts(t0, {o1, ByteView(&two, 1)}, o2.data());
  if (t3 != nullptr) hmac_parts(t0, {o2, ByteView(&three, 1)}, o3.data());
  *t1 = o1;
  if (t2 != nullptr) *t2 = o2;
  if (t3 != nullptr) *t3 = o3;
}
}  // namespace

void kdf1(ByteView key, ByteView input, SecretKey& t1) { kdf(key, input, &t1, nullptr, nullptr); }
void kdf2(ByteView key, ByteView input, SecretKey& t1, SecretKey& t2) { kdf(key, input, &t1, &t2, nullptr); }
void kdf3(ByteView key, ByteView input, SecretKey& t1, SecretKey& t2, SecretKey& t3) {
  kdf(key, input, &t1, &t2, &t3);
}

// --- X25519 -----------------------------------------------------------------------------------

void x25519_clamp(Key& k) {
  k[0] &= 248;
  k[31] &= 127;
  k[31] |= 64;
}

SecretKey x25519_generate() {
  SecretKey key;
  random_bytes(key.bytes);
  x25519_clamp(key.bytes);
  return key;
}

Key x25519_public(const SecretKey& private_key) {
  PkeyPtr pkey = raw_private(EVP_PKEY_X25519, private_key);
  return raw_public_of(pkey.get());
}

Result<SecretKey> x25519(const SecretKey& private_key, const Key& public_key) {
  PkeyPtr priv = raw_private(EVP_PKEY_X25519, private_key);
  PkeyPtr peer(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, public_key.data(), public_key.size()));
  if (!peer) {
    ERR_clear_error();
    return make_error("X25519 public key is not usable");
  }
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, priv.get(), nullptr));
  if (!ctx) fatal("EVP_PKEY_CTX_new_from_pkey");
  check(EVP_PKEY_derive_init(ctx.get()), "EVP_PKEY_derive_init");
  // No peer validation here: we check the result for all zeros ourselves, as WireGuard does.
  if (EVP_PKEY_derive_set_peer_ex(ctx.get(), peer.get(), 0) != 1) {
    ERR_clear_error();
    return make_error("X25519 public key is not usable");
  }
  SecretKey shared;
  size_t len = shared.size();
  // OpenSSL itself fails the derivation when the result is all zero (a low-order point).
  const int ok = EVP_PKEY_derive(ctx.get(), shared.data(), &len);
  static constexpr Key zero{};
  if (ok != 1 || len != kKeySize || CRYPTO_memcmp(shared.data(), zero.data(), kKeySize) == 0) {
    ERR_clear_error();
    return make_error("X25519 shared secret is zero: the peer's public key is a low-order point");
  }
  return shared;
}

// --- ChaCha20-Poly1305 ------------------------------------------------------------------------

struct ChaChaPoly::Contexts {
  CipherCtxPtr seal;
  CipherCtxPtr open;
};

ChaChaPoly::ChaChaPoly(const SecretKey& key)
    : ctx_(std::make_unique<Contexts>(Contexts{new_aead_ctx(key, 1), new_aead_ctx(key, 0)})) {}

ChaChaPoly::~ChaChaPoly() = default;  // EVP_CIPHER_CTX_free cleanses the key schedule

void ChaChaPoly::seal(uint64_t counter, ByteView plaintext, ByteView aad, uint8_t* out) {
  const ByteArray<kNonceSize> nonce = counter_nonce(counter);
  seal_on(ctx_->seal.get(), nonce.data(), plaintext, aad, out);
}

void ChaChaPoly::seal_padded(uint64_t counter, ByteView plaintext, size_t zero_padding, uint8_t* out) {
  const ByteArray<kNonceSize> nonce = counter_nonce(counter);
  seal_on(ctx_->seal.get(), nonce.data(), plaintext, {}, out, zero_padding);
}

bool ChaChaPoly::open(uint64_t counter, ByteView ciphertext, ByteView aad, uint8_t* out) {
  const ByteArray<kNonceSize> nonce = counter_nonce(counter);
  return open_on(ctx_->open.get(), nonce.data(), ciphertext, aad, out);
}

Bytes aead_seal_nonce12(const SecretKey& key, const ByteArray<kNonceSize>& nonce, ByteView plaintext,
                        ByteView aad) {
  CipherCtxPtr ctx = new_aead_ctx(key, 1);
  Bytes out(plaintext.size() + kAeadTagSize);
  seal_on(ctx.get(), nonce.data(), plaintext, aad, out.data());
  return out;
}

std::optional<Bytes> aead_open_nonce12(const SecretKey& key, const ByteArray<kNonceSize>& nonce,
                                       ByteView ciphertext, ByteView aad) {
  if (ciphertext.size() < kAeadTagSize) return std::nullopt;
  CipherCtxPtr ctx = new_aead_ctx(key, 0);
  Bytes out(ciphertext.size() - kAeadTagSize);
  if (!open_on(ctx.get(), nonce.data(), ciphertext, aad, out.data())) return std::nullopt;
  return out;
}

Bytes aead_seal(const SecretKey& key, uint64_t counter, ByteView plaintext, ByteView aad) {
  return aead_seal_nonce12(key, counter_nonce(counter), plaintext, aad);
}

std::optional<Bytes> aead_open(const SecretKey& key, uint64_t counter, ByteView ciphertext, ByteView aad) {
  return aead_open_nonce12(key, counter_nonce(counter), ciphertext, aad);
}

// --- XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha) ---------------------------------------------

Key hchacha20(const SecretKey& key, const ByteArray<16>& nonce) {
  // "expand 32-byte k", the key, then the 16-byte nonce where ChaCha20 has counter and nonce.
  uint32_t x[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};
  for (int i = 0; i < 8; ++i) x[4 + i] = load_le32(key.data() + 4 * i);
  for (int i = 0; i < 4; ++i) x[12 + i] = load_le32(nonce.data() + 4 * i);
  for (int round = 0; round < 10; ++round) {
    quarter_round(x[0], x[4], x[8], x[12]);  // column rounds
    quarter_round(x[1], x[5], x[9], x[13]);
    quarter_round(x[2], x[6], x[10], x[14]);
    quarter_round(x[3], x[7], x[11], x[15]);
    quarter_round(x[0], x[5], x[10], x[15]);  // diagonal rounds
    quarter_round(x[1], x[6], x[11], x[12]);
    quarter_round(x[2], x[7], x[8], x[13]);
    quarter_round(x[3], x[4], x[9], x[14]);
  }
  // Unlike the ChaCha20 block function there is no final addition of the input state.
  Key subkey{};
  for (int i = 0; i < 4; ++i) store_le32(subkey.data() + 4 * i, x[i]);
  for (int i = 0; i < 4; ++i) store_le32(subkey.data() + 16 + 4 * i, x[12 + i]);
  wipe(x, sizeof x);
  return subkey;
}

namespace {
// XChaCha20: subkey = HChaCha20(key, nonce[0..16)), then ChaCha20-Poly1305 with
// nonce 4 zero bytes || nonce[16..24).
void xchacha_split(const SecretKey& key, const ByteArray<kXNonceSize>& xnonce, SecretKey& subkey,
                   ByteArray<kNonceSize>& nonce) {
  ByteArray<16> head{};
  std::copy_n(xnonce.begin(), 16, head.begin());
  Key sub = hchacha20(key, head);
  subkey = SecretKey(sub);
  wipe(sub);
  nonce.fill(0);
  std::copy_n(xnonce.begin() + 16, 8, nonce.begin() + 4);
}
}  // namespace

Bytes xaead_seal(const SecretKey& key, const ByteArray<kXNonceSize>& nonce, ByteView plaintext, ByteView aad) {
  SecretKey subkey;
  ByteArray<kNonceSize> nonce12{};
  xchacha_split(key, nonce, subkey, nonce12);
  return aead_seal_nonce12(subkey, nonce12, plaintext, aad);
}

std::optional<Bytes> xaead_open(const SecretKey& key, const ByteArray<kXNonceSize>& nonce, ByteView ciphertext,
                                ByteView aad) {
  SecretKey subkey;
  ByteArray<kNonceSize> nonce12{};
  xchacha_split(key, nonce, subkey, nonce12);
  return aead_open_nonce12(subkey, nonce12, ciphertext, aad);
}

// --- Ed25519 ----------------------------------------------------------------------------------

SecretKey ed25519_generate() {
  SecretKey seed;
  random_bytes(seed.bytes);
  return seed;
}

Key ed25519_public(const SecretKey& seed) {
  PkeyPtr pkey = raw_private(EVP_PKEY_ED25519, seed);
  return raw_public_of(pkey.get());
}

ByteArray<kEd25519SignatureSize> ed25519_sign(const SecretKey& seed, ByteView message) {
  PkeyPtr pkey = raw_private(EVP_PKEY_ED25519, seed);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) fatal("EVP_MD_CTX_new");
  // Ed25519 is a one-shot signature: no digest, EVP_DigestSign over the whole message.
  check(EVP_DigestSignInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr, pkey.get(), nullptr),
        "Ed25519 sign init");
  ByteArray<kEd25519SignatureSize> sig{};
  size_t len = sig.size();
  static const uint8_t empty = 0;
  check(EVP_DigestSign(ctx.get(), sig.data(), &len, message.empty() ? &empty : message.data(), message.size()),
        "Ed25519 sign");
  if (len != kEd25519SignatureSize) fatal("Ed25519 signature length");
  return sig;
}

bool ed25519_verify(const Key& public_key, ByteView message, ByteView signature) {
  if (signature.size() != kEd25519SignatureSize) return false;
  PkeyPtr pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, public_key.data(), public_key.size()));
  if (!pkey) {
    ERR_clear_error();
    return false;
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) fatal("EVP_MD_CTX_new");
  if (EVP_DigestVerifyInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr, pkey.get(), nullptr) != 1) {
    ERR_clear_error();
    return false;
  }
  static const uint8_t empty = 0;
  const int ok = EVP_DigestVerify(ctx.get(), signature.data(), signature.size(),
                                  message.empty() ? &empty : message.data(), message.size());
  if (ok != 1) ERR_clear_error();
  return ok == 1;
}

}  // namespace airlock::crypto
