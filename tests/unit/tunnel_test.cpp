// Tunnels wired back to back in memory with a fake clock: handshakes, payloads, every kind of bad
// message, key rotation and confirmation, cookies under load, rate limits and WireGuard's timers.
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/crypto/crypto.hpp"
#include "common/tunnel/tunnel.hpp"

using namespace airlock;
using namespace airlock::tunnel;
using namespace std::chrono_literals;
using crypto::SecretKey;

namespace {

struct FakeClock {
  TimePoint mono = TimePoint{} + 100h;
  WallTime wall = WallTime{} + std::chrono::seconds(1'700'000'000);
  Now now() const { return {mono, wall}; }
  void advance(Duration d) {
    mono += d;
    wall += std::chrono::duration_cast<WallTime::duration>(d);
  }
};

struct Node {
  explicit Node(std::string_view name) : key(crypto::x25519_generate()), tunnel(key), endpoint(as_bytes(name)) {}
  SecretKey key;
  Tunnel tunnel;
  Endpoint endpoint;
  std::vector<Event> events;
  std::vector<Outcome> outcomes;

  Key pub() const { return tunnel.public_key(); }
  size_t count_events(Event::Kind kind) const {
    return std::count_if(events.begin(), events.end(), [&](const Event& e) { return e.kind == kind; });
  }
  std::vector<Bytes> payloads() const {
    std::vector<Bytes> out;
    for (const auto& e : events)
      if (e.kind == Event::Kind::payload) out.push_back(e.payload);
    return out;
  }
  size_t count_outcome(Outcome o) const { return std::count(outcomes.begin(), outcomes.end(), o); }
};

struct Sent {
  TimePoint at;
  const Node* from;
  Datagram datagram;
  bool delivered;
};

MessageType type_of(const Datagram& d) { return static_cast<MessageType>(d.bytes.at(0)); }

// Moves datagrams between nodes by endpoint until nothing is left, and drives their timers.
struct Net {
  FakeClock clock;
  std::vector<Node*> nodes;
  std::function<bool(const Node& from, const Datagram&)> deliver_if = [](const Node&, const Datagram&) { return true; };
  std::vector<Sent> sent;

  Node* node_at(const Endpoint& e) {
    for (Node* n : nodes)
      if (n->endpoint == e) return n;
    return nullptr;
  }

  void drain_events() {
    for (Node* n : nodes) {
      Event e;
      while (n->tunnel.poll_event(e)) n->events.push_back(e);
    }
  }

  void pump() {
    for (int rounds = 0; rounds < 10000; ++rounds) {
      bool moved = false;
      for (Node* n : nodes) {
        Datagram d;
        while (n->tunnel.poll_datagram(d)) {
          moved = true;
          const bool deliver = deliver_if(*n, d);
          sent.push_back({clock.mono, n, d, deliver});
          if (!deliver) continue;
          if (Node* to = node_at(d.endpoint)) to->outcomes.push_back(to->tunnel.receive(d.bytes, n->endpoint, clock.now()));
        }
      }
      drain_events();
      if (!moved) return;
    }
    FAIL("datagrams kept flowing");
  }

  std::optional<TimePoint> next_deadline() const {
    std::optional<TimePoint> d;
    for (const Node* n : nodes)
      if (auto x = n->tunnel.next_deadline(); x && (!d || *x < *d)) d = x;
    return d;
  }

  void tick_all() {
    for (Node* n : nodes) n->tunnel.tick(clock.now());
    pump();
  }

  // Runs every timer up to target, in order, then sets the clock to target.
  void run_until(TimePoint target) {
    for (int guard = 0; guard < 1'000'000; ++guard) {
      auto d = next_deadline();
      if (!d || *d > target) break;
      if (*d > clock.mono) clock.advance(*d - clock.mono);
      tick_all();
    }
    if (target > clock.mono) clock.advance(target - clock.mono);
    tick_all();
  }
  void run_for(Duration d) { run_until(clock.mono + d); }

  size_t count_sent(const Node& from, MessageType type, TimePoint since = TimePoint{}) const {
    return std::count_if(sent.begin(), sent.end(), [&](const Sent& s) {
      return s.from == &from && type_of(s.datagram) == type && s.at >= since;
    });
  }
};

// Two peers that know each other; a's peer entry for b has b's endpoint, b learns a's.
struct Pair {
  Node a{"a"}, b{"b"};
  Net net;
  explicit Pair(std::optional<SecretKey> psk = std::nullopt) {
    REQUIRE(a.tunnel.add_peer(b.pub(), psk, b.endpoint).ok());
    REQUIRE(b.tunnel.add_peer(a.pub(), psk).ok());
    net.nodes = {&a, &b};
  }
  Now now() const { return net.clock.now(); }
  void handshake() {
    REQUIRE(a.tunnel.connect(b.pub(), now()));
    net.pump();
    REQUIRE(a.count_events(Event::Kind::handshake_complete) >= 1);
    REQUIRE(b.count_events(Event::Kind::handshake_complete) >= 1);  // a's keepalive confirmed it
  }
};

Bytes text(std::string_view s) { return Bytes(s.begin(), s.end()); }

// What a receiver sees: the payload and WireGuard's zero padding to 16.
bool is_padded(const Bytes& got, const Bytes& sent) {
  if (got.size() != padded_size(sent.size())) return false;
  if (!std::equal(sent.begin(), sent.end(), got.begin())) return false;
  return std::all_of(got.begin() + static_cast<ptrdiff_t>(sent.size()), got.end(), [](uint8_t b) { return b == 0; });
}

// Takes the datagrams a node queued, without delivering them.
std::vector<Datagram> take(Node& n) {
  std::vector<Datagram> out;
  Datagram d;
  while (n.tunnel.poll_datagram(d)) out.push_back(d);
  return out;
}

}  // namespace

TEST_CASE("two tunnels complete a handshake and exchange payloads both ways") {
  Pair p;
  CHECK(p.a.tunnel.send(p.b.pub(), text("hello"), p.now()) == SendOutcome::staged);
  auto init = take(p.a);
  REQUIRE(init.size() == 1);
  CHECK(init[0].bytes.size() == HANDSHAKE_INITIATION_SIZE);
  CHECK(init[0].endpoint == p.b.endpoint);
  CHECK(init[0].peer == p.b.pub());

  CHECK(p.b.tunnel.receive(init[0].bytes, p.a.endpoint, p.now()) == Outcome::handshake_initiation);
  auto resp = take(p.b);
  REQUIRE(resp.size() == 1);
  CHECK(resp[0].bytes.size() == HANDSHAKE_RESPONSE_SIZE);
  CHECK(resp[0].endpoint == p.a.endpoint);  // learned from the initiation

  CHECK(p.a.tunnel.receive(resp[0].bytes, p.b.endpoint, p.now()) == Outcome::handshake_response);
  auto data = take(p.a);
  REQUIRE(data.size() == 1);  // the staged payload, which also confirms the keys
  CHECK(type_of(data[0]) == MessageType::transport_data);
  CHECK(data[0].bytes.size() == TRANSPORT_HEADER_SIZE + 16 + AEAD_TAG_SIZE);

  CHECK(p.b.tunnel.receive(data[0].bytes, p.a.endpoint, p.now()) == Outcome::transport_data);
  p.net.drain_events();
  REQUIRE(p.b.payloads().size() == 1);
  CHECK(is_padded(p.b.payloads()[0], text("hello")));
  CHECK(p.b.events[0].kind == Event::Kind::handshake_complete);  // before the payload it confirmed
  CHECK(p.b.events[1].peer == p.a.pub());

  CHECK(p.b.tunnel.send(p.a.pub(), text("world, from b"), p.now()) == SendOutcome::sent);
  p.net.pump();
  REQUIRE(p.a.payloads().size() == 1);
  CHECK(is_padded(p.a.payloads()[0], text("world, from b")));

  auto ia = p.a.tunnel.peer_info(p.b.pub());
  REQUIRE(ia);
  CHECK(ia->last_handshake.has_value());
  CHECK(ia->tx_bytes > 0);
  CHECK(ia->rx_bytes > 0);
}

TEST_CASE("payload sizes: empty is a keepalive, 64 KiB is the largest, larger is refused") {
  Pair p;
  p.handshake();
  const size_t before = p.b.payloads().size();
  CHECK(p.a.tunnel.send(p.b.pub(), {}, p.now()) == SendOutcome::sent);
  p.net.pump();
  CHECK(p.b.payloads().size() == before);
  CHECK(p.b.outcomes.back() == Outcome::keepalive);

  Bytes big(MAX_PAYLOAD_SIZE);
  crypto::random_bytes(big);
  CHECK(p.a.tunnel.send(p.b.pub(), big, p.now()) == SendOutcome::sent);
  p.net.pump();
  REQUIRE(p.b.payloads().size() == before + 1);
  CHECK(p.b.payloads().back() == big);
  CHECK(p.a.tunnel.send(p.b.pub(), Bytes(MAX_PAYLOAD_SIZE + 1), p.now()) == SendOutcome::too_large);
  CHECK(p.a.tunnel.send(crypto::Key{}, text("x"), p.now()) == SendOutcome::unknown_peer);

  for (size_t n : {1, 15, 16, 17, 1000, 1400}) {
    Bytes payload(n, 0xab);
    REQUIRE(p.a.tunnel.send(p.b.pub(), payload, p.now()) == SendOutcome::sent);
    p.net.pump();
    CHECK(is_padded(p.b.payloads().back(), payload));
  }
}

TEST_CASE("replayed, reordered, duplicated, truncated, oversized and forged messages") {
  Pair p;
  p.handshake();
  const Now now = p.now();
  std::vector<Datagram> msgs;
  for (int i = 0; i < 6; ++i) {
    REQUIRE(p.a.tunnel.send(p.b.pub(), text("message " + std::to_string(i)), now) == SendOutcome::sent);
    auto d = take(p.a);
    REQUIRE(d.size() == 1);
    msgs.push_back(d[0]);
  }
  auto deliver = [&](ByteView bytes) { return p.b.tunnel.receive(bytes, p.a.endpoint, now); };

  SUBCASE("reordered within the window: all accepted, each once") {
    for (int i : {2, 0, 5, 1, 4, 3}) CHECK(deliver(msgs[i].bytes) == Outcome::transport_data);
    for (int i : {0, 1, 2, 3, 4, 5}) CHECK(deliver(msgs[i].bytes) == Outcome::replayed);
  }
  SUBCASE("duplicated and replayed") {
    CHECK(deliver(msgs[0].bytes) == Outcome::transport_data);
    CHECK(deliver(msgs[0].bytes) == Outcome::replayed);
    CHECK(deliver(msgs[1].bytes) == Outcome::transport_data);
    CHECK(deliver(msgs[0].bytes) == Outcome::replayed);
  }
  SUBCASE("truncated") {
    for (size_t n : {size_t{0}, size_t{1}, size_t{4}, size_t{16}, size_t{31}})
      CHECK(deliver(ByteView(msgs[0].bytes).first(n)) == Outcome::malformed);
    CHECK(deliver(ByteView(msgs[0].bytes).first(msgs[0].bytes.size() - 1)) == Outcome::decrypt_failed);
    CHECK(deliver(ByteView(msgs[0].bytes).first(32)) == Outcome::decrypt_failed);
  }
  SUBCASE("oversized") {
    Bytes huge(TRANSPORT_MAX_SIZE + 1);
    std::copy(msgs[0].bytes.begin(), msgs[0].bytes.end(), huge.begin());
    CHECK(deliver(huge) == Outcome::malformed);
    Bytes longer = msgs[0].bytes;
    longer.push_back(0);
    CHECK(deliver(longer) == Outcome::decrypt_failed);
  }
  SUBCASE("forged: every single-bit flip is refused") {
    const Bytes& m = msgs[0].bytes;
    for (size_t i = 0; i < m.size(); ++i) {
      for (int bit : {0, 7}) {
        Bytes forged = m;
        forged[i] ^= static_cast<uint8_t>(1 << bit);
        Outcome o = deliver(forged);
        REQUIRE_MESSAGE(!accepted(o), "byte ", i, " bit ", bit, " accepted as ", outcome_name(o));
      }
    }
  }
  SUBCASE("garbage and handshake-shaped noise") {
    std::mt19937 rng(1);
    for (int i = 0; i < 2000; ++i) {
      Bytes junk(rng() % 200);
      for (auto& b : junk) b = static_cast<uint8_t>(rng());
      if (!junk.empty() && rng() % 2) junk[0] = static_cast<uint8_t>(1 + rng() % 4);
      if (junk.size() > 3 && rng() % 2) junk[1] = junk[2] = junk[3] = 0;
      REQUIRE_FALSE(accepted(deliver(junk)));
    }
    Bytes initiation(HANDSHAKE_INITIATION_SIZE), response(HANDSHAKE_RESPONSE_SIZE);
    initiation[0] = 1;
    response[0] = 2;
    CHECK(deliver(initiation) == Outcome::bad_mac1);
    CHECK(deliver(response) == Outcome::bad_mac1);
    Bytes reserved = msgs[0].bytes;
    reserved[2] = 1;  // reserved bytes must be zero
    CHECK(deliver(reserved) == Outcome::malformed);
  }
  // Whatever was thrown at it, the session is undisturbed: every genuine message not yet delivered
  // is accepted, in order, and new traffic flows both ways.
  for (const auto& m : msgs) {
    Outcome o = deliver(m.bytes);
    CHECK((o == Outcome::transport_data || o == Outcome::replayed));
  }
  p.net.drain_events();
  std::vector<std::string> got;
  for (const auto& b : p.b.payloads()) got.emplace_back(reinterpret_cast<const char*>(b.data()));
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<std::string>{"message 0", "message 1", "message 2", "message 3", "message 4", "message 5"});
  CHECK(p.b.tunnel.send(p.a.pub(), text("still here"), now) == SendOutcome::sent);
  p.net.pump();
  CHECK(is_padded(p.a.payloads().back(), text("still here")));
}

TEST_CASE("a forged copy of a message does not use up its counter") {
  Pair p;
  p.handshake();
  REQUIRE(p.a.tunnel.send(p.b.pub(), text("genuine"), p.now()) == SendOutcome::sent);
  auto m = take(p.a);
  Bytes forged = m[0].bytes;
  forged.back() ^= 1;
  CHECK(p.b.tunnel.receive(forged, p.a.endpoint, p.now()) == Outcome::decrypt_failed);
  CHECK(p.b.tunnel.receive(m[0].bytes, p.a.endpoint, p.now()) == Outcome::transport_data);
}

TEST_CASE("a replayed handshake initiation is refused by its TAI64N timestamp") {
  Pair p;
  REQUIRE(p.a.tunnel.connect(p.b.pub(), p.now()));
  auto init = take(p.a);
  REQUIRE(init.size() == 1);
  CHECK(p.b.tunnel.receive(init[0].bytes, p.a.endpoint, p.now()) == Outcome::handshake_initiation);
  p.net.pump();
  p.net.run_for(1s);
  auto before = p.b.tunnel.peer_info(p.a.pub());
  REQUIRE(before);

  const size_t responses = p.b.tunnel.stats().responses_sent;
  CHECK(p.b.tunnel.receive(init[0].bytes, p.a.endpoint, p.now()) == Outcome::stale_timestamp);
  CHECK(take(p.b).empty());
  CHECK(p.b.tunnel.stats().responses_sent == responses);
  auto after = p.b.tunnel.peer_info(p.a.pub());
  CHECK(after->current_index == before->current_index);
  CHECK(after->next_index == before->next_index);
  CHECK(after->previous_index == before->previous_index);
}

TEST_CASE("initiations from one peer faster than INITIATIONS_PER_SECOND are refused") {
  // Three tunnels holding a's key stand in for an initiator that ignores its own rate limit.
  Node b("b");
  SecretKey a_key = crypto::x25519_generate();
  Tunnel a1(a_key), a2(a_key), a3(a_key);
  for (Tunnel* a : {&a1, &a2, &a3}) REQUIRE(a->add_peer(b.pub(), std::nullopt, b.endpoint).ok());
  REQUIRE(b.tunnel.add_peer(a1.public_key()).ok());
  FakeClock clock;
  auto initiation_from = [&](Tunnel& a) {
    REQUIRE(a.connect(b.pub(), clock.now()));
    Datagram d;
    REQUIRE(a.poll_datagram(d));
    return d.bytes;
  };
  const Endpoint from(as_bytes("a"));
  CHECK(b.tunnel.receive(initiation_from(a1), from, clock.now()) == Outcome::handshake_initiation);
  // 10 ms later on the monotonic clock, with a newer timestamp: too soon after the last.
  clock.mono += 10ms;
  clock.wall += 40ms;
  CHECK(b.tunnel.receive(initiation_from(a2), from, clock.now()) == Outcome::initiation_flood);
  clock.mono += 15ms;
  clock.wall += 40ms;
  CHECK(b.tunnel.receive(initiation_from(a3), from, clock.now()) == Outcome::handshake_initiation);
}

TEST_CASE("an initiator sends at most one initiation per REKEY_TIMEOUT however much it is asked") {
  Pair p;
  p.net.deliver_if = [](const Node&, const Datagram&) { return false; };  // b never answers
  for (int i = 0; i < 100; ++i) {
    p.a.tunnel.send(p.b.pub(), text("x"), p.now());
    p.a.tunnel.connect(p.b.pub(), p.now());
    p.net.clock.advance(10ms);  // one second in all
  }
  p.net.pump();
  CHECK(p.net.count_sent(p.a, MessageType::handshake_initiation) == 1);
  CHECK(p.a.tunnel.peer_info(p.b.pub())->staged == 100);
}

TEST_CASE("ten simulated minutes of traffic across rekeys: every message once, in order") {
  Pair p;
  std::mt19937 rng(7);
  uint64_t next_seq[2] = {0, 0};
  std::vector<uint64_t> received[2];
  auto make = [&](int side) {
    // Self-delimiting: [u32 length][u64 sequence][filler], padding follows.
    size_t filler = rng() % 8 == 0 ? rng() % 60000 : rng() % 1200;
    Bytes b(12 + filler);
    store_le32(b.data(), static_cast<uint32_t>(b.size()));
    store_le64(b.data() + 4, next_seq[side]++);
    for (size_t i = 12; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i);
    return b;
  };
  Node* sides[2] = {&p.a, &p.b};
  size_t seen_events[2] = {0, 0};
  auto collect = [&] {
    for (int s = 0; s < 2; ++s) {
      Node& n = *sides[s];
      for (; seen_events[s] < n.events.size(); ++seen_events[s]) {
        const Event& e = n.events[seen_events[s]];
        if (e.kind != Event::Kind::payload) continue;
        REQUIRE(e.payload.size() >= 12);
        const uint32_t len = load_le32(e.payload.data());
        REQUIRE(e.payload.size() == padded_size(len));
        bool intact = true;
        for (size_t i = 12; i < len; ++i) intact &= e.payload[i] == static_cast<uint8_t>(i);
        REQUIRE(intact);
        received[1 - s].push_back(load_le64(e.payload.data() + 4));
      }
    }
  };

  const TimePoint end = p.net.clock.mono + 600s;
  std::set<uint32_t> a_sessions;
  while (p.net.clock.mono < end) {
    for (int s = 0; s < 2; ++s) {
      Bytes m = make(s);
      SendOutcome o = sides[s]->tunnel.send(sides[1 - s]->pub(), m, p.now());
      REQUIRE((o == SendOutcome::sent || o == SendOutcome::staged));
    }
    p.net.pump();
    collect();
    if (auto info = p.a.tunnel.peer_info(p.b.pub()); info && info->current_index) a_sessions.insert(info->current_index);
    p.net.run_for(std::chrono::milliseconds(50 + rng() % 100));
    collect();
  }
  p.net.run_for(1s);
  collect();

  for (int s = 0; s < 2; ++s) {
    INFO("side ", s, " sent ", next_seq[s]);
    REQUIRE(received[s].size() == next_seq[s]);
    for (uint64_t i = 0; i < next_seq[s]; ++i) REQUIRE(received[s][i] == i);
  }
  MESSAGE("messages a->b ", next_seq[0], ", b->a ", next_seq[1], "; sessions ", a_sessions.size(),
          "; initiations a ", p.a.tunnel.stats().initiations_sent, " b ", p.b.tunnel.stats().initiations_sent);
  CHECK(next_seq[0] > 5000);
  // A rekey every REKEY_AFTER_TIME: 600 s is at least five sessions after the first.
  CHECK(a_sessions.size() >= 5);
  CHECK(p.a.count_events(Event::Kind::handshake_complete) >= 5);
  CHECK(p.b.count_events(Event::Kind::handshake_complete) >= 5);
  for (const Node* n : {&p.a, &p.b}) {
    CHECK(n->count_outcome(Outcome::replayed) == 0);
    CHECK(n->count_outcome(Outcome::decrypt_failed) == 0);
    CHECK(n->count_outcome(Outcome::expired_keypair) == 0);
    CHECK(n->count_events(Event::Kind::peer_unreachable) == 0);
  }
}

TEST_CASE("key confirmation: the responder does not send on its new keypair before it hears on it") {
  Pair p;
  REQUIRE(p.a.tunnel.connect(p.b.pub(), p.now()));
  auto init = take(p.a);
  CHECK(p.b.tunnel.receive(init[0].bytes, p.a.endpoint, p.now()) == Outcome::handshake_initiation);
  auto resp = take(p.b);
  auto b_info = p.b.tunnel.peer_info(p.a.pub());
  CHECK(b_info->next_index != 0);
  CHECK(b_info->current_index == 0);
  CHECK_FALSE(b_info->has_session);

  CHECK(p.a.tunnel.receive(resp[0].bytes, p.b.endpoint, p.now()) == Outcome::handshake_response);
  auto keepalive = take(p.a);
  REQUIRE(keepalive.size() == 1);
  CHECK(keepalive[0].bytes.size() == TRANSPORT_MIN_SIZE);

  // b has something to say before the keepalive arrives: it must wait, not use next.
  CHECK(p.b.tunnel.send(p.a.pub(), text("early"), p.now()) == SendOutcome::staged);
  for (const auto& d : take(p.b)) CHECK(type_of(d) != MessageType::transport_data);

  CHECK(p.b.tunnel.receive(keepalive[0].bytes, p.a.endpoint, p.now()) == Outcome::keepalive);
  b_info = p.b.tunnel.peer_info(p.a.pub());
  CHECK(b_info->next_index == 0);
  CHECK(b_info->current_index != 0);
  auto flushed = take(p.b);
  REQUIRE(flushed.size() == 1);
  CHECK(type_of(flushed[0]) == MessageType::transport_data);
  CHECK(p.a.tunnel.receive(flushed[0].bytes, p.b.endpoint, p.now()) == Outcome::transport_data);
}

TEST_CASE("rotation: after a rekey the previous keypair still opens messages in flight") {
  Pair p;
  p.handshake();
  const uint32_t first = p.a.tunnel.peer_info(p.b.pub())->current_index;
  REQUIRE(p.a.tunnel.send(p.b.pub(), text("in flight"), p.now()) == SendOutcome::sent);
  auto held = take(p.a);

  // Past REKEY_AFTER_TIME the initiator's next send starts a handshake; the send itself still
  // goes on the old keypair.
  p.net.run_for(REKEY_AFTER_TIME + 1s);
  REQUIRE(p.a.tunnel.send(p.b.pub(), text("triggers rekey"), p.now()) == SendOutcome::sent);
  p.net.pump();
  auto a_info = p.a.tunnel.peer_info(p.b.pub());
  CHECK(a_info->current_index != first);
  CHECK(a_info->previous_index == first);
  CHECK(p.b.tunnel.peer_info(p.a.pub())->next_index == 0);  // confirmed by a's keepalive

  CHECK(p.b.tunnel.receive(held[0].bytes, p.a.endpoint, p.now()) == Outcome::transport_data);
  CHECK(p.b.tunnel.receive(held[0].bytes, p.a.endpoint, p.now()) == Outcome::replayed);
}

TEST_CASE("cookies under load: a cookie reply, a retry with mac2, and the handshake completes") {
  Pair p;
  p.b.tunnel.set_under_load(true);
  CHECK(p.a.tunnel.send(p.b.pub(), text("through the cookie"), p.now()) == SendOutcome::staged);
  p.net.pump();
  CHECK(p.b.count_outcome(Outcome::cookie_sent) == 1);
  CHECK(p.a.count_outcome(Outcome::cookie_reply) == 1);
  CHECK(p.net.count_sent(p.b, MessageType::cookie_reply) == 1);
  CHECK(p.a.count_events(Event::Kind::handshake_complete) == 0);

  // The retransmission after REKEY_TIMEOUT carries mac2 and is let through.
  p.net.run_for(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
  CHECK(p.b.count_outcome(Outcome::handshake_initiation) == 1);
  CHECK(p.a.count_events(Event::Kind::handshake_complete) == 1);
  REQUIRE(p.b.payloads().size() == 1);
  CHECK(is_padded(p.b.payloads()[0], text("through the cookie")));
  CHECK(p.b.tunnel.stats().cookie_replies_sent == 1);
}

TEST_CASE("under load, one source gets at most the burst of handshakes, then is rate limited") {
  Node b("b");
  std::vector<std::unique_ptr<Node>> clients;
  Net net;
  net.nodes.push_back(&b);
  for (int i = 0; i < 8; ++i) {
    clients.push_back(std::make_unique<Node>("nat"));  // all behind one source
    REQUIRE(clients.back()->tunnel.add_peer(b.pub(), std::nullopt, b.endpoint).ok());
    REQUIRE(b.tunnel.add_peer(clients.back()->pub()).ok());
  }
  b.tunnel.set_under_load(true);
  // Each client's first initiation earns a cookie for the shared source.
  for (auto& c : clients) {
    REQUIRE(c->tunnel.connect(b.pub(), net.clock.now()));
    Datagram d;
    REQUIRE(c->tunnel.poll_datagram(d));
    REQUIRE(b.tunnel.receive(d.bytes, c->endpoint, net.clock.now()) == Outcome::cookie_sent);
    REQUIRE(b.tunnel.poll_datagram(d));
    REQUIRE(c->tunnel.receive(d.bytes, b.endpoint, net.clock.now()) == Outcome::cookie_reply);
  }
  net.clock.advance(REKEY_TIMEOUT);
  std::vector<Outcome> outcomes;
  for (auto& c : clients) {
    REQUIRE(c->tunnel.connect(b.pub(), net.clock.now()));
    Datagram d;
    REQUIRE(c->tunnel.poll_datagram(d));
    outcomes.push_back(b.tunnel.receive(d.bytes, c->endpoint, net.clock.now()));
  }
  CHECK(std::count(outcomes.begin(), outcomes.end(), Outcome::handshake_initiation) == HANDSHAKES_BURSTABLE_PER_SOURCE);
  CHECK(std::count(outcomes.begin(), outcomes.end(), Outcome::rate_limited) == 8 - HANDSHAKES_BURSTABLE_PER_SOURCE);
}

TEST_CASE("a silent peer: retransmit every REKEY_TIMEOUT plus jitter, give up after REKEY_ATTEMPT_TIME") {
  Pair p;
  p.net.deliver_if = [](const Node&, const Datagram&) { return false; };
  const TimePoint start = p.net.clock.mono;
  CHECK(p.a.tunnel.send(p.b.pub(), text("nobody home"), p.now()) == SendOutcome::staged);
  p.net.pump();
  p.net.run_for(200s);

  std::vector<TimePoint> times;
  for (const auto& s : p.net.sent)
    if (s.from == &p.a && type_of(s.datagram) == MessageType::handshake_initiation) times.push_back(s.at);
  REQUIRE(times.size() == MAX_TIMER_HANDSHAKES + 2);  // the first and its retries, as Linux counts
  CHECK(times[0] == start);
  for (size_t i = 1; i < times.size(); ++i) {
    CHECK(times[i] - times[i - 1] >= REKEY_TIMEOUT);
    CHECK(times[i] - times[i - 1] <= REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
  }
  REQUIRE(p.a.count_events(Event::Kind::peer_unreachable) == 1);
  // Given up only after REKEY_ATTEMPT_TIME of trying.
  CHECK(times.back() - start >= REKEY_ATTEMPT_TIME);
  CHECK(p.a.tunnel.stats().staged_dropped == 1);
  CHECK(p.a.tunnel.peer_info(p.b.pub())->staged == 0);

  // No more tries until there is something to send again.
  const size_t tries = times.size();
  p.net.run_for(100s);
  CHECK(p.net.count_sent(p.a, MessageType::handshake_initiation) == tries);
  CHECK(p.a.tunnel.send(p.b.pub(), text("again"), p.now()) == SendOutcome::staged);
  p.net.pump();
  CHECK(p.net.count_sent(p.a, MessageType::handshake_initiation) == tries + 1);
}

TEST_CASE("passive keepalive: KEEPALIVE_TIMEOUT after receiving data with nothing to send back") {
  Pair p;
  p.handshake();
  const TimePoint t0 = p.net.clock.mono;
  REQUIRE(p.a.tunnel.send(p.b.pub(), text("ping"), p.now()) == SendOutcome::sent);
  p.net.pump();
  const size_t keepalives = p.b.tunnel.stats().keepalives_sent;
  p.net.run_for(KEEPALIVE_TIMEOUT - 1ms);
  CHECK(p.b.tunnel.stats().keepalives_sent == keepalives);
  p.net.run_for(2ms);
  CHECK(p.b.tunnel.stats().keepalives_sent == keepalives + 1);
  CHECK(p.a.outcomes.back() == Outcome::keepalive);
  bool found = false;
  for (const auto& s : p.net.sent)
    if (s.from == &p.b && s.at >= t0 + KEEPALIVE_TIMEOUT && s.datagram.bytes.size() == TRANSPORT_MIN_SIZE) found = true;
  CHECK(found);
  // One keepalive, not a stream of them.
  p.net.run_for(60s);
  CHECK(p.b.tunnel.stats().keepalives_sent == keepalives + 1);

  // And none when b answered with data of its own.
  REQUIRE(p.a.tunnel.send(p.b.pub(), text("ping"), p.now()) == SendOutcome::sent);
  p.net.pump();
  REQUIRE(p.b.tunnel.send(p.a.pub(), text("pong"), p.now()) == SendOutcome::sent);
  p.net.pump();
  const size_t now_keepalives = p.b.tunnel.stats().keepalives_sent;
  p.net.run_for(KEEPALIVE_TIMEOUT + 1s);
  CHECK(p.b.tunnel.stats().keepalives_sent == now_keepalives);
}

TEST_CASE("a new handshake when sent data got nothing back for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT") {
  Pair p;
  p.handshake();
  p.net.deliver_if = [&](const Node& from, const Datagram&) { return &from == &p.a; };  // b -> a lost
  const size_t initiations = p.net.count_sent(p.a, MessageType::handshake_initiation);
  const TimePoint t0 = p.net.clock.mono;
  REQUIRE(p.a.tunnel.send(p.b.pub(), text("anyone?"), p.now()) == SendOutcome::sent);
  p.net.pump();
  p.net.run_for(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT - 1ms);
  CHECK(p.net.count_sent(p.a, MessageType::handshake_initiation) == initiations);
  p.net.run_for(REKEY_TIMEOUT_JITTER_MAX + 2ms);
  CHECK(p.net.count_sent(p.a, MessageType::handshake_initiation) == initiations + 1);
  CHECK(p.net.count_sent(p.a, MessageType::handshake_initiation, t0 + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT) == 1);
}

TEST_CASE("keypairs: refused after REJECT_AFTER_TIME, wiped after ZERO_KEY_MATERIAL_TIME") {
  Pair p;
  p.handshake();
  REQUIRE(p.a.tunnel.send(p.b.pub(), text("ping"), p.now()) == SendOutcome::sent);
  p.net.pump();  // b's passive keepalive will tell a the session is alive: no new handshake
  REQUIRE(p.a.tunnel.send(p.b.pub(), text("late"), p.now()) == SendOutcome::sent);
  auto held = take(p.a);
  p.net.run_for(REJECT_AFTER_TIME - 1ms);
  CHECK(p.net.count_sent(p.a, MessageType::handshake_initiation) == 1);
  p.net.run_for(1ms);
  CHECK(p.b.tunnel.receive(held[0].bytes, p.a.endpoint, p.now()) == Outcome::expired_keypair);

  p.net.run_for(ZERO_KEY_MATERIAL_TIME - REJECT_AFTER_TIME);
  CHECK(p.a.count_events(Event::Kind::keys_zeroed) == 1);
  CHECK(p.b.count_events(Event::Kind::keys_zeroed) == 1);
  auto info = p.b.tunnel.peer_info(p.a.pub());
  CHECK_FALSE(info->has_session);
  CHECK(info->current_index == 0);
  CHECK(info->previous_index == 0);
  CHECK(info->next_index == 0);
  CHECK(p.b.tunnel.receive(held[0].bytes, p.a.endpoint, p.now()) == Outcome::unknown_index);

  // Sending again simply starts a new session.
  CHECK(p.a.tunnel.send(p.b.pub(), text("fresh"), p.now()) == SendOutcome::staged);
  p.net.pump();
  CHECK(is_padded(p.b.payloads().back(), text("fresh")));
  CHECK(p.a.tunnel.peer_info(p.b.pub())->has_session);
}

TEST_CASE("an expired session is not used: the payload waits for a new handshake") {
  Pair p;
  p.handshake();
  p.net.run_for(REJECT_AFTER_TIME);
  const size_t initiations = p.net.count_sent(p.a, MessageType::handshake_initiation);
  CHECK(p.a.tunnel.send(p.b.pub(), text("after expiry"), p.now()) == SendOutcome::staged);
  p.net.pump();
  CHECK(p.net.count_sent(p.a, MessageType::handshake_initiation) == initiations + 1);
  CHECK(is_padded(p.b.payloads().back(), text("after expiry")));
  CHECK(p.b.count_outcome(Outcome::expired_keypair) == 0);
}

TEST_CASE("one tunnel, many peers: payloads reach the right peer; strangers are refused") {
  Node server("server");
  std::vector<std::unique_ptr<Node>> clients;
  Net net;
  net.nodes.push_back(&server);
  for (int i = 0; i < 5; ++i) {
    clients.push_back(std::make_unique<Node>("client" + std::to_string(i)));
    REQUIRE(clients.back()->tunnel.add_peer(server.pub(), std::nullopt, server.endpoint).ok());
    REQUIRE(server.tunnel.add_peer(clients.back()->pub()).ok());
    net.nodes.push_back(clients.back().get());
  }
  CHECK_FALSE(server.tunnel.add_peer(clients[0]->pub()).ok());
  CHECK_FALSE(server.tunnel.add_peer(server.pub()).ok());
  for (size_t i = 0; i < clients.size(); ++i)
    clients[i]->tunnel.send(server.pub(), text("from " + std::to_string(i)), net.clock.now());
  net.pump();
  REQUIRE(server.payloads().size() == clients.size());
  for (const auto& e : server.events) {
    if (e.kind != Event::Kind::payload) continue;
    for (size_t i = 0; i < clients.size(); ++i)
      if (e.peer == clients[i]->pub()) CHECK(is_padded(e.payload, text("from " + std::to_string(i))));
  }
  for (size_t i = 0; i < clients.size(); ++i)
    server.tunnel.send(clients[i]->pub(), text("to " + std::to_string(i)), net.clock.now());
  net.pump();
  for (size_t i = 0; i < clients.size(); ++i) {
    REQUIRE(clients[i]->payloads().size() == 1);
    CHECK(is_padded(clients[i]->payloads()[0], text("to " + std::to_string(i))));
  }

  // Someone who knows the server's key but is not a peer authenticates and is still refused.
  Node stranger("stranger");
  REQUIRE(stranger.tunnel.add_peer(server.pub(), std::nullopt, server.endpoint).ok());
  net.nodes.push_back(&stranger);
  stranger.tunnel.connect(server.pub(), net.clock.now());
  net.pump();
  CHECK(server.outcomes.back() == Outcome::unknown_peer);

  // A removed peer's indices are gone at once.
  REQUIRE(clients[0]->tunnel.send(server.pub(), text("bye"), net.clock.now()) == SendOutcome::sent);
  auto last = take(*clients[0]);
  CHECK(server.tunnel.remove_peer(clients[0]->pub()));
  CHECK_FALSE(server.tunnel.remove_peer(clients[0]->pub()));
  CHECK(server.tunnel.receive(last[0].bytes, clients[0]->endpoint, net.clock.now()) == Outcome::unknown_index);
}

TEST_CASE("a pre-shared key: both must hold the same one") {
  SecretKey psk;
  crypto::random_bytes({psk.data(), psk.size()});
  {
    Pair p(psk);
    p.handshake();
  }
  Node a("a"), b("b");
  SecretKey other;
  other.bytes[0] = 7;
  REQUIRE(a.tunnel.add_peer(b.pub(), psk, b.endpoint).ok());
  REQUIRE(b.tunnel.add_peer(a.pub(), other).ok());
  Net net;
  net.nodes = {&a, &b};
  a.tunnel.connect(b.pub(), net.clock.now());
  net.pump();
  CHECK(a.outcomes.back() == Outcome::handshake_failed);
  CHECK(a.count_events(Event::Kind::handshake_complete) == 0);
}

TEST_CASE("roaming: replies follow the endpoint of the latest authenticated message") {
  Pair p;
  p.handshake();
  REQUIRE(p.a.tunnel.send(p.b.pub(), text("from a new address"), p.now()) == SendOutcome::sent);
  auto m = take(p.a);
  const Endpoint moved(as_bytes("a-moved"));
  CHECK(p.b.tunnel.receive(m[0].bytes, moved, p.now()) == Outcome::transport_data);
  REQUIRE(p.b.tunnel.send(p.a.pub(), text("reply"), p.now()) == SendOutcome::sent);
  auto r = take(p.b);
  CHECK(r[0].endpoint == moved);
  // A forged message from elsewhere does not move it.
  REQUIRE(p.a.tunnel.send(p.b.pub(), text("another"), p.now()) == SendOutcome::sent);
  Bytes forged = take(p.a)[0].bytes;
  forged[20] ^= 1;
  CHECK(p.b.tunnel.receive(forged, Endpoint(as_bytes("evil")), p.now()) == Outcome::decrypt_failed);
  REQUIRE(p.b.tunnel.send(p.a.pub(), text("reply"), p.now()) == SendOutcome::sent);
  CHECK(take(p.b)[0].endpoint == moved);
}

TEST_CASE("polling reuses buffers: steady-state traffic needs no new capacity") {
  Pair p;
  p.handshake();
  Datagram d;
  Event e;
  Bytes payload(1000, 1);
  std::set<const uint8_t*> datagram_buffers, event_buffers;
  for (int i = 0; i < 200; ++i) {
    REQUIRE(p.a.tunnel.send(p.b.pub(), payload, p.now()) == SendOutcome::sent);
    REQUIRE(p.a.tunnel.poll_datagram(d));
    REQUIRE(p.b.tunnel.receive(d.bytes, p.a.endpoint, p.now()) == Outcome::transport_data);
    REQUIRE(p.b.tunnel.poll_event(e));
    // After a warm-up round of the queue slots, no buffer is ever new: nothing was allocated.
    if (i < 50) {
      datagram_buffers.insert(d.bytes.data());
      event_buffers.insert(e.payload.data());
    } else {
      REQUIRE(datagram_buffers.contains(d.bytes.data()));
      REQUIRE(event_buffers.contains(e.payload.data()));
    }
  }
}
