#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>

#include "common/token/token.hpp"
#include "tests/support/deployment.hpp"

using namespace airlock;
using namespace airlock::token;
using airlock::test::TempDir;

namespace {

constexpr int64_t kNow = 1'790'000'000;  // 2026-09-21

Claims member_claims() {
  Claims c;
  c.sub = "user-42";
  c.email = "ada@example.com";
  c.role = Role::member;
  c.iat = kNow - 60;
  c.exp = kNow + 3600;
  return c;
}

// A token whose signature is valid over arbitrary claims text, to reach the checks after it.
std::string signed_payload(const IssuerKey& issuer, std::string_view json) {
  const std::string payload = crypto::base64url_encode(as_bytes(json));
  const auto sig = crypto::ed25519_sign(issuer.seed, as_bytes(payload));
  return payload + "." + crypto::base64url_encode(sig);
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

void write_file(const std::string& path, const std::string& text, mode_t mode = 0600) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::fchmod(fd, mode);
  ::close(fd);
}

}  // namespace

TEST_CASE("role names round-trip") {
  for (Role role : {Role::owner, Role::template_admin, Role::member, Role::auditor, Role::agent, Role::gateway}) {
    const auto back = role_from_name(role_name(role));
    REQUIRE(back.has_value());
    CHECK(*back == role);
  }
  CHECK(role_name(Role::template_admin) == "template-admin");
  CHECK_FALSE(role_from_name("template_admin").has_value());
  CHECK_FALSE(role_from_name("Owner").has_value());
  CHECK_FALSE(role_from_name("").has_value());
}

TEST_CASE("mint then verify returns the claims") {
  const IssuerKey issuer = IssuerKey::generate();
  Claims claims = member_claims();
  claims.role = Role::agent;
  claims.workspace_id = "ws-1";
  claims.workspace_name = "alpha";
  claims.owner = "user-42";

  const std::string token = mint(issuer, claims);
  CHECK(std::count(token.begin(), token.end(), '.') == 1);
  const auto verified = verify(token, issuer.public_key, kNow);
  REQUIRE_MESSAGE(verified.ok(), verified.error().message);
  CHECK(verified->sub == "user-42");
  CHECK(verified->email == "ada@example.com");
  CHECK(verified->role == Role::agent);
  CHECK(verified->workspace_id == "ws-1");
  CHECK(verified->workspace_name == "alpha");
  CHECK(verified->owner == "user-42");
  CHECK(verified->iat == claims.iat);
  CHECK(verified->exp == claims.exp);
  CHECK(verified->jti.size() == 22);  // 16 random bytes in base64url

  // Each mint gets its own id; a given id is kept.
  CHECK(verify(mint(issuer, claims), issuer.public_key, kNow)->jti != verified->jti);
  claims.jti = "fixed-id";
  CHECK(verify(mint(issuer, claims), issuer.public_key, kNow)->jti == "fixed-id");
}

TEST_CASE("claims JSON leaves out empty strings") {
  Claims c;
  c.sub = "u";
  c.role = Role::auditor;
  c.iat = 1;
  c.exp = 2;
  CHECK(claims_json(c) == R"({"exp":2,"iat":1,"role":"auditor","sub":"u"})");
  const auto back = parse_claims(claims_json(c));
  REQUIRE(back.ok());
  CHECK(back->role == Role::auditor);
  CHECK(back->email.empty());
}

TEST_CASE("expiry and not-before are checked with clock skew") {
  const IssuerKey issuer = IssuerKey::generate();
  Claims c = member_claims();

  c.iat = kNow - 1000;
  c.exp = kNow - 100;
  auto r = verify(mint(issuer, c), issuer.public_key, kNow, 30);
  REQUIRE_FALSE(r.ok());
  CHECK(contains(r.error().message, "token expired at 2026-09-21T"));
  CHECK(contains(r.error().message, "100 s ago"));

  c.exp = kNow - 10;  // within the skew
  CHECK(verify(mint(issuer, c), issuer.public_key, kNow, 30).ok());
  CHECK_FALSE(verify(mint(issuer, c), issuer.public_key, kNow, 0).ok());

  c = member_claims();
  c.iat = kNow + 3600;
  c.exp = kNow + 7200;
  r = verify(mint(issuer, c), issuer.public_key, kNow, 30);
  REQUIRE_FALSE(r.ok());
  CHECK(contains(r.error().message, "not valid yet"));

  c.iat = kNow + 10;  // a clock slightly ahead of ours
  CHECK(verify(mint(issuer, c), issuer.public_key, kNow, 30).ok());

  // Extreme "now" values do not overflow.
  CHECK(verify(mint(issuer, member_claims()), issuer.public_key, INT64_MAX, INT64_MAX).ok());
  CHECK_FALSE(verify(mint(issuer, member_claims()), issuer.public_key, INT64_MAX, 30).ok());
  CHECK_FALSE(verify(mint(issuer, member_claims()), issuer.public_key, INT64_MIN, 30).ok());
}

TEST_CASE("a token from another issuer or with altered claims does not verify") {
  const IssuerKey issuer = IssuerKey::generate();
  const IssuerKey forger = IssuerKey::generate();
  const std::string forged = mint(forger, member_claims());
  auto r = verify(forged, issuer.public_key, kNow);
  REQUIRE_FALSE(r.ok());
  CHECK(contains(r.error().message, "token signature does not verify"));

  // Raise the role in the claims and keep the signature.
  const std::string token = mint(issuer, member_claims());
  const size_t dot = token.find('.');
  auto payload = crypto::base64url_decode(token.substr(0, dot));
  REQUIRE(payload.ok());
  std::string json(as_chars(*payload));
  const size_t at = json.find("\"member\"");
  REQUIRE(at != std::string::npos);
  json.replace(at, 8, "\"owner\"");
  const std::string tampered = crypto::base64url_encode(as_bytes(json)) + token.substr(dot);
  r = verify(tampered, issuer.public_key, kNow);
  REQUIRE_FALSE(r.ok());
  CHECK(contains(r.error().message, "signature does not verify"));

  // A flipped bit in the signature.
  std::string bad_sig = token;
  bad_sig[dot + 5] = bad_sig[dot + 5] == 'A' ? 'B' : 'A';
  CHECK_FALSE(verify(bad_sig, issuer.public_key, kNow).ok());
}

TEST_CASE("malformed tokens are refused with a reason") {
  const IssuerKey issuer = IssuerKey::generate();
  const std::string good = mint(issuer, member_claims());
  const size_t dot = good.find('.');

  auto expect_malformed = [&](const std::string& token, std::string_view why) {
    CAPTURE(token);
    const auto r = verify(token, issuer.public_key, kNow);
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.error().message, "token is malformed"));
    CHECK_MESSAGE(contains(r.error().message, why), r.error().message);
  };

  expect_malformed("", "empty");
  expect_malformed(good.substr(0, dot) + good.substr(dot + 1), "no '.'");
  expect_malformed(good + ".", "more than one '.'");
  expect_malformed(good.substr(0, dot) + "." + good.substr(0, dot) + "." + good.substr(dot + 1), "more than one");
  expect_malformed("*" + good.substr(1), "claims part");
  expect_malformed(good.substr(0, dot + 1) + "!" + good.substr(dot + 2), "signature part");
  expect_malformed(good + "AA", "not 64");
  expect_malformed(good.substr(dot), "claims part is empty");
  expect_malformed(good.substr(0, dot + 1), "0 bytes");
  expect_malformed(std::string(kMaxTokenSize + 1, 'A'), "longer than");
  // Padding is not part of base64url.
  expect_malformed(good.substr(0, dot) + "=" + good.substr(dot), "claims part");

  // Correctly signed, but the claims are wrong.
  auto expect_bad_claims = [&](std::string_view json, std::string_view why) {
    expect_malformed(signed_payload(issuer, json), why);
  };
  const std::string t = R"("iat":1789999000,"exp":1790003600)";
  expect_bad_claims(R"(["sub","role"])", "not a JSON object");
  expect_bad_claims(R"({"sub":"u","role":"member")", "not valid JSON");
  expect_bad_claims("not json", "not valid JSON");
  expect_bad_claims(R"({"sub":"u","role":"member","iat":1789999000})", "\"exp\" is missing");
  expect_bad_claims(R"({"sub":"u","role":"member","exp":1790003600})", "\"iat\" is missing");
  expect_bad_claims(R"({"role":"member",)" + t + "}", "\"sub\" is missing");
  expect_bad_claims(R"({"sub":"","role":"member",)" + t + "}", "\"sub\" is not a non-empty string");
  expect_bad_claims(R"({"sub":7,"role":"member",)" + t + "}", "\"sub\"");
  expect_bad_claims(R"({"sub":"u",)" + t + "}", "\"role\" is missing");
  expect_bad_claims(R"({"sub":"u","role":"root",)" + t + "}", "role \"root\" is unknown");
  expect_bad_claims(R"({"sub":"u","role":["owner"],)" + t + "}", "\"role\" is not a string");
  expect_bad_claims(R"({"sub":"u","role":"member","iat":"1789999000","exp":1790003600})", "not an integer");
  expect_bad_claims(R"({"sub":"u","role":"member","iat":1789999000,"exp":1790003600.5})", "not an integer");
  expect_bad_claims(R"({"sub":"u","role":"member","iat":-1,"exp":1790003600})", "out of range");
  expect_bad_claims(R"({"sub":"u","role":"member","iat":1,"exp":18446744073709551615})", "out of range");
  expect_bad_claims(R"({"sub":"u","role":"member","iat":1790003600,"exp":1789999000})", "expires");
  expect_bad_claims(R"({"sub":"u","role":"member","email":1,)" + t + "}", "\"email\" is not a string");
  expect_bad_claims(R"({"sub":"u","role":"member","jti":null,)" + t + "}", "\"jti\" is not a string");

  // Unknown fields are allowed (newer control planes may add claims).
  const auto extra = verify(signed_payload(issuer, R"({"sub":"u","role":"member","aud":"x",)" + t + "}"),
                            issuer.public_key, kNow);
  CHECK_MESSAGE(extra.ok(), extra.error().message);
}

TEST_CASE("issuer key files: save with mode 0600, load back, public key forms") {
  TempDir dir;
  const std::string path = (dir / "issuer.key").string();
  const IssuerKey key = IssuerKey::generate();

  REQUIRE(save_issuer_key(path, key).ok());
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);

  const auto loaded = load_issuer_key(path);
  REQUIRE_MESSAGE(loaded.ok(), loaded.error().message);
  CHECK(loaded->seed.bytes == key.seed.bytes);
  CHECK(loaded->public_key == key.public_key);
  // A token minted with the loaded key verifies with the saved one.
  CHECK(verify(mint(*loaded, member_claims()), key.public_key, kNow).ok());

  // The public key: from the key file, inline, or from a file holding only it.
  CHECK(*load_public_key(path) == key.public_key);
  const std::string pub_b64 = crypto::key_to_base64(key.public_key);
  CHECK(*load_public_key(pub_b64) == key.public_key);
  write_file((dir / "issuer.pub").string(), pub_b64 + "\n", 0644);
  CHECK(*load_public_key((dir / "issuer.pub").string()) == key.public_key);
  write_file((dir / "public-line.pub").string(), "# issuer\npublic: " + pub_b64 + "\n", 0644);
  CHECK(*load_public_key((dir / "public-line.pub").string()) == key.public_key);
  write_file((dir / "seed-only.key").string(), "seed: " + crypto::key_to_base64(key.seed) + "\n");
  CHECK(*load_public_key((dir / "seed-only.key").string()) == key.public_key);
  CHECK(load_issuer_key((dir / "seed-only.key").string()).ok());

  // Saving over an existing, wider-mode file leaves a 0600 file.
  write_file((dir / "old.key").string(), "junk", 0644);
  REQUIRE(save_issuer_key((dir / "old.key").string(), key).ok());
  REQUIRE(stat(((dir / "old.key").string()).c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(load_issuer_key((dir / "old.key").string()).ok());
}

TEST_CASE("issuer key files that are wrong are refused with a reason") {
  TempDir dir;
  const IssuerKey key = IssuerKey::generate();
  const IssuerKey other = IssuerKey::generate();
  const std::string seed = crypto::key_to_base64(key.seed);

  auto expect_error = [&](const std::string& text, std::string_view why) {
    const std::string path = (dir / "bad.key").string();
    write_file(path, text);
    const auto r = load_issuer_key(path);
    CAPTURE(text);
    REQUIRE_FALSE(r.ok());
    CHECK_MESSAGE(contains(r.error().message, why), r.error().message);
  };
  expect_error("seed: " + seed + "\npublic: " + crypto::key_to_base64(other.public_key) + "\n",
               "does not belong to the seed");
  expect_error("public: " + crypto::key_to_base64(key.public_key) + "\n", "no \"seed:\" line");
  expect_error("seed: " + seed.substr(1) + "\n", "44");
  expect_error("seed: " + seed + "\nseed: " + seed + "\n", "appears twice");
  expect_error("seed: " + seed + "\ncolour: blue\n", "unknown field");
  expect_error(std::string(5000, '#'), "larger than");

  const auto missing = load_issuer_key((dir / "nope.key").string());
  REQUIRE_FALSE(missing.ok());
  CHECK(contains(missing.error().message, "cannot open"));
  const auto not_a_key = load_public_key("not-a-key-or-file");
  REQUIRE_FALSE(not_a_key.ok());
  CHECK(contains(not_a_key.error().message, "neither"));
  CHECK_FALSE(save_issuer_key((dir / "no/such/dir/issuer.key").string(), key).ok());
}
