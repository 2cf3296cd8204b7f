// The relay's files: its X25519 key, and for --dev a self-signed TLS certificate, an issuer key
// and ready-made tokens, all in the state directory, so a newcomer starts in one step.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/crypto/crypto.hpp"
#include "common/token/token.hpp"
#include "common/util/result.hpp"

namespace airlock::relayd {

// "private: <base64>\npublic: <base64>\n", mode 0600. Created (with parent directory) if absent.
Result<crypto::SecretKey> load_or_create_relay_key(const std::string& path);

// A self-signed ECDSA P-256 certificate for localhost, 127.0.0.1 and ::1, and its key (0600).
// Existing files are kept.
Status ensure_dev_certificate(const std::string& cert_path, const std::string& key_path);

// The issuer key for --dev (created if absent).
Result<token::IssuerKey> load_or_create_issuer_key(const std::string& path);

struct DevTokens {
  std::string owner;  // user "admin", role owner
  std::string agent;  // the agent of workspace "demo" (id ws-demo, owner admin)
};
DevTokens mint_dev_tokens(const token::IssuerKey& issuer, std::chrono::seconds ttl);

// Writes a whole file with mode 0600 from birth (temporary name, then rename).
Status write_private_file(const std::string& path, std::string_view text);

Status make_directory(const std::string& path);  // mkdir -p, mode 0700 for new directories

}  // namespace airlock::relayd
