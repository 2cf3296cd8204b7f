#include "common/tunnel/tunnel.hpp"

#include <cstring>
#include <utility>

#include "common/tunnel/tai64n.hpp"
#include "common/tunnel/timers.hpp"

namespace airlock::tunnel {

using crypto::SecretKey;

struct Tunnel::Peer {
  Peer(const Key& key, const SecretKey& psk, const Endpoint& endpoint)
      : public_key(key), psk(psk), endpoint(endpoint), cookie(key) {}

  Key public_key;
  SecretKey psk;  // all zero when none is configured, as in WireGuard
  Endpoint endpoint;
  Cookie cookie;
  Handshake handshake;
  KeypairSlots keypairs;
  PeerTimers timers;
  std::optional<TimePoint> last_sent_handshake;
  bool sent_lastminute_handshake = false;
  Tai64n last_sent_timestamp{};
  Tai64n latest_timestamp{};  // the greatest accepted from this peer
  std::optional<TimePoint> last_initiation_consumption;
  std::deque<Bytes> staged;
  uint64_t tx_bytes = 0, rx_bytes = 0;
  std::optional<WallTime> last_handshake;
};

namespace {

// 0 to REKEY_TIMEOUT_JITTER_MAX, so peers that lost packets together do not retry together.
Duration jitter() {
  return Duration(static_cast<int64_t>(crypto::random_u64() % (REKEY_TIMEOUT_JITTER_MAX.count() + 1)));
}

}  // namespace

const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::handshake_initiation: return "handshake_initiation";
    case Outcome::handshake_response: return "handshake_response";
    case Outcome::cookie_reply: return "cookie_reply";
    case Outcome::transport_data: return "transport_data";
    case Outcome::keepalive: return "keepalive";
    case Outcome::malformed: return "malformed";
    case Outcome::bad_mac1: return "bad_mac1";
    case Outcome::cookie_sent: return "cookie_sent";
    case Outcome::rate_limited: return "rate_limited";
    case Outcome::handshake_failed: return "handshake_failed";
    case Outcome::unknown_peer: return "unknown_peer";
    case Outcome::stale_timestamp: return "stale_timestamp";
    case Outcome::initiation_flood: return "initiation_flood";
    case Outcome::unknown_index: return "unknown_index";
    case Outcome::unexpected_cookie: return "unexpected_cookie";
    case Outcome::expired_keypair: return "expired_keypair";
    case Outcome::decrypt_failed: return "decrypt_failed";
    case Outcome::replayed: return "replayed";
  }
  return "unknown";
}

// --- Outbox --------------------------------------------------------------------------------------

template <typename T>
T& Tunnel::Outbox<T>::push() {
  if (count_ == slots_.size()) {
    // Full: unroll the ring into a larger one, oldest first.
    std::vector<T> bigger(std::max<size_t>(8, slots_.size() * 2));
    for (size_t i = 0; i < count_; ++i) bigger[i] = std::move(slots_[(head_ + i) % slots_.size()]);
    slots_ = std::move(bigger);
    head_ = 0;
  }
  T& slot = slots_[(head_ + count_) % slots_.size()];
  ++count_;
  return slot;
}

template <typename T>
bool Tunnel::Outbox<T>::pop(T& out) {
  if (count_ == 0) return false;
  std::swap(out, slots_[head_]);  // the caller's old buffers stay here for reuse
  head_ = (head_ + 1) % slots_.size();
  --count_;
  return true;
}

// --- peers and indices ---------------------------------------------------------------------------

Tunnel::Tunnel(const SecretKey& local_private_key)
    : local_(local_private_key), cookie_checker_(local_.public_key) {}

Tunnel::~Tunnel() = default;

Status Tunnel::add_peer(const Key& public_key, const std::optional<SecretKey>& psk, const Endpoint& endpoint) {
  if (public_key == local_.public_key) return make_error("a peer cannot have our own public key");
  if (peers_.contains(public_key)) return make_error("peer " + crypto::key_to_base64(public_key) + " exists");
  peers_.emplace(public_key, std::make_unique<Peer>(public_key, psk.value_or(SecretKey{}), endpoint));
  return Ok{};
}

bool Tunnel::remove_peer(const Key& public_key) {
  auto it = peers_.find(public_key);
  if (it == peers_.end()) return false;
  Peer& peer = *it->second;
  abandon_handshake(peer);
  auto dropped = peer.keypairs.clear();
  free_indices(dropped);
  peers_.erase(it);
  return true;
}

bool Tunnel::has_peer(const Key& public_key) const { return peers_.contains(public_key); }

void Tunnel::set_endpoint(const Key& key, const Endpoint& endpoint) {
  if (Peer* peer = find_peer(key)) peer->endpoint = endpoint;
}

Tunnel::Peer* Tunnel::find_peer(const Key& key) const {
  auto it = peers_.find(key);
  return it == peers_.end() ? nullptr : it->second.get();
}

Tunnel::Peer* Tunnel::peer_by_index(uint32_t index) const {
  auto it = indices_.find(index);
  return it == indices_.end() ? nullptr : it->second;
}

uint32_t Tunnel::new_index(Peer* peer) {
  // Random, so an index says nothing about how many sessions we hold.
  for (;;) {
    uint32_t index = crypto::random_u32();
    if (indices_.emplace(index, peer).second) return index;
  }
}

void Tunnel::free_index(uint32_t index) { indices_.erase(index); }

void Tunnel::free_indices(KeypairSlots::Dropped& dropped) {
  for (auto& keypair : dropped)
    if (keypair) free_index(keypair->local_index);
}

void Tunnel::abandon_handshake(Peer& peer) {
  if (peer.handshake.pending) free_index(peer.handshake.local_index);
  peer.handshake = Handshake{};
}

std::optional<PeerInfo> Tunnel::peer_info(const Key& key) const {
  const Peer* peer = find_peer(key);
  if (!peer) return std::nullopt;
  PeerInfo info;
  info.endpoint = peer->endpoint;
  info.last_handshake = peer->last_handshake;
  info.tx_bytes = peer->tx_bytes;
  info.rx_bytes = peer->rx_bytes;
  info.staged = peer->staged.size();
  info.handshake_attempts = peer->timers.handshake_attempts;
  if (const Keypair* k = peer->keypairs.current()) {
    info.has_session = true;
    info.current_index = k->local_index;
    info.current_sending_counter = k->sending_counter;
  }
  if (const Keypair* k = peer->keypairs.previous()) info.previous_index = k->local_index;
  if (const Keypair* k = peer->keypairs.next()) info.next_index = k->local_index;
  return info;
}

// --- output --------------------------------------------------------------------------------------

Datagram& Tunnel::emit_datagram(const Peer& peer, size_t size) {
  Datagram& d = datagrams_.push();
  d.peer = peer.public_key;
  d.endpoint = peer.endpoint;
  d.bytes.resize(size);
  return d;
}

void Tunnel::emit_event(Event::Kind kind, const Peer& peer, ByteView payload) {
  Event& e = events_.push();
  e.kind = kind;
  e.peer = peer.public_key;
  e.payload.assign(payload.begin(), payload.end());
}

bool Tunnel::poll_datagram(Datagram& out) { return datagrams_.pop(out); }
bool Tunnel::poll_event(Event& out) { return events_.pop(out); }

void Tunnel::note_deadline(const Peer& peer) {
  auto deadline = peer.timers.next();
  if (deadline && (!next_deadline_ || *deadline < *next_deadline_)) next_deadline_ = deadline;
}

Outcome Tunnel::count(Outcome o) {
  ++stats_.received[static_cast<size_t>(o)];
  return o;
}

// --- receiving -----------------------------------------------------------------------------------

Outcome Tunnel::receive(ByteView datagram, const Endpoint& from, const Now& now) {
  auto type = message_type(datagram);
  if (!type) return count(Outcome::malformed);
  switch (*type) {
    case MessageType::handshake_initiation:
    case MessageType::handshake_response:
      // mac1 first: it costs one BLAKE2s, the handshake costs four X25519.
      if (!cookie_checker_.check_mac1(datagram)) return count(Outcome::bad_mac1);
      if (under_load_) {
        if (!cookie_checker_.check_mac2(datagram, from.bytes(), now.monotonic)) {
          auto reply = cookie_checker_.make_reply(datagram, load_le32(datagram.data() + 4), from.bytes(),
                                                  now.monotonic);
          Datagram& d = datagrams_.push();
          d.peer = Key{};
          d.endpoint = from;
          d.bytes.assign(reply.begin(), reply.end());
          ++stats_.cookie_replies_sent;
          return count(Outcome::cookie_sent);
        }
        if (!rate_limiter_.allow(from.bytes(), now.monotonic)) return count(Outcome::rate_limited);
      }
      if (*type == MessageType::handshake_initiation) return count(receive_initiation(datagram, from, now));
      return count(receive_response(datagram, from, now));
    case MessageType::cookie_reply:
      return count(receive_cookie_reply(datagram, now));
    case MessageType::transport_data:
      return count(receive_transport(datagram, from, now));
  }
  return count(Outcome::malformed);
}

Outcome Tunnel::receive_initiation(ByteView datagram, const Endpoint& from, const Now& now) {
  auto initiation = consume_initiation(local_, datagram);
  if (!initiation) return Outcome::handshake_failed;
  Peer* peer = find_peer(initiation->noise.remote_static);
  if (!peer) return Outcome::unknown_peer;
  // Checked only now that the message authenticated, and committed only if both hold, so a
  // replayed initiation changes nothing.
  if (!tai64n_after(initiation->timestamp, peer->latest_timestamp)) return Outcome::stale_timestamp;
  if (peer->last_initiation_consumption &&
      now.monotonic - *peer->last_initiation_consumption < INITIATION_MIN_INTERVAL)
    return Outcome::initiation_flood;

  const uint32_t index = new_index(peer);
  ByteArray<HANDSHAKE_RESPONSE_SIZE> response;
  if (!create_response(*initiation, index, crypto::x25519_generate(), peer->psk, response)) {
    free_index(index);
    return Outcome::handshake_failed;
  }
  // Our own initiation in flight, if any, is superseded: one handshake per peer, as WireGuard.
  abandon_handshake(*peer);
  peer->latest_timestamp = initiation->timestamp;
  peer->last_initiation_consumption = now.monotonic;
  peer->cookie.add_macs(response, now.monotonic);
  auto dropped = peer->keypairs.add(begin_session(initiation->noise, false, index, initiation->sender, now.monotonic));
  free_indices(dropped);

  peer->endpoint = from;
  peer->rx_bytes += datagram.size();
  peer->tx_bytes += response.size();
  Datagram& d = emit_datagram(*peer, response.size());
  std::copy(response.begin(), response.end(), d.bytes.begin());
  ++stats_.responses_sent;
  peer->timers.any_authenticated_packet_received();
  peer->timers.any_authenticated_packet_sent();
  peer->timers.session_derived(now.monotonic);
  note_deadline(*peer);
  return Outcome::handshake_initiation;
}

Outcome Tunnel::receive_response(ByteView datagram, const Endpoint& from, const Now& now) {
  const uint32_t sender = load_le32(datagram.data() + 4);
  const uint32_t receiver = load_le32(datagram.data() + 8);
  Peer* peer = peer_by_index(receiver);
  if (!peer || !peer->handshake.pending || peer->handshake.local_index != receiver) return Outcome::unknown_index;
  if (!consume_response(peer->handshake, local_, peer->psk, datagram)) return Outcome::handshake_failed;

  // The handshake's index now names the new keypair.
  auto keypair = begin_session(peer->handshake.noise, true, receiver, sender, now.monotonic);
  peer->handshake = Handshake{};
  auto dropped = peer->keypairs.add(std::move(keypair));
  free_indices(dropped);

  peer->endpoint = from;
  peer->rx_bytes += datagram.size();
  peer->timers.any_authenticated_packet_received();
  peer->timers.session_derived(now.monotonic);
  handshake_completed(*peer, now);
  // Confirm the keys to the responder at once: what is staged, or else a keepalive.
  send_keepalive(*peer, now);
  note_deadline(*peer);
  return Outcome::handshake_response;
}

Outcome Tunnel::receive_cookie_reply(ByteView datagram, const Now& now) {
  auto reply = parse_cookie_reply(datagram);
  if (!reply) return Outcome::malformed;
  Peer* peer = peer_by_index(reply->receiver);
  if (!peer) return Outcome::unknown_index;
  // Nothing is sent now: the retransmission timer retries, with mac2.
  if (!peer->cookie.consume_reply(*reply, now.monotonic)) return Outcome::unexpected_cookie;
  return Outcome::cookie_reply;
}

Outcome Tunnel::receive_transport(ByteView datagram, const Endpoint& from, const Now& now) {
  const uint32_t receiver = load_le32(datagram.data() + 4);
  const uint64_t counter = load_le64(datagram.data() + 8);
  Peer* peer = peer_by_index(receiver);
  Keypair* keypair = peer ? peer->keypairs.find(receiver) : nullptr;
  if (!keypair) return Outcome::unknown_index;
  if (!keypair->can_receive(now.monotonic)) return Outcome::expired_keypair;
  // A cheap filter before decrypting; the window moves only after authentication.
  if (!keypair->receiving_counter.would_accept(counter)) return Outcome::replayed;

  ByteView ciphertext = datagram.subspan(TRANSPORT_HEADER_SIZE);
  receive_buffer_.resize(ciphertext.size() - AEAD_TAG_SIZE);
  if (!keypair->receiving.open(counter, ciphertext, {}, receive_buffer_.data())) return Outcome::decrypt_failed;
  if (!keypair->receiving_counter.check_and_update(counter)) return Outcome::replayed;

  // Authenticated from here on.
  KeypairSlots::Dropped dropped;
  const bool confirmed = peer->keypairs.received_with(keypair, dropped);
  free_indices(dropped);
  if (confirmed) handshake_completed(*peer, now);
  peer->endpoint = from;
  peer->rx_bytes += datagram.size();
  peer->timers.any_authenticated_packet_received();

  const bool is_keepalive = receive_buffer_.empty();
  if (!is_keepalive) {
    peer->timers.data_received(now.monotonic);
    Event& e = events_.push();
    e.kind = Event::Kind::payload;
    e.peer = peer->public_key;
    std::swap(e.payload, receive_buffer_);
  }
  if (confirmed) flush_staged(*peer, now);
  // As initiator, rekey before the responder's traffic hits REJECT_AFTER_TIME.
  if (Keypair* current = peer->keypairs.current();
      current && !peer->sent_lastminute_handshake && rekey_due_after_receive(current->initiator, current->age(now.monotonic))) {
    peer->sent_lastminute_handshake = true;
    initiate_handshake(*peer, now, false);
  }
  note_deadline(*peer);
  return is_keepalive ? Outcome::keepalive : Outcome::transport_data;
}

// --- sending -------------------------------------------------------------------------------------

SendOutcome Tunnel::send(const Key& key, ByteView payload, const Now& now) {
  if (payload.size() > MAX_PAYLOAD_SIZE) return SendOutcome::too_large;
  Peer* peer = find_peer(key);
  if (!peer) return SendOutcome::unknown_peer;
  Keypair* keypair = peer->keypairs.current();
  // The common case goes straight to the wire; staged payloads go first to keep the order.
  if (peer->staged.empty() && keypair && keypair->can_send(now.monotonic)) {
    send_transport(*peer, *keypair, payload, now);
    note_deadline(*peer);
    return SendOutcome::sent;
  }
  stage(*peer, payload);
  const bool sent = flush_staged(*peer, now);
  note_deadline(*peer);
  return sent ? SendOutcome::sent : SendOutcome::staged;
}

bool Tunnel::connect(const Key& key, const Now& now) {
  Peer* peer = find_peer(key);
  if (!peer) return false;
  const bool sent = initiate_handshake(*peer, now, false);
  note_deadline(*peer);
  return sent;
}

void Tunnel::stage(Peer& peer, ByteView payload) {
  if (peer.staged.size() >= MAX_STAGED_PACKETS) {
    peer.staged.pop_front();
    ++stats_.staged_dropped;
  }
  peer.staged.emplace_back(payload.begin(), payload.end());
}

bool Tunnel::flush_staged(Peer& peer, const Now& now) {
  if (peer.staged.empty()) return false;
  Keypair* keypair = peer.keypairs.current();
  bool sent = false;
  while (!peer.staged.empty()) {
    if (!keypair || !keypair->can_send(now.monotonic)) {
      initiate_handshake(peer, now, false);
      return sent;
    }
    Bytes payload = std::move(peer.staged.front());
    peer.staged.pop_front();
    send_transport(peer, *keypair, payload, now);
    sent = true;
  }
  return sent;
}

void Tunnel::send_transport(Peer& peer, Keypair& keypair, ByteView payload, const Now& now) {
  const size_t padded = padded_size(payload.size());
  const size_t size = TRANSPORT_HEADER_SIZE + padded + AEAD_TAG_SIZE;
  {
    Datagram& d = emit_datagram(peer, size);
    uint8_t* p = d.bytes.data();
    const uint64_t counter = keypair.sending_counter++;
    write_transport_header(p, {keypair.remote_index, counter});
    // Sealed from where the payload lies, padding included: no copy into the datagram first.
    keypair.sending.seal_padded(counter, payload, padded - payload.size(), p + TRANSPORT_HEADER_SIZE);
  }  // d may move once more datagrams are pushed
  peer.tx_bytes += size;
  peer.timers.any_authenticated_packet_sent();
  if (payload.empty()) {
    ++stats_.keepalives_sent;
  } else {
    ++stats_.transport_sent;
    if (!peer.timers.new_handshake) peer.timers.data_sent(now.monotonic, jitter());
  }
  if (rekey_due_after_send(keypair.initiator, keypair.sending_counter, keypair.age(now.monotonic)))
    initiate_handshake(peer, now, false);
}

void Tunnel::send_keepalive(Peer& peer, const Now& now) {
  // Something already waiting serves as well as an empty message.
  if (peer.staged.empty()) stage(peer, {});
  flush_staged(peer, now);
}

bool Tunnel::initiate_handshake(Peer& peer, const Now& now, bool is_retry) {
  if (!is_retry) peer.timers.handshake_attempts = 0;
  // At most one initiation per REKEY_TIMEOUT, however much traffic asks for one.
  if (peer.last_sent_handshake && now.monotonic - *peer.last_sent_handshake < REKEY_TIMEOUT) return false;
  peer.last_sent_handshake = now.monotonic;

  abandon_handshake(peer);
  const uint32_t index = new_index(&peer);
  // The responder wants timestamps to grow; if our wall clock stepped back, step past the last.
  Tai64n timestamp = tai64n(now.wall);
  if (!tai64n_after(timestamp, peer.last_sent_timestamp)) timestamp = tai64n_next(peer.last_sent_timestamp);
  ByteArray<HANDSHAKE_INITIATION_SIZE> initiation;
  if (!create_initiation(peer.handshake, local_, peer.public_key, index, crypto::x25519_generate(), timestamp,
                         initiation)) {
    free_index(index);
    peer.handshake = Handshake{};
    return false;
  }
  peer.last_sent_timestamp = timestamp;
  peer.cookie.add_macs(initiation, now.monotonic);
  Datagram& d = emit_datagram(peer, initiation.size());
  std::copy(initiation.begin(), initiation.end(), d.bytes.begin());
  peer.tx_bytes += initiation.size();
  ++stats_.initiations_sent;
  peer.timers.any_authenticated_packet_sent();
  peer.timers.handshake_initiated(now.monotonic, jitter());
  note_deadline(peer);
  return true;
}

void Tunnel::handshake_completed(Peer& peer, const Now& now) {
  peer.timers.handshake_complete();
  peer.sent_lastminute_handshake = false;
  peer.last_handshake = now.wall;
  emit_event(Event::Kind::handshake_complete, peer);
}

// --- timers --------------------------------------------------------------------------------------

void Tunnel::tick(const Now& now) {
  const TimePoint t = now.monotonic;
  std::optional<TimePoint> earliest;
  for (auto& [key, owned] : peers_) {
    Peer& peer = *owned;
    PeerTimers& timers = peer.timers;

    if (PeerTimers::expired(timers.retransmit_handshake, t)) {
      if (timers.handshake_attempts > MAX_TIMER_HANDSHAKES) {
        // Give up: drop what waited for this session, and wipe what is left of it later.
        timers.send_keepalive.reset();
        stats_.staged_dropped += peer.staged.size();
        peer.staged.clear();
        if (!timers.zero_key_material) timers.zero_key_material = t + ZERO_KEY_MATERIAL_TIME;
        emit_event(Event::Kind::peer_unreachable, peer);
      } else {
        ++timers.handshake_attempts;
        initiate_handshake(peer, now, true);
      }
    }
    if (PeerTimers::expired(timers.send_keepalive, t)) {
      send_keepalive(peer, now);
      if (timers.need_another_keepalive) {
        timers.need_another_keepalive = false;
        timers.send_keepalive = t + KEEPALIVE_TIMEOUT;
      }
    }
    if (PeerTimers::expired(timers.new_handshake, t)) {
      // We sent data and heard nothing for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT: start over.
      initiate_handshake(peer, now, false);
    }
    if (PeerTimers::expired(timers.zero_key_material, t)) {
      abandon_handshake(peer);
      auto dropped = peer.keypairs.clear();
      free_indices(dropped);
      emit_event(Event::Kind::keys_zeroed, peer);
    }
    if (auto next = timers.next(); next && (!earliest || *next < *earliest)) earliest = next;
  }
  next_deadline_ = earliest;
}

}  // namespace airlock::tunnel
