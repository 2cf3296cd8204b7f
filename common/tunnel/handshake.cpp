#include "common/tunnel/handshake.hpp"

namespace airlock::tunnel {

using crypto::SecretKey;

bool create_initiation(Handshake& hs, const noise::StaticKeypair& local, const Key& remote_static,
                       uint32_t sender_index, const SecretKey& ephemeral, const Tai64n& timestamp,
                       ByteArray<HANDSHAKE_INITIATION_SIZE>& out) {
  out.fill(0);
  hs.pending = false;
  hs.noise = noise::HandshakeState{};
  hs.noise.remote_static = remote_static;
  noise::initialize(hs.noise, noise::wireguard_protocol(), remote_static);
  store_le32(out.data(), static_cast<uint32_t>(MessageType::handshake_initiation));
  store_le32(out.data() + 4, sender_index);
  if (!noise::write_message_1(hs.noise, local, ephemeral, timestamp, out.data() + INITIATION_NOISE_OFFSET))
    return false;
  hs.local_index = sender_index;
  hs.pending = true;
  return true;
}

std::optional<ConsumedInitiation> consume_initiation(const noise::StaticKeypair& local, ByteView message) {
  if (message.size() != HANDSHAKE_INITIATION_SIZE) return std::nullopt;
  ConsumedInitiation c;
  c.sender = load_le32(message.data() + 4);
  noise::initialize(c.noise, noise::wireguard_protocol(), local.public_key);
  if (!noise::read_message_1(c.noise, local, message.subspan(INITIATION_NOISE_OFFSET, INITIATION_NOISE_SIZE),
                             c.timestamp.data()))
    return std::nullopt;
  return c;
}

bool create_response(ConsumedInitiation& initiation, uint32_t sender_index, const SecretKey& ephemeral,
                     const SecretKey& psk, ByteArray<HANDSHAKE_RESPONSE_SIZE>& out) {
  out.fill(0);
  store_le32(out.data(), static_cast<uint32_t>(MessageType::handshake_response));
  store_le32(out.data() + 4, sender_index);
  store_le32(out.data() + 8, initiation.sender);
  return noise::write_message_2(initiation.noise, ephemeral, psk, ByteView{}, out.data() + RESPONSE_NOISE_OFFSET);
}

bool consume_response(Handshake& hs, const noise::StaticKeypair& local, const SecretKey& psk, ByteView message) {
  if (!hs.pending || message.size() != HANDSHAKE_RESPONSE_SIZE) return false;
  noise::HandshakeState trial = hs.noise;  // commit only if the response authenticates
  if (!noise::read_message_2(trial, local, psk, message.subspan(RESPONSE_NOISE_OFFSET, RESPONSE_NOISE_SIZE),
                             nullptr))
    return false;
  hs.noise = trial;
  return true;
}

std::unique_ptr<Keypair> begin_session(const noise::HandshakeState& noise, bool initiator, uint32_t local_index,
                                       uint32_t remote_index, TimePoint now) {
  SecretKey initiator_to_responder, responder_to_initiator;
  noise::split(noise, initiator_to_responder, responder_to_initiator);
  if (initiator)
    return std::make_unique<Keypair>(initiator_to_responder, responder_to_initiator, true, local_index,
                                     remote_index, now);
  return std::make_unique<Keypair>(responder_to_initiator, initiator_to_responder, false, local_index,
                                   remote_index, now);
}

}  // namespace airlock::tunnel
