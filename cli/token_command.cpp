// `airlock token keygen|mint|inspect` — the control plane's side of identity, for scripts and tests.
#include <cstdio>
#include <ctime>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "common/token/token.hpp"
#include "common/util/duration.hpp"

namespace airlock::cli {

namespace {

struct MintOptions {
  std::string key_file;
  token::Claims claims;
  std::string role = "member";
  std::string ttl = "1h";
};

int run_keygen(const std::string& out) {
  auto key = token::IssuerKey::generate();
  if (auto s = token::save_issuer_key(out, key); !s) {
    std::cerr << "airlock token keygen: " << s.error().message << "\n";
    return 1;
  }
  std::cerr << "wrote issuer key to " << out << " (keep it secret; give the relay and agents the public key)\n";
  std::cout << crypto::key_to_base64(key.public_key) << "\n";
  return 0;
}

int run_mint(MintOptions& o) {
  auto key = token::load_issuer_key(o.key_file);
  if (!key) {
    std::cerr << "airlock token mint: --key: " << key.error().message << "\n";
    return 2;
  }
  auto role = token::role_from_name(o.role);
  if (!role) {
    std::cerr << "airlock token mint: --role: \"" << o.role
              << "\" is not a role (owner, template-admin, member, auditor, agent, gateway)\n";
    return 2;
  }
  auto ttl = parse_duration(o.ttl);
  if (!ttl || ttl->count() < 1000) {
    std::cerr << "airlock token mint: --ttl: " << (ttl ? "must be at least 1s" : ttl.error().message) << "\n";
    return 2;
  }
  if (*role == token::Role::agent && (o.claims.workspace_id.empty() || o.claims.workspace_name.empty())) {
    std::cerr << "airlock token mint: agent tokens need --workspace-id and --workspace (the name clients dial)\n";
    return 2;
  }
  o.claims.role = *role;
  o.claims.iat = std::time(nullptr);
  o.claims.exp = o.claims.iat + ttl->count() / 1000;
  std::cout << token::mint(*key, o.claims) << "\n";
  return 0;
}

int run_inspect(const std::string& text, const std::string& public_key) {
  auto key = token::load_public_key(public_key);
  if (!key) {
    std::cerr << "airlock token inspect: --public-key: " << key.error().message << "\n";
    return 2;
  }
  auto claims = token::verify(text, *key, std::time(nullptr));
  if (!claims) {
    std::cerr << "airlock token inspect: " << claims.error().message << "\n";
    return 1;
  }
  nlohmann::json j = {{"sub", claims->sub},   {"email", claims->email}, {"role", token::role_name(claims->role)},
                      {"iat", claims->iat},   {"exp", claims->exp},     {"jti", claims->jti}};
  if (!claims->workspace_id.empty()) j["workspace_id"] = claims->workspace_id;
  if (!claims->workspace_name.empty()) j["workspace"] = claims->workspace_name;
  if (!claims->owner.empty()) j["owner"] = claims->owner;
  std::cout << j.dump(2) << "\n";
  return 0;
}

}  // namespace

void add_token_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("token", "Create issuer keys and mint or check tokens (control plane)");
  cmd->require_subcommand(1);

  auto* keygen = cmd->add_subcommand("keygen", "Create an Ed25519 issuer key; prints its public key");
  auto out = std::make_shared<std::string>();
  keygen->add_option("--out,-o", *out, "Where to write the key file (mode 0600)")->required();
  keygen->callback([out] { throw CLI::RuntimeError(run_keygen(*out)); });

  auto* mint = cmd->add_subcommand("mint", "Sign a token for a user or an agent");
  auto m = std::make_shared<MintOptions>();
  mint->add_option("--key,-k", m->key_file, "Issuer key file from `airlock token keygen`")->required();
  mint->add_option("--sub", m->claims.sub, "User id (or agent id)")->required();
  mint->add_option("--email", m->claims.email, "User's email, recorded in audit events");
  mint->add_option("--role", m->role, "owner, template-admin, member, auditor, agent or gateway")
      ->capture_default_str();
  mint->add_option("--workspace", m->claims.workspace_name, "Agent tokens: the workspace name clients dial");
  mint->add_option("--workspace-id", m->claims.workspace_id, "Agent tokens: the workspace id");
  mint->add_option("--owner", m->claims.owner, "Agent tokens: the owning user's id");
  mint->add_option("--ttl", m->ttl, "Lifetime, e.g. 15m, 1h, 7d")->capture_default_str();
  mint->callback([m] { throw CLI::RuntimeError(run_mint(*m)); });

  auto* inspect = cmd->add_subcommand("inspect", "Verify a token and print its claims");
  auto text = std::make_shared<std::string>();
  auto pub = std::make_shared<std::string>();
  inspect->add_option("token", *text, "The token")->required();
  inspect->add_option("--public-key", *pub, "Issuer public key (base64) or a key file")->required();
  inspect->callback([text, pub] { throw CLI::RuntimeError(run_inspect(*text, *pub)); });
}

}  // namespace airlock::cli
