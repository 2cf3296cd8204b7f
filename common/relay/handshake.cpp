#include "common/relay/handshake.hpp"

namespace airlock::relay {

Result<Bytes> make_client_hello(const ServerHello& hello, const crypto::SecretKey& private_key,
                                std::string_view token, std::string_view meta_json, size_t headroom) {
  if (hello.version != kProtocolVersion)
    return make_error("the relay speaks protocol version " + std::to_string(hello.version) + ", this peer speaks " +
                      std::to_string(kProtocolVersion));
  if (token.empty()) return make_error("no token to present to the relay");
  if (token.size() > kMaxTokenSize) return make_error("token is longer than " + std::to_string(kMaxTokenSize) + " bytes");
  if (meta_json.size() > kMaxMetaSize) return make_error("hello meta is longer than " + std::to_string(kMaxMetaSize) + " bytes");
  ClientHello h;
  h.peer_key = crypto::x25519_public(private_key);
  auto proof = hello_proof(private_key, hello.relay_key, hello.challenge, h.peer_key);
  if (!proof) return proof.error();
  h.proof = *proof;
  h.token = token;
  h.meta = meta_json;
  return encode(h, headroom);
}

Result<AcceptedHello> accept_client_hello(const ClientHello& hello, const crypto::SecretKey& relay_private,
                                          const Challenge& challenge, const crypto::Key& issuer_public,
                                          int64_t now_unix) {
  if (hello.version != kProtocolVersion)
    return make_error("protocol version " + std::to_string(hello.version) + " is not supported (this relay speaks " +
                      std::to_string(kProtocolVersion) + ")");
  if (auto proof = verify_hello_proof(relay_private, hello, challenge); !proof) return proof.error();
  auto claims = token::verify(hello.token, issuer_public, now_unix);
  if (!claims) return claims.error();
  if (claims->role == token::Role::agent &&
      (claims->workspace_id.empty() || claims->workspace_name.empty() || claims->owner.empty()))
    return make_error("agent token does not name its workspace (id, name and owner are required)");
  return AcceptedHello{hello.peer_key, std::move(*claims)};
}

}  // namespace airlock::relay
