// The two halves of the relay link handshake as pure functions (see protocol.hpp for the frames):
// the peer answers a server hello; the relay checks the answer. No I/O, no clock: `now` comes in.
#pragma once

#include <string>
#include <string_view>

#include "common/relay/protocol.hpp"
#include "common/token/token.hpp"

namespace airlock::relay {

// Peer side: the client hello frame answering `hello`, proving possession of private_key.
// meta_json: empty or a JSON object of at most kMaxMetaSize bytes.
Result<Bytes> make_client_hello(const ServerHello& hello, const crypto::SecretKey& private_key,
                                std::string_view token, std::string_view meta_json, size_t headroom = 0);

// What the relay learns from an accepted hello.
struct AcceptedHello {
  PeerKey key{};
  token::Claims claims;
};

// Relay side: version, proof of key possession, then the token (signature, expiry; an agent token
// must name its workspace). Errors are meant for the peer to read in the error frame.
Result<AcceptedHello> accept_client_hello(const ClientHello& hello, const crypto::SecretKey& relay_private,
                                          const Challenge& challenge, const crypto::Key& issuer_public,
                                          int64_t now_unix);

}  // namespace airlock::relay
