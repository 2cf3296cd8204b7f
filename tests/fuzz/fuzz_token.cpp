// Token verification on arbitrary input never crashes. Three views of each input:
//   1. as a token, verified against a fixed issuer (seed corpus tokens are signed by it);
//   2. as claims JSON, parsed directly;
//   3. as claims JSON signed by that issuer, so verify() gets past the signature; whatever it
//      accepts must survive mint -> verify unchanged.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/token/token.hpp"

using namespace airlock;
using namespace airlock::token;

namespace {

constexpr int64_t kNow = 1'790'000'000;

const IssuerKey& fuzz_issuer() {
  static const IssuerKey issuer = [] {
    crypto::Key seed{};
    for (size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<uint8_t>(i);
    return IssuerKey::from_seed(crypto::SecretKey(seed));
  }();
  return issuer;
}

bool same(const Claims& a, const Claims& b) {
  return a.sub == b.sub && a.email == b.email && a.role == b.role && a.workspace_id == b.workspace_id &&
         a.workspace_name == b.workspace_name && a.owner == b.owner && a.iat == b.iat && a.exp == b.exp &&
         a.jti == b.jti;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const IssuerKey& issuer = fuzz_issuer();

  (void)verify(input, issuer.public_key, kNow);
  const Result<Claims> parsed = parse_claims(input);

  if (size > kMaxTokenSize / 2) return 0;  // stays under the token limit once encoded
  const std::string payload = crypto::base64url_encode(as_bytes(input));
  const auto signature = crypto::ed25519_sign(issuer.seed, as_bytes(payload));
  const std::string token = payload + "." + crypto::base64url_encode(signature);
  const Result<Claims> verified = verify(token, issuer.public_key, kNow, INT64_MAX);
  if (verified.ok() != parsed.ok()) __builtin_trap();  // with time out of the way they must agree
  if (verified.ok()) {
    Claims claims = *verified;
    if (claims.jti.empty()) claims.jti = "j";  // mint fills an empty jti with a random one
    const Result<Claims> again = verify(mint(issuer, claims), issuer.public_key, kNow, INT64_MAX);
    if (!again.ok() || !same(*again, claims)) __builtin_trap();
  }
  return 0;
}
