// WireGuard's handshake messages (paper §5.4.2-§5.4.5) on top of the Noise pattern in noise.hpp:
// the initiation carries the sender index and a TAI64N timestamp, the response both indices and an
// empty payload, and the session's keypair comes from Noise's split.
//
// These functions fill and read the Noise fields of the 148- and 92-byte messages; mac1/mac2 are
// cookie.hpp's, index allocation and peer lookup are the Tunnel's.
#pragma once

#include <memory>
#include <optional>

#include "common/tunnel/keypair.hpp"
#include "common/tunnel/messages.hpp"
#include "common/tunnel/noise.hpp"
#include "common/tunnel/tai64n.hpp"

namespace airlock::tunnel {

// A peer's handshake as initiator, between sending the initiation and receiving the response.
struct Handshake {
  noise::HandshakeState noise;
  uint32_t local_index = 0;  // our sender index in the initiation
  bool pending = false;      // an initiation was sent and no response consumed yet
};

// Writes an initiation (macs left zero) for the peer whose static key is remote_static.
[[nodiscard]] bool create_initiation(Handshake& hs, const noise::StaticKeypair& local, const Key& remote_static,
                                     uint32_t sender_index, const crypto::SecretKey& ephemeral,
                                     const Tai64n& timestamp, ByteArray<HANDSHAKE_INITIATION_SIZE>& out);

// An initiation that authenticated, before the responder knows whether the sender is a peer.
struct ConsumedInitiation {
  noise::HandshakeState noise;  // noise.remote_static is the initiator's static key
  uint32_t sender = 0;
  Tai64n timestamp{};
};
// Reads the Noise part of a 148-byte initiation whose mac1 was already checked.
std::optional<ConsumedInitiation> consume_initiation(const noise::StaticKeypair& local, ByteView message);

// Writes the response (macs left zero) to a consumed initiation.
[[nodiscard]] bool create_response(ConsumedInitiation& initiation, uint32_t sender_index,
                                   const crypto::SecretKey& ephemeral, const crypto::SecretKey& psk,
                                   ByteArray<HANDSHAKE_RESPONSE_SIZE>& out);

// Reads a 92-byte response to our pending initiation. On failure hs is unchanged, so a forged
// response cannot break a handshake in progress.
[[nodiscard]] bool consume_response(Handshake& hs, const noise::StaticKeypair& local, const crypto::SecretKey& psk,
                                    ByteView message);

// The session's keypair from a finished handshake: the initiator sends with the first key of the
// split, the responder with the second.
std::unique_ptr<Keypair> begin_session(const noise::HandshakeState& noise, bool initiator, uint32_t local_index,
                                       uint32_t remote_index, TimePoint now);

}  // namespace airlock::tunnel
