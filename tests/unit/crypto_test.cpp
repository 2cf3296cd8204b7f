// Known-answer tests for common/crypto, with vectors from the specifications (RFC 7693, the
// BLAKE2 KAT, RFC 8439, draft-irtf-cfrg-xchacha, RFC 7748, RFC 8032, RFC 4648) and, where a spec
// has none (16-byte keyed BLAKE2s, HMAC-BLAKE2s, the Noise KDFs), values computed independently
// with Python's hashlib/hmac. Interop with WireGuard's own tools runs /usr/bin/wg.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "common/crypto/crypto.hpp"

using namespace airlock;
using namespace airlock::crypto;

namespace {

Bytes hex(std::string_view h) {
  Bytes out;
  REQUIRE_MESSAGE(from_hex(h, out), "bad hex in test: ", h);
  return out;
}

template <size_t N>
ByteArray<N> hex_array(std::string_view h) {
  Bytes b = hex(h);
  REQUIRE(b.size() == N);
  ByteArray<N> out{};
  std::copy(b.begin(), b.end(), out.begin());
  return out;
}

Key key_hex(std::string_view h) { return hex_array<kKeySize>(h); }
SecretKey secret_hex(std::string_view h) { return SecretKey(key_hex(h)); }

Bytes sequence(uint8_t first, size_t n) {
  Bytes out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(first + i);
  return out;
}

Key sequence_key(uint8_t first) {
  Key k{};
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(first + i);
  return k;
}

constexpr std::string_view kSunscreen =
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen "
    "would be it.";

}  // namespace

// --- BLAKE2s ----------------------------------------------------------------------------------

TEST_CASE("BLAKE2s-256 matches RFC 7693 and WireGuard's constants") {
  // RFC 7693 Appendix B.
  CHECK(to_hex(blake2s256(as_bytes("abc"))) == "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
  CHECK(to_hex(blake2s256(ByteView{})) == "69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9");
  // Parts are hashed as their concatenation.
  CHECK(blake2s256({as_bytes("a"), as_bytes(""), as_bytes("bc")}) == blake2s256(as_bytes("abc")));

  // WireGuard's initial chaining key and hash (whitepaper §5.4), as wireguard-go hard codes them.
  const Key ck = blake2s256(as_bytes("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"));
  CHECK(to_hex(ck) == "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36");
  CHECK(to_hex(blake2s256({ck, as_bytes("WireGuard v1 zx2c4 Jason@zx2c4.com")})) ==
        "2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3");
}

TEST_CASE("keyed BLAKE2s matches the BLAKE2 known-answer tests (key 00..1f, input 00..n-1)") {
  const Key key = sequence_key(0);
  struct Vector {
    size_t length;
    const char* digest;
  };
  const Vector vectors[] = {
      {0, "48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49"},
      {1, "40d15fee7c328830166ac3f918650f807e7e01e177258cdc0a39b11f598066f1"},
      {2, "6bb71300644cd3991b26ccd4d274acd1adeab8b1d7914546c1198bbe9fc9d803"},
      {3, "1d220dbe2ee134661fdf6d9e74b41704710556f2f6e5a091b227697445dbea6b"},
      {64, "8975b0577fd35566d750b362b0897a26c399136df07bababbde6203ff2954ed4"},
      {255, "3fb735061abc519dfe979e54c1ee5bfad0a9d858b3315bad34bde999efd724dd"},
  };
  for (const auto& v : vectors) {
    CAPTURE(v.length);
    CHECK(to_hex(blake2s_keyed(key, sequence(0, v.length), 32)) == v.digest);
  }
}

TEST_CASE("keyed BLAKE2s with a 16-byte digest sets the length in the parameter block") {
  const Key key32 = sequence_key(0);
  const Bytes key16 = sequence(0, 16);
  // Reference: python3 hashlib.blake2s(data, key=key, digest_size=16).
  const Bytes abc16 = blake2s_keyed(key32, as_bytes("abc"), 16);
  CHECK(to_hex(abc16) == "61ba5f165c194692e09d12520cc4c74a");
  CHECK(to_hex(blake2s_keyed(key32, ByteView{}, 16)) == "9536f9b267655743dee97b8a670f9f53");
  CHECK(to_hex(blake2s_keyed(key16, sequence(0, 100), 16)) == "56301549e674c3b72a0e1dafb7a2c620");

  // Not a truncation: the 32-byte digest of the same input starts differently.
  const Bytes abc32 = blake2s_keyed(key32, as_bytes("abc"), 32);
  CHECK(to_hex(abc32) == "a281f725754969a702f6fe36fc591b7def866e4b70173ece402fc01c064d6b65");
  CHECK_FALSE(std::equal(abc16.begin(), abc16.end(), abc32.begin()));

  // mac16 is the same function with WireGuard's output size.
  const auto mac = mac16(key32, as_bytes("abc"));
  CHECK(Bytes(mac.begin(), mac.end()) == abc16);
  CHECK(to_hex(mac16(key16, sequence(0, 100))) == "56301549e674c3b72a0e1dafb7a2c620");
}

TEST_CASE("keyed BLAKE2s with other lengths and short keys") {
  const uint8_t one_byte_key = 0x07;
  // python3: hashlib.blake2s(b'x'*70, key=b'\x07', digest_size=20)
  CHECK(to_hex(blake2s_keyed(ByteView(&one_byte_key, 1), Bytes(70, 'x'), 20)) ==
        "110e81f3c0ad80ec7e1ee32af79894f072433cfb");
  // An empty key with a 32-byte digest is plain BLAKE2s-256.
  CHECK(to_hex(blake2s_keyed(ByteView{}, as_bytes("abc"), 32)) ==
        "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
}

TEST_CASE("HMAC-BLAKE2s matches Python's hmac with hashlib.blake2s") {
  // python3: hmac.new(key, data, hashlib.blake2s).hexdigest()
  CHECK(to_hex(hmac_blake2s(sequence_key(0), as_bytes("abc"))) ==
        "82623be5bc0a391b24dce53e67d028eff92d586de0485ac37822e597d049c74f");
  CHECK(to_hex(hmac_blake2s(ByteView{}, as_bytes("abc"))) ==
        "4a79a31b10a8c34b7c89735b8088e6b810b4bad4f36d671b65ca2ea0914952bf");
  // A key longer than the 64-byte block is hashed first.
  CHECK(to_hex(hmac_blake2s(sequence(0, 65), sequence(0, 200))) ==
        "ef6a7a193a0473432359174bbb87e963f3e681642597347c2cb473e44769fd41");
  // The per-thread context must not carry the previous key into an empty-key call.
  const Key first = hmac_blake2s(ByteView{}, as_bytes("abc"));
  (void)hmac_blake2s(sequence_key(9), as_bytes("abc"));
  CHECK(hmac_blake2s(ByteView{}, as_bytes("abc")) == first);
}

TEST_CASE("Noise KDF1/KDF2/KDF3 follow the WireGuard paper's HKDF") {
  // python3: t0 = HMAC(key, input); t1 = HMAC(t0, 0x1); t2 = HMAC(t0, t1 || 0x2); t3 = HMAC(t0, t2 || 0x3)
  const Key key = sequence_key(0);
  const Bytes input = sequence(32, 32);
  const char* t1_hex = "6a96444e20e8d4c1cee974416acae1c10b3c92886010e54ed94dafb2c3b80ea0";
  const char* t2_hex = "57af120b0de7acbe7907ec149c5ae870a2dbb74232b65777ba4123f1f7f888f5";
  const char* t3_hex = "0926c7caabb6e8d73beda759e6f4f0d324ce5b5000bcf8cd784b26db3049faa9";

  SecretKey t1, t2, t3;
  kdf1(key, input, t1);
  CHECK(to_hex(t1) == t1_hex);
  kdf2(key, input, t1, t2);
  CHECK(to_hex(t1) == t1_hex);
  CHECK(to_hex(t2) == t2_hex);
  kdf3(key, input, t1, t2, t3);
  CHECK(to_hex(t1) == t1_hex);
  CHECK(to_hex(t2) == t2_hex);
  CHECK(to_hex(t3) == t3_hex);

  // Empty input, as in the final transport-key derivation.
  kdf2(key, ByteView{}, t1, t2);
  CHECK(to_hex(t1) == "7a38c34bf2b8738d7374ca77c44ecb309a11d2b2528304fa86052c365e722624");
  CHECK(to_hex(t2) == "1a17621f346abdc520746a9fb64d8eb03231d674fc15687537b0780fd9c060fd");

  SUBCASE("the chaining key may be both input and first output, as the handshake writes it") {
    SecretKey ck(key), k;
    kdf2(ck, input, ck, k);
    CHECK(to_hex(ck) == t1_hex);
    CHECK(to_hex(k) == t2_hex);
  }
}

// --- ChaCha20-Poly1305 ------------------------------------------------------------------------

TEST_CASE("ChaCha20-Poly1305 matches RFC 8439 §2.8.2") {
  const SecretKey key(sequence_key(0x80));
  const auto nonce = hex_array<kNonceSize>("070000004041424344454647");
  const Bytes aad = hex("50515253c0c1c2c3c4c5c6c7");
  const std::string expected =
      "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b"
      "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
      "3ff4def08e4b7a9de576d26586cec64b6116"
      "1ae10b594f09e26a7e902ecbd0600691";  // tag

  const Bytes sealed = aead_seal_nonce12(key, nonce, as_bytes(kSunscreen), aad);
  CHECK(to_hex(sealed) == expected);
  const auto opened = aead_open_nonce12(key, nonce, sealed, aad);
  REQUIRE(opened.has_value());
  CHECK(as_chars(*opened) == kSunscreen);
}

TEST_CASE("the counter nonce is 32 zero bits then the 64-bit little-endian counter") {
  const SecretKey key(sequence_key(0x80));
  const uint64_t counter = 0x0102030405060708ull;
  const auto nonce = hex_array<kNonceSize>("000000000807060504030201");
  CHECK(aead_seal(key, counter, as_bytes("hello"), as_bytes("ad")) ==
        aead_seal_nonce12(key, nonce, as_bytes("hello"), as_bytes("ad")));

  ChaChaPoly aead(key);
  Bytes out(5 + kAeadTagSize);
  aead.seal(counter, as_bytes("hello"), as_bytes("ad"), out.data());
  CHECK(out == aead_seal(key, counter, as_bytes("hello"), as_bytes("ad")));
}

TEST_CASE("seal_padded seals the plaintext with its zero padding, as if both were one buffer") {
  const SecretKey key(sequence_key(7));
  ChaChaPoly aead(key);
  // Lengths around OpenSSL's 64-byte ChaCha block and Poly1305's 16-byte block, padded to 16 as a
  // WireGuard transport payload is (0 bytes: a keep-alive).
  for (size_t n : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{63}, size_t{64}, size_t{65}, size_t{1000},
                   size_t{65503}}) {
    CAPTURE(n);
    const size_t padded = (n + 15) / 16 * 16;
    const Bytes plaintext = sequence(3, n);
    Bytes joined = plaintext;
    joined.resize(padded, 0);
    Bytes expected(padded + kAeadTagSize);
    aead.seal(9, joined, {}, expected.data());
    Bytes out(padded + kAeadTagSize, 0xee);
    aead.seal_padded(9, plaintext, padded - n, out.data());
    CHECK(out == expected);
    Bytes opened(padded);
    REQUIRE(aead.open(9, out, {}, opened.data()));
    CHECK(opened == joined);
  }
}

TEST_CASE("ChaChaPoly rejects every alteration and wipes the output") {
  const SecretKey key(sequence_key(1));
  ChaChaPoly aead(key);
  const Bytes plaintext = sequence(0, 100);
  const Bytes aad = {'h', 'e', 'a', 'd', 'e', 'r'};
  Bytes sealed(plaintext.size() + kAeadTagSize);
  aead.seal(42, plaintext, aad, sealed.data());
  Bytes out(plaintext.size(), 0xaa);

  REQUIRE(aead.open(42, sealed, aad, out.data()));
  CHECK(out == plaintext);

  SUBCASE("flipped tag bit") {
    Bytes bad = sealed;
    bad.back() ^= 0x01;
    CHECK_FALSE(aead.open(42, bad, aad, out.data()));
    CHECK(out == Bytes(out.size(), 0));
  }
  SUBCASE("flipped ciphertext bit") {
    Bytes bad = sealed;
    bad[10] ^= 0x80;
    CHECK_FALSE(aead.open(42, bad, aad, out.data()));
    CHECK(out == Bytes(out.size(), 0));
  }
  SUBCASE("wrong counter") { CHECK_FALSE(aead.open(43, sealed, aad, out.data())); }
  SUBCASE("wrong aad") { CHECK_FALSE(aead.open(42, sealed, as_bytes("headeR"), out.data())); }
  SUBCASE("missing aad") { CHECK_FALSE(aead.open(42, sealed, ByteView{}, out.data())); }
  SUBCASE("shorter than a tag") {
    CHECK_FALSE(aead.open(42, ByteView(sealed.data(), kAeadTagSize - 1), aad, out.data()));
    CHECK_FALSE(aead_open(key, 42, ByteView(sealed.data(), 3), aad).has_value());
  }
  SUBCASE("truncated") { CHECK_FALSE(aead.open(42, ByteView(sealed.data(), sealed.size() - 1), aad, out.data())); }
  SUBCASE("another key") {
    ChaChaPoly other(SecretKey(sequence_key(2)));
    CHECK_FALSE(other.open(42, sealed, aad, out.data()));
  }
  SUBCASE("one-shot form agrees") {
    CHECK(aead_open(key, 42, sealed, aad) == std::optional<Bytes>(plaintext));
    Bytes bad = sealed;
    bad[0] ^= 1;
    CHECK_FALSE(aead_open(key, 42, bad, aad).has_value());
  }
}

TEST_CASE("ChaChaPoly seals and opens in place, empty messages, and many messages on one key") {
  ChaChaPoly aead(SecretKey(sequence_key(3)));
  const Bytes plaintext = sequence(7, 1500);

  Bytes buf(plaintext.size() + kAeadTagSize);
  std::copy(plaintext.begin(), plaintext.end(), buf.begin());
  aead.seal(9, ByteView(buf.data(), plaintext.size()), ByteView{}, buf.data());
  CHECK(buf == aead_seal(SecretKey(sequence_key(3)), 9, plaintext, ByteView{}));
  REQUIRE(aead.open(9, buf, ByteView{}, buf.data()));
  CHECK(std::equal(plaintext.begin(), plaintext.end(), buf.begin()));

  // A keepalive is an empty plaintext: just a tag.
  uint8_t tag[kAeadTagSize];
  aead.seal(10, ByteView{}, ByteView{}, tag);
  CHECK(aead.open(10, ByteView(tag, sizeof tag), ByteView{}, nullptr));
  CHECK_FALSE(aead.open(11, ByteView(tag, sizeof tag), ByteView{}, nullptr));

  // The contexts are reused: interleave seals and opens, including failed opens in between.
  for (uint64_t counter = 0; counter < 200; ++counter) {
    const Bytes message = sequence(static_cast<uint8_t>(counter), counter % 97);
    Bytes sealed(message.size() + kAeadTagSize);
    aead.seal(counter, message, as_bytes("x"), sealed.data());
    Bytes out(message.size());
    if (counter % 3 == 0) CHECK_FALSE(aead.open(counter + 1, sealed, as_bytes("x"), out.data()));
    REQUIRE(aead.open(counter, sealed, as_bytes("x"), out.data()));
    CHECK(out == message);
  }
}

// --- XChaCha20-Poly1305 -----------------------------------------------------------------------

TEST_CASE("HChaCha20 matches draft-irtf-cfrg-xchacha §2.2.1") {
  const SecretKey key(sequence_key(0));
  const auto nonce = hex_array<16>("000000090000004a0000000031415927");
  CHECK(to_hex(hchacha20(key, nonce)) == "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc");
}

TEST_CASE("XChaCha20-Poly1305 matches draft-irtf-cfrg-xchacha §A.3.1") {
  const SecretKey key(sequence_key(0x80));
  const auto nonce = hex_array<kXNonceSize>("404142434445464748494a4b4c4d4e4f5051525354555657");
  const Bytes aad = hex("50515253c0c1c2c3c4c5c6c7");
  const std::string expected =
      "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39"
      "ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
      "21f9664c97637da9768812f615c68b13b52e"
      "c0875924c1c7987947deafd8780acf49";  // tag
  const Bytes sealed = xaead_seal(key, nonce, as_bytes(kSunscreen), aad);
  CHECK(to_hex(sealed) == expected);
  const auto opened = xaead_open(key, nonce, sealed, aad);
  REQUIRE(opened.has_value());
  CHECK(as_chars(*opened) == kSunscreen);

  Bytes bad = sealed;
  bad[0] ^= 1;
  CHECK_FALSE(xaead_open(key, nonce, bad, aad).has_value());
  auto other_nonce = nonce;
  other_nonce[23] ^= 1;  // the part that is not fed to HChaCha20
  CHECK_FALSE(xaead_open(key, other_nonce, sealed, aad).has_value());
  other_nonce = nonce;
  other_nonce[0] ^= 1;  // the part that is
  CHECK_FALSE(xaead_open(key, other_nonce, sealed, aad).has_value());
  CHECK_FALSE(xaead_open(key, nonce, ByteView(sealed.data(), 5), aad).has_value());
}

// --- X25519 -----------------------------------------------------------------------------------

TEST_CASE("X25519 matches RFC 7748 §6.1 and §5.2") {
  const SecretKey alice = secret_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  const SecretKey bob = secret_hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
  const Key alice_public = x25519_public(alice);
  const Key bob_public = x25519_public(bob);
  CHECK(to_hex(alice_public) == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  CHECK(to_hex(bob_public) == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  const auto ab = x25519(alice, bob_public);
  const auto ba = x25519(bob, alice_public);
  REQUIRE(ab.ok());
  REQUIRE(ba.ok());
  CHECK(to_hex(*ab) == "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  CHECK(to_hex(*ba) == "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");

  // §5.2 first vector: an unclamped scalar, clamped by the function.
  const auto out = x25519(secret_hex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
                          key_hex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"));
  REQUIRE(out.ok());
  CHECK(to_hex(*out) == "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
}

TEST_CASE("X25519 refuses low-order public keys (all-zero shared secret)") {
  const SecretKey alice = secret_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  // u = 0, u = 1 and u = p - 1 lie in the small subgroup: a clamped scalar sends them to zero.
  for (const char* u : {"0000000000000000000000000000000000000000000000000000000000000000",
                        "0100000000000000000000000000000000000000000000000000000000000000",
                        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"}) {
    CAPTURE(u);
    const auto shared = x25519(alice, key_hex(u));
    REQUIRE_FALSE(shared.ok());
    CHECK(shared.error().message.find("low-order") != std::string::npos);
  }
}

TEST_CASE("X25519 key generation clamps and agrees with itself") {
  const SecretKey a = x25519_generate();
  const SecretKey b = x25519_generate();
  CHECK((a.bytes[0] & 7) == 0);
  CHECK((a.bytes[31] & 0x80) == 0);
  CHECK((a.bytes[31] & 0x40) == 0x40);
  CHECK(a.bytes != b.bytes);
  const auto ab = x25519(a, x25519_public(b));
  const auto ba = x25519(b, x25519_public(a));
  REQUIRE(ab.ok());
  REQUIRE(ba.ok());
  CHECK(ab->bytes == ba->bytes);

  Key k;
  k.fill(0xff);
  x25519_clamp(k);
  CHECK(k[0] == 0xf8);
  CHECK(k[31] == 0x7f);
  k.fill(0);
  x25519_clamp(k);
  CHECK(k[31] == 0x40);
}

// --- Ed25519 ----------------------------------------------------------------------------------

TEST_CASE("Ed25519 matches RFC 8032 §7.1 tests 1 and 2") {
  struct Vector {
    const char *seed, *public_key, *message, *signature;
  };
  const Vector vectors[] = {
      {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
       "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
       "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe"
       "24655141438e7a100b"},
      {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
       "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
       "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302a"
       "eeb00d291612bb0c00"},
  };
  for (const auto& v : vectors) {
    CAPTURE(v.public_key);
    const SecretKey seed = secret_hex(v.seed);
    const Key pub = ed25519_public(seed);
    CHECK(to_hex(pub) == v.public_key);
    const Bytes message = hex(v.message);
    const auto sig = ed25519_sign(seed, message);
    CHECK(to_hex(sig) == v.signature);
    CHECK(ed25519_verify(pub, message, sig));

    // Tampering with either the message or the signature fails.
    Bytes other_message = message;
    other_message.push_back(0x00);
    CHECK_FALSE(ed25519_verify(pub, other_message, sig));
    auto bad_sig = sig;
    bad_sig[5] ^= 0x10;
    CHECK_FALSE(ed25519_verify(pub, message, bad_sig));
    bad_sig = sig;
    bad_sig[63] ^= 0x01;
    CHECK_FALSE(ed25519_verify(pub, message, bad_sig));
    CHECK_FALSE(ed25519_verify(pub, message, ByteView(sig.data(), 63)));
    CHECK_FALSE(ed25519_verify(ed25519_public(ed25519_generate()), message, sig));
  }
  // A public key that is not a point on the curve is refused, not an error thrown.
  Key not_a_point;
  not_a_point.fill(0xff);
  const auto sig = ed25519_sign(secret_hex(vectors[0].seed), ByteView{});
  CHECK_FALSE(ed25519_verify(not_a_point, ByteView{}, sig));
}

// --- base64 -----------------------------------------------------------------------------------

TEST_CASE("base64 matches RFC 4648 §10") {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
  };
  for (const auto& vector : vectors) {
    const std::string_view plain = vector.first, encoded = vector.second;
    CAPTURE(plain);
    CHECK(base64_encode(as_bytes(plain)) == encoded);
    const auto decoded = base64_decode(encoded);
    REQUIRE(decoded.ok());
    CHECK(as_chars(*decoded) == plain);
    // base64url is the same without padding.
    std::string url(encoded);
    while (!url.empty() && url.back() == '=') url.pop_back();
    CHECK(base64url_encode(as_bytes(plain)) == url);
    const auto url_decoded = base64url_decode(url);
    REQUIRE(url_decoded.ok());
    CHECK(as_chars(*url_decoded) == plain);
  }
  // The two alphabets differ in their last two characters.
  const uint8_t high[] = {0xfb, 0xff};
  CHECK(base64_encode(high) == "+/8=");
  CHECK(base64url_encode(high) == "-_8");
  CHECK(base64_decode("-_8=").ok() == false);
  CHECK(base64url_decode("+/8").ok() == false);
}

TEST_CASE("base64 decoding is strict") {
  const char* bad_base64[] = {
      "Zg",         // missing padding
      "Zg=",        // short padding
      "Zg===",      // too much padding
      "Z===",       // a lone character
      "====",       // only padding
      "Zg==Zg==",   // padding in the middle
      "Zm9v\n",     // whitespace
      " Zm9v",      // whitespace
      "Zm 9v",      // whitespace
      "Zm9*",       // outside the alphabet
      "AB==",       // non-canonical: the unused bits of 'B' are set ("AA==" is canonical)
      "AAB=",       // non-canonical in the two-byte form ("AAA=" is canonical)
      "Zh==",       // non-canonical
  };
  for (const char* text : bad_base64) {
    CAPTURE(text);
    CHECK_FALSE(base64_decode(text).ok());
  }
  CHECK_FALSE(base64_decode(std::string_view("Zm9v\0\0\0\0", 8)).ok());
  CHECK(base64_decode("AA==").ok());
  CHECK(base64_decode("AAA=").ok());

  const char* bad_base64url[] = {"Zg==", "Zg=", "Z", "Zm9vY", "Zh", "AAB", "Zm9v ", "Zm+v", "Zm/v"};
  for (const char* text : bad_base64url) {
    CAPTURE(text);
    CHECK_FALSE(base64url_decode(text).ok());
  }

  // Errors say what is wrong.
  CHECK(base64_decode("Zm9*").error().message.find("'*'") != std::string::npos);
  CHECK(base64_decode("Zm9").error().message.find("multiple of 4") != std::string::npos);
  CHECK(base64_decode("AB==").error().message.find("non-canonical") != std::string::npos);
  CHECK(base64url_decode("Zg==").error().message.find("unpadded") != std::string::npos);
}

TEST_CASE("base64 round-trips every byte value at every length") {
  Bytes data(300);
  random_bytes(data);
  for (size_t n = 0; n <= data.size(); ++n) {
    const ByteView slice(data.data(), n);
    const auto a = base64_decode(base64_encode(slice));
    const auto b = base64url_decode(base64url_encode(slice));
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(std::equal(a->begin(), a->end(), slice.begin(), slice.end()));
    CHECK(std::equal(b->begin(), b->end(), slice.begin(), slice.end()));
  }
  Bytes all(256);
  for (int i = 0; i < 256; ++i) all[i] = static_cast<uint8_t>(i);
  CHECK(*base64_decode(base64_encode(all)) == all);
  CHECK(*base64url_decode(base64url_encode(all)) == all);
}

TEST_CASE("WireGuard key form: 44 characters, 32 bytes") {
  const Key k = sequence_key(0);
  const std::string text = key_to_base64(k);
  CHECK(text == "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
  CHECK(text.size() == 44);
  const auto back = key_from_base64(text);
  REQUIRE(back.ok());
  CHECK(*back == k);

  CHECK_FALSE(key_from_base64(text.substr(0, 43)).ok());
  CHECK_FALSE(key_from_base64(text + "=").ok());
  CHECK_FALSE(key_from_base64(text + "\n").ok());
  CHECK_FALSE(key_from_base64("").ok());
  // 44 characters that decode to 31 bytes.
  CHECK_FALSE(key_from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==").ok());
  // The last character carries two unused bits; setting them is a different spelling.
  CHECK_FALSE(key_from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=").ok());
  CHECK_FALSE(key_from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8A").ok());
  CHECK(key_from_base64("short").error().message.find("44") != std::string::npos);
}

// --- interop with WireGuard's tools -----------------------------------------------------------

namespace {

constexpr const char* kWg = "/usr/bin/wg";

// Runs a shell command and returns its standard output without the trailing newline.
std::string run(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE_MESSAGE(pipe != nullptr, "cannot run: ", command);
  std::string out;
  char buf[256];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = pclose(pipe);
  REQUIRE_MESSAGE(status == 0, "command failed (status ", status, "): ", command);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

void require_wg() {
  REQUIRE_MESSAGE(access(kWg, X_OK) == 0,
                  "/usr/bin/wg is missing: install wireguard-tools (scripts/setup does) to run the interop tests");
}

// Base64 has no shell metacharacters, so single quotes are enough.
std::string wg_pubkey(const std::string& private_base64) {
  return run("printf '%s\\n' '" + private_base64 + "' | " + kWg + " pubkey");
}

}  // namespace

TEST_CASE("interop: wg pubkey derives the same public key from our private key") {
  require_wg();
  for (int i = 0; i < 3; ++i) {
    const SecretKey priv = x25519_generate();
    const std::string ours = key_to_base64(x25519_public(priv));
    CHECK(wg_pubkey(key_to_base64(priv)) == ours);
  }
}

TEST_CASE("interop: our x25519_public agrees with wg genkey | wg pubkey") {
  require_wg();
  for (int i = 0; i < 3; ++i) {
    const std::string priv_text = run(std::string(kWg) + " genkey");
    const auto priv = key_from_base64(priv_text);
    REQUIRE_MESSAGE(priv.ok(), priv_text);
    CHECK(key_to_base64(x25519_public(SecretKey(*priv))) == wg_pubkey(priv_text));
  }
}

TEST_CASE("interop: RFC 7748 Alice's private key through wg pubkey gives Alice's public key") {
  require_wg();
  const Key alice = key_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  const Key alice_public = key_hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  CHECK(wg_pubkey(key_to_base64(alice)) == key_to_base64(alice_public));
}

// --- small helpers ----------------------------------------------------------------------------

TEST_CASE("equal_ct, wipe and random") {
  CHECK(equal_ct(as_bytes("abc"), as_bytes("abc")));
  CHECK_FALSE(equal_ct(as_bytes("abc"), as_bytes("abd")));
  CHECK_FALSE(equal_ct(as_bytes("abc"), as_bytes("ab")));
  CHECK(equal_ct(ByteView{}, ByteView{}));

  Key k = sequence_key(1);
  wipe(k);
  CHECK(k == Key{});
  {
    SecretKey s(sequence_key(1));
    CHECK(s.bytes[0] == 1);
  }

  Bytes a(32), b(32);
  random_bytes(a);
  random_bytes(b);
  CHECK(a != b);
  CHECK(a != Bytes(32, 0));
  CHECK(random_u64() != random_u64());
  random_bytes(MutableByteView{});  // empty is fine
}
