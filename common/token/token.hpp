// Control-plane tokens: base64url(claims JSON) "." base64url(Ed25519 signature over the first part).
//
// The control plane holds the issuer's Ed25519 key and mints short-lived tokens; the relay and the
// agent verify them against the issuer's public key. Roles follow the platform's RBAC table.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/crypto/crypto.hpp"
#include "common/util/result.hpp"

namespace airlock::token {

enum class Role { owner, template_admin, member, auditor, agent, gateway };

std::string_view role_name(Role role);                  // "owner", "template-admin", ...
std::optional<Role> role_from_name(std::string_view name);

struct Claims {
  std::string sub;             // user id (or agent id for agent tokens)
  std::string email;
  Role role = Role::member;
  std::string workspace_id;    // agent tokens: the workspace the agent serves
  std::string workspace_name;  // agent tokens: its name, which clients dial
  std::string owner;           // agent tokens: the owning user's id
  int64_t iat = 0;             // unix seconds
  int64_t exp = 0;             // unix seconds
  std::string jti;             // unique id
};

struct IssuerKey {
  crypto::SecretKey seed;
  crypto::Key public_key;
  static IssuerKey generate();
  static IssuerKey from_seed(const crypto::SecretKey& seed);
};

// Longest token verify() accepts; real ones are a few hundred bytes.
constexpr size_t kMaxTokenSize = 8192;

// Signs the claims; fills jti with a random id when empty. Empty strings are left out of the JSON;
// bytes that are not UTF-8 in a string claim are replaced with U+FFFD.
std::string mint(const IssuerKey& issuer, Claims claims);

// Checks form, signature, then expiry against now (with clock_skew seconds of tolerance).
// Order: the two parts and their base64url, then the signature over the ASCII of the first part,
// and only then the claims JSON (a JSON object with string sub, known role, integer iat and exp;
// optional email, workspace_id, workspace_name, owner, jti must be strings; other fields are
// ignored), then time: exp + skew must not be past and iat - skew must not be in the future.
// Errors say what is wrong: "token is malformed: ...", "token signature does not verify",
// "token expired at 2026-11-23T10:00:00Z".
Result<Claims> verify(std::string_view token, const crypto::Key& issuer_public, int64_t now,
                      int64_t clock_skew = 30);

// The claims JSON as mint() writes it, and its strict parser as verify() uses it after the
// signature has verified (exposed for tests and fuzzing).
std::string claims_json(const Claims& claims);
Result<Claims> parse_claims(std::string_view json);

// Key files: the issuer's seed and public key in base64, one line each:
//   # Airlock token issuer key (Ed25519); keep this file secret
//   seed: <44 characters of base64>
//   public: <44 characters of base64>
// Blank lines and lines starting with '#' are ignored; "public" is optional when loading and,
// when present, must match the seed.
Result<IssuerKey> load_issuer_key(const std::string& path);
// Written to a new file in the same directory (O_EXCL, mode 0600) and renamed over path.
Status save_issuer_key(const std::string& path, const IssuerKey& key);  // mode 0600
// A public key given inline (44 characters of base64) or as a file: an issuer key file (its
// "public" line, or derived from "seed"), or a file holding just the base64 key.
Result<crypto::Key> load_public_key(const std::string& path_or_base64);

}  // namespace airlock::token
