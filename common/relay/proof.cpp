// Proof of key possession for the client hello (see protocol.hpp).
#include "common/relay/protocol.hpp"

namespace airlock::relay {

Result<Proof> hello_proof(const crypto::SecretKey& own_private, const PeerKey& their_public,
                          const Challenge& challenge, const PeerKey& client_public) {
  auto shared = crypto::x25519(own_private, their_public);
  if (!shared) return make_error("proof of key possession: " + shared.error().message);
  crypto::SecretKey key(crypto::blake2s256({as_bytes(kProofLabel), ByteView(shared->bytes)}));
  ByteArray<kChallengeSize + kKeySize> message;
  std::copy(challenge.begin(), challenge.end(), message.begin());
  std::copy(client_public.begin(), client_public.end(), message.begin() + kChallengeSize);
  return crypto::hmac_blake2s(key, message);
}

Status verify_hello_proof(const crypto::SecretKey& relay_private, const ClientHello& hello,
                          const Challenge& challenge) {
  auto expected = hello_proof(relay_private, hello.peer_key, challenge, hello.peer_key);
  if (!expected) return expected.error();
  if (!crypto::equal_ct(*expected, hello.proof))
    return make_error("the hello's proof does not match its key: the peer does not hold the private key");
  return Ok{};
}

}  // namespace airlock::relay
