// The tunnel: WireGuard's protocol for one local static key and many peers, as a sans-I/O core.
//
// It takes datagrams and the current time in and gives datagrams to transmit, decrypted payloads,
// events and its next timer deadline out. It never touches a socket or a clock, so the same object
// runs on the libuv loop (over UDP or over relay packets), in unit tests with a fake clock and in
// the fuzzers. It is not thread-safe: one Tunnel belongs to one event loop.
//
// Driving it:
//
//   Tunnel t(local_private_key);
//   t.add_peer(peer_public_key, psk, endpoint);        // endpoint optional: learned on receive
//   on datagram from `ep`:   t.receive(bytes, ep, now);
//   to send a payload:       t.send(peer_public_key, payload, now);  // handshakes as needed
//   on timer:                t.tick(now);
//   after each call:         while (t.poll_datagram(d)) transmit d.bytes to d.endpoint / d.peer;
//                            while (t.poll_event(e))    handle e (payloads, handshakes, ...);
//                            re-arm the timer for t.next_deadline();
//
// Polling swaps buffers: reuse one Datagram and one Event across polls and, in steady state, no
// message allocates.
//
// Payloads are opaque byte strings of at most MAX_PAYLOAD_SIZE. As WireGuard does, the sender pads
// the plaintext with zeros to a multiple of 16, and the receiver gets the padded plaintext: a
// payload must be self-delimiting (an IP packet is; Airlock's stream frames carry their length).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/crypto/crypto.hpp"
#include "common/tunnel/cookie.hpp"
#include "common/tunnel/handshake.hpp"
#include "common/tunnel/keypair.hpp"
#include "common/tunnel/messages.hpp"
#include "common/tunnel/noise.hpp"
#include "common/tunnel/ratelimiter.hpp"
#include "common/util/result.hpp"

namespace airlock::tunnel {

// Where a datagram came from or goes to, as the I/O layer names it: a socket address's bytes over
// UDP, the relay peer key over the relay. The core only copies and compares it, and uses it as the
// "source" that cookies and the under-load rate limit are bound to. At most MAX_SIZE bytes.
class Endpoint {
 public:
  static constexpr size_t MAX_SIZE = 64;
  Endpoint() = default;
  explicit Endpoint(ByteView bytes) : size_(static_cast<uint8_t>(bytes.size() < MAX_SIZE ? bytes.size() : MAX_SIZE)) {
    std::copy_n(bytes.begin(), size_, data_.begin());
  }
  ByteView bytes() const { return {data_.data(), size_}; }
  bool empty() const { return size_ == 0; }
  friend bool operator==(const Endpoint& a, const Endpoint& b) {
    return a.size_ == b.size_ && std::equal(a.data_.begin(), a.data_.begin() + a.size_, b.data_.begin());
  }

 private:
  std::array<uint8_t, MAX_SIZE> data_{};
  uint8_t size_ = 0;
};

// Static public keys are random: their first bytes hash them well.
struct KeyHash {
  size_t operator()(const Key& k) const {
    size_t h;
    std::memcpy(&h, k.data(), sizeof h);
    return h;
  }
};

// The current time, read by the I/O layer. monotonic drives every timer; wall is read only for
// the TAI64N timestamp of a handshake initiation.
struct Now {
  TimePoint monotonic;
  WallTime wall;
};

// A message to transmit.
struct Datagram {
  Key peer{};         // the peer it is for; all zero for a cookie reply (sender not known yet)
  Endpoint endpoint;  // the peer's latest endpoint, or for replies where the message came from;
                      // empty if never known (over the relay: route by peer key)
  Bytes bytes;
};

struct Event {
  enum class Kind : uint8_t {
    handshake_complete,  // a new session is usable: as initiator on the response, as responder on
                         // the first message that confirms the keys (also at every rekey)
    payload,             // a decrypted payload from peer, in `payload` (zero padding included)
    peer_unreachable,    // handshake retries gave up; payloads waiting for a session were dropped
    keys_zeroed,         // no new session for ZERO_KEY_MATERIAL_TIME: all keys of peer wiped
  };
  Kind kind = Kind::payload;
  Key peer{};
  Bytes payload;
};

// What receive() did with a datagram. Everything from the network is answered with one of these,
// never with an exception; dropped messages leave every session as it was.
enum class Outcome : uint8_t {
  // accepted
  handshake_initiation,  // a response was queued
  handshake_response,    // our handshake completed
  cookie_reply,          // a cookie was stored for our next handshake message
  transport_data,        // a payload event was queued
  keepalive,             // an authenticated empty transport message
  // dropped
  malformed,             // unknown type, reserved bytes set, wrong length, oversized
  bad_mac1,              // mac1 wrong: not sent by someone who knows our public key
  cookie_sent,           // under load without a valid mac2: a cookie reply was queued instead
  rate_limited,          // under load, this source sends handshakes too fast
  handshake_failed,      // the Noise handshake did not authenticate
  unknown_peer,          // authenticated, but the static key is not one of our peers
  stale_timestamp,       // TAI64N not newer than the last accepted from this peer (a replay)
  initiation_flood,      // more than INITIATIONS_PER_SECOND initiations from this peer
  unknown_index,         // the receiver index names no handshake or keypair of ours
  unexpected_cookie,     // a cookie reply that does not decrypt or answers nothing we sent
  expired_keypair,       // the keypair is past REJECT_AFTER_TIME or REJECT_AFTER_MESSAGES
  decrypt_failed,        // the transport message did not authenticate
  replayed,              // the counter was seen already or is behind the replay window
};
inline constexpr size_t OUTCOME_COUNT = static_cast<size_t>(Outcome::replayed) + 1;
inline bool accepted(Outcome o) { return o <= Outcome::keepalive; }
const char* outcome_name(Outcome o);

enum class SendOutcome : uint8_t {
  sent,          // encrypted and queued for transmission
  staged,        // waiting for a session; a handshake was started if none is under way
  unknown_peer,
  too_large,     // more than MAX_PAYLOAD_SIZE
};

struct Stats {
  std::array<uint64_t, OUTCOME_COUNT> received{};  // by Outcome
  uint64_t initiations_sent = 0;
  uint64_t responses_sent = 0;
  uint64_t cookie_replies_sent = 0;
  uint64_t transport_sent = 0;  // data messages, keepalives excluded
  uint64_t keepalives_sent = 0;
  uint64_t staged_dropped = 0;  // payloads dropped: staging queue full or handshake gave up
  uint64_t count(Outcome o) const { return received[static_cast<size_t>(o)]; }
};

struct PeerInfo {
  Endpoint endpoint;
  bool has_session = false;                 // a current keypair (it may have expired)
  std::optional<WallTime> last_handshake;   // wall time of the last completed handshake
  uint64_t tx_bytes = 0, rx_bytes = 0;      // datagram bytes sent to / authenticated from peer
  size_t staged = 0;                        // payloads waiting for a session
  unsigned handshake_attempts = 0;
  // Introspection for tests: which local indices the three keypair slots hold (0: empty).
  uint32_t current_index = 0, previous_index = 0, next_index = 0;
  uint64_t current_sending_counter = 0;
};

class Tunnel {
 public:
  explicit Tunnel(const crypto::SecretKey& local_private_key);
  ~Tunnel();
  Tunnel(const Tunnel&) = delete;
  Tunnel& operator=(const Tunnel&) = delete;

  const Key& public_key() const { return local_.public_key; }

  // Peers are identified by their static public key. Fails for our own key or a duplicate.
  Status add_peer(const Key& public_key, const std::optional<crypto::SecretKey>& psk = std::nullopt,
                  const Endpoint& endpoint = {});
  // Forgets a peer and wipes its keys. False if unknown.
  bool remove_peer(const Key& public_key);
  bool has_peer(const Key& public_key) const;
  size_t peer_count() const { return peers_.size(); }
  // The endpoint to send to until an authenticated message arrives from another one (roaming).
  void set_endpoint(const Key& peer, const Endpoint& endpoint);

  // The I/O layer says whether it is overloaded (e.g. its handshake backlog is long). While true,
  // handshake messages need a valid mac2 (else they get a cookie reply) and are rate limited per
  // source.
  void set_under_load(bool under_load) { under_load_ = under_load; }
  bool under_load() const { return under_load_; }

  // One datagram as it arrived, with where it came from.
  Outcome receive(ByteView datagram, const Endpoint& from, const Now& now);
  // Encrypts a payload for peer, or stages it and starts a handshake when there is no session.
  SendOutcome send(const Key& peer, ByteView payload, const Now& now);
  // Starts a handshake now (subject to the REKEY_TIMEOUT rate limit), to connect before data.
  bool connect(const Key& peer, const Now& now);
  // Runs the timers whose deadline is at or before now.
  void tick(const Now& now);
  // When tick() next has something to do (it may be early; never late). Nothing if no timer.
  std::optional<TimePoint> next_deadline() const { return next_deadline_; }

  bool poll_datagram(Datagram& out);
  bool poll_event(Event& out);
  size_t pending_datagrams() const { return datagrams_.size(); }
  size_t pending_events() const { return events_.size(); }

  const Stats& stats() const { return stats_; }
  std::optional<PeerInfo> peer_info(const Key& peer) const;

 private:
  struct Peer;
  // A FIFO whose slots keep their buffers: poll swaps the caller's object in.
  template <typename T>
  class Outbox {
   public:
    T& push();
    void drop_last() { --count_; }
    bool pop(T& out);
    size_t size() const { return count_; }

   private:
    std::vector<T> slots_;
    size_t head_ = 0, count_ = 0;
  };

  Peer* find_peer(const Key& key) const;
  Peer* peer_by_index(uint32_t index) const;
  uint32_t new_index(Peer* peer);
  void free_index(uint32_t index);
  void free_indices(KeypairSlots::Dropped& dropped);
  void abandon_handshake(Peer& peer);

  Outcome receive_initiation(ByteView datagram, const Endpoint& from, const Now& now);
  Outcome receive_response(ByteView datagram, const Endpoint& from, const Now& now);
  Outcome receive_cookie_reply(ByteView datagram, const Now& now);
  Outcome receive_transport(ByteView datagram, const Endpoint& from, const Now& now);

  bool initiate_handshake(Peer& peer, const Now& now, bool is_retry);
  void send_transport(Peer& peer, Keypair& keypair, ByteView payload, const Now& now);
  void send_keepalive(Peer& peer, const Now& now);
  void stage(Peer& peer, ByteView payload);
  // Sends what is staged if there is a usable session, else starts a handshake. True if sent.
  bool flush_staged(Peer& peer, const Now& now);
  void handshake_completed(Peer& peer, const Now& now);
  void emit_event(Event::Kind kind, const Peer& peer, ByteView payload = {});
  Datagram& emit_datagram(const Peer& peer, size_t size);
  void note_deadline(const Peer& peer);
  Outcome count(Outcome o);

  noise::StaticKeypair local_;
  CookieChecker cookie_checker_;
  RateLimiter rate_limiter_;
  bool under_load_ = false;
  std::unordered_map<Key, std::unique_ptr<Peer>, KeyHash> peers_;
  std::unordered_map<uint32_t, Peer*> indices_;
  Outbox<Datagram> datagrams_;
  Outbox<Event> events_;
  std::optional<TimePoint> next_deadline_;
  Bytes receive_buffer_;  // decrypted plaintext, swapped into the payload event
  Stats stats_;
};

}  // namespace airlock::tunnel
