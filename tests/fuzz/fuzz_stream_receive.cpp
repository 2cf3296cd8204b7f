// Fuzzes Session::receive with live sessions behind it: two stream Sessions (initiator a,
// responder b) joined by a fake relay that keeps each direction's payloads in two queues, one per
// priority class (so interactive payloads overtake bulk ones, as in the relay). The input is a
// little program: a side builds a payload, the relay delivers, drops, duplicates or mutates one,
// raw bytes go to a side, time passes, a side resumes, the applications open, accept or refuse,
// write, finish, reset, and stall or drain their streams.
//
// Oracles, while nothing forged reached either side (only drops, duplicates, reordering between
// classes, delays, resumes): no SessionError; every StreamData is exactly the next bytes the peer
// wrote (each stream carries a known byte pattern); and at the end, once the link heals (both
// sides resume, everything is delivered, time runs on), every byte written and every finish
// arrives. With forged input anything may happen to the session except a crash, a sanitizer
// report, or unbounded memory.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <map>

#include "common/stream/session.hpp"

using namespace airlock;
using namespace airlock::stream;
using namespace std::chrono_literals;

namespace {

uint8_t pattern_byte(StreamId id, bool from_opener, uint64_t offset) {
  uint64_t x = (offset + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t{id} << 1 | (from_opener ? 1 : 0));
  return static_cast<uint8_t>(x >> 56);
}

// What one side's application knows of one stream.
struct App {
  bool local = false;
  bool accepted = false;      // local: StreamAccepted came; remote: this side accepted
  uint64_t written = 0;       // bytes write() took
  bool finish_called = false;
  uint64_t received = 0;      // StreamData bytes
  uint64_t unconsumed = 0;
  bool stalled = false;       // the application does not consume
  bool finished = false;      // StreamFinished came
  bool reset = false;         // either side reset it
  bool closed = false;
};

struct Side {
  Side(Role role) : session(role) {}
  Session session;
  std::map<StreamId, App> apps;
  bool refuse_opens = false;
  bool broken = false;
};

struct Relay {
  std::deque<Bytes> queue[kLaneCount];  // per priority class
};

struct World {
  Side a{Role::initiator}, b{Role::responder};
  Relay to_b, to_a;
  TimePoint now = TimePoint{} + 1000s;
  bool forged = false;  // something not sent by a genuine session reached a side

  Side& peer_of(Side& s) { return &s == &a ? b : a; }
  Relay& relay_from(Side& s) { return &s == &a ? to_b : to_a; }

  void fail_if(bool bad) {
    if (bad && !forged) std::abort();
  }

  void drain(Side& s) {
    while (auto e = s.session.poll_event()) {
      std::visit(
          [&](auto& ev) {
            using T = std::decay_t<decltype(ev)>;
            if constexpr (std::is_same_v<T, StreamOpened>) {
              App& app = s.apps[ev.id];
              if (s.refuse_opens) {
                app.reset = true;
                if (!s.session.reset(ev.id, kResetRefused, "refused").ok() && !s.session.broken()) std::abort();
              } else {
                app.accepted = true;
                // Fails only once the session is broken (events from before the break still come).
                if (!s.session.accept(ev.id).ok() && !s.session.broken()) std::abort();
              }
            } else if constexpr (std::is_same_v<T, StreamAccepted>) {
              s.apps[ev.id].accepted = true;
            } else if constexpr (std::is_same_v<T, StreamData>) {
              App& app = s.apps[ev.id];
              fail_if(app.finished || app.reset);
              for (size_t i = 0; i < ev.bytes.size(); ++i) {
                if (ev.bytes[i] != pattern_byte(ev.id, !app.local, app.received + i)) {
                  fail_if(true);
                  break;
                }
              }
              app.received += ev.bytes.size();
              app.unconsumed += ev.bytes.size();
              if (!app.stalled) consume(s, ev.id, app);
            } else if constexpr (std::is_same_v<T, StreamFinished>) {
              App& app = s.apps[ev.id];
              fail_if(app.finished);
              app.finished = true;
            } else if constexpr (std::is_same_v<T, StreamReset>) {
              s.apps[ev.id].reset = true;
            } else if constexpr (std::is_same_v<T, StreamClosed>) {
              App& app = s.apps[ev.id];
              fail_if(app.closed);
              app.closed = true;
            } else if constexpr (std::is_same_v<T, StreamRejected>) {
              fail_if(true);  // genuine peers never send what gets rejected
            } else if constexpr (std::is_same_v<T, SessionError>) {
              s.broken = true;
              fail_if(true);
            }
          },
          *e);
    }
    if (s.session.broken() != s.broken) std::abort();
  }

  void consume(Side& s, StreamId id, App& app) {
    if (app.unconsumed == 0) return;
    auto ok = s.session.consume(id, app.unconsumed);
    // Consuming after a reset or close is accepted and ignored; on a broken session it fails.
    if (!ok.ok() && !s.session.broken()) std::abort();
    app.unconsumed = 0;
  }

  // One payload from `s` into the relay; false if it had nothing to send.
  bool poll(Side& s, size_t max_size = kMaxPayloadSize) {
    auto p = s.session.poll_payload(now, max_size);
    if (!p) return false;
    if (p->bytes.empty() || p->bytes.size() > std::clamp(max_size, kMinPayloadSize, kMaxPayloadSize)) std::abort();
    relay_from(s).queue[static_cast<size_t>(p->priority)].push_back(std::move(p->bytes));
    return true;
  }

  void deliver(Side& to, ByteView bytes) {
    to.session.receive(bytes, now);
    drain(to);
  }

  void timers() {
    for (Side* s : {&a, &b}) {
      if (auto d = s->session.next_deadline(); d && *d <= now) s->session.on_timer(now);
      drain(*s);
    }
  }

  void write(Side& s, StreamId id, size_t n) {
    App& app = s.apps[id];
    Bytes bytes(n);
    for (size_t i = 0; i < n; ++i) bytes[i] = pattern_byte(id, app.local, app.written + i);
    auto took = s.session.write(id, bytes);
    if (took.ok()) {
      if (*took > n) std::abort();
      app.written += *took;
    }
  }

  // The link heals: both sides resume, the relay delivers everything, time runs on. Then every
  // byte either side wrote, and every finish, must have arrived on streams nobody reset.
  void heal_and_check() {
    for (Side* s : {&a, &b}) {
      for (auto& [id, app] : s->apps) {
        app.stalled = false;
        consume(*s, id, app);
      }
      s->session.resume(now);
    }
    for (int round = 0; round < 4000; ++round) {
      bool moved = false;
      for (Side* s : {&a, &b}) {
        for (int i = 0; i < 64 && poll(*s); ++i) moved = true;
      }
      for (Side* to : {&b, &a}) {
        Relay& r = to == &b ? to_b : to_a;
        for (auto& q : r.queue) {
          while (!q.empty()) {
            Bytes p = std::move(q.front());
            q.pop_front();
            deliver(*to, p);
            moved = true;
          }
        }
      }
      if (!moved) {
        auto da = a.session.next_deadline(), db = b.session.next_deadline();
        if (!da && !db) break;
        now = std::max(now, std::min(da.value_or(TimePoint::max()), db.value_or(TimePoint::max())));
      }
      timers();
    }
    for (Side* s : {&a, &b}) {
      Side& peer = peer_of(*s);
      for (auto& [id, app] : s->apps) {
        auto it = peer.apps.find(id);
        if (app.reset || app.closed) continue;
        if (it == peer.apps.end()) {
          if (app.local) std::abort();  // the open never arrived
          continue;
        }
        const App& there = it->second;
        if (there.reset) continue;
        if (there.received != app.written) std::abort();
        if (app.finish_called && !there.finished) std::abort();
      }
    }
  }
};

struct Reader {
  const uint8_t* p;
  size_t n;
  bool empty() const { return n == 0; }
  uint8_t byte() {
    if (!n) return 0;
    --n;
    return *p++;
  }
  ByteView take(size_t k) {
    k = std::min(k, n);
    ByteView v(p, k);
    p += k, n -= k;
    return v;
  }
};

// The application stream `pick` names on side s (by index among those it knows), or 0.
StreamId pick_stream(const Side& s, uint8_t pick) {
  if (s.apps.empty()) return 0;
  auto it = s.apps.begin();
  std::advance(it, pick % s.apps.size());
  return it->first;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A fresh pair of sessions per input: inputs reproduce alone, and nothing outlives them.
  World w;
  Reader in{data, size};
  for (int steps = 0; !in.empty() && steps < 256; ++steps) {
    const uint8_t op = in.byte();
    Side& s = (op & 0x80) ? w.b : w.a;
    Side& peer = w.peer_of(s);
    Relay& out = w.relay_from(s);
    const size_t cls = (op >> 6) & 1;
    switch (op & 0x0f) {
      case 0:  // s builds a payload (any size it may be asked for)
        w.poll(s, static_cast<size_t>(in.byte()) << 9);
        break;
      case 1:  // the relay delivers s's oldest payload of one class
        if (!out.queue[cls].empty()) {
          Bytes p = std::move(out.queue[cls].front());
          out.queue[cls].pop_front();
          w.deliver(peer, p);
        }
        break;
      case 2:  // ... or loses it
        if (!out.queue[cls].empty()) out.queue[cls].pop_front();
        break;
      case 3:  // ... or delivers it twice
        if (!out.queue[cls].empty()) {
          w.deliver(peer, out.queue[cls].front());
          w.deliver(peer, out.queue[cls].front());
          out.queue[cls].pop_front();
        }
        break;
      case 4:  // ... or mutates it on the way
        if (!out.queue[cls].empty()) {
          Bytes p = std::move(out.queue[cls].front());
          out.queue[cls].pop_front();
          const uint8_t how = in.byte();
          const size_t at = p.empty() ? 0 : (static_cast<size_t>(in.byte()) << 8 | in.byte()) % p.size();
          switch (how % 4) {
            case 0: if (!p.empty()) p[at] ^= static_cast<uint8_t>(1u << (in.byte() % 8)); break;
            case 1: p.resize(at); break;
            case 2: p.insert(p.begin() + static_cast<std::ptrdiff_t>(at), in.byte()); break;
            case 3: if (!p.empty()) p[at] = in.byte(); break;
          }
          w.forged = true;
          w.deliver(peer, p);
        }
        break;
      case 5: {  // raw bytes from nowhere
        ByteView raw = in.take(in.byte());
        w.forged = true;
        w.deliver(s, raw);
        break;
      }
      case 6:  // time passes; timers run
        w.now += std::chrono::milliseconds(in.byte()) * 37;
        w.timers();
        break;
      case 7:  // the link came back
        s.session.resume(w.now);
        break;
      case 8: {  // open a stream
        static constexpr const char* kServices[] = {"pty", "tcp", "status", "hello"};
        const uint8_t how = in.byte();
        nlohmann::json args = nlohmann::json::object();
        if (how & 0x10) args["port"] = how;
        auto id = s.session.open(kServices[how % 4], args, (how & 0x04) ? Priority::bulk : Priority::interactive);
        if (id.ok()) {
          if (s.apps.count(*id)) std::abort();  // ids are never reused
          s.apps[*id].local = true;
        } else if (!s.session.broken()) {
          std::abort();
        }
        break;
      }
      case 9: {  // write
        StreamId id = pick_stream(s, in.byte());
        size_t n = static_cast<size_t>(in.byte()) * 257 + in.byte();
        if (id) w.write(s, id, n);
        break;
      }
      case 10: {  // finish
        StreamId id = pick_stream(s, in.byte());
        if (id && s.session.finish(id).ok()) s.apps[id].finish_called = true;
        break;
      }
      case 11: {  // reset
        StreamId id = pick_stream(s, in.byte());
        if (id) {
          uint32_t code = in.byte();
          if (s.session.reset(id, code, std::string(in.byte() % 4 * 100, 'r')).ok()) s.apps[id].reset = true;
        }
        break;
      }
      case 12: {  // the application stalls a stream, or drains it
        StreamId id = pick_stream(s, in.byte());
        if (id) {
          App& app = s.apps[id];
          app.stalled = !app.stalled;
          if (!app.stalled) w.consume(s, id, app);
        }
        break;
      }
      case 13:  // accept or refuse what the peer opens from now on
        s.refuse_opens = !s.refuse_opens;
        break;
      case 14:  // a whole burst: both sides send all they have, the relay delivers it all
        for (int i = 0; i < 16 && w.poll(s); ++i) {
        }
        for (auto& q : out.queue) {
          while (!q.empty()) {
            Bytes p = std::move(q.front());
            q.pop_front();
            w.deliver(peer, p);
          }
        }
        break;
      case 15: {  // API calls for streams the application does not have must fail cleanly
        const StreamId id = in.byte();
        if (s.apps.count(id)) break;
        if (s.session.write(id, as_bytes("x")).ok() || s.session.finish(id).ok()) std::abort();
        // accept() succeeds for a peer's stream that has come and gone, never for this side's own
        // ids or for 0.
        bool own = (id & 1) == (&s == &w.a ? 1u : 0u);
        if (s.session.accept(id).ok() && (id == 0 || own)) std::abort();
        (void)s.session.consume(id, 1);  // fine for a stream that has closed, an error otherwise
        (void)s.session.reset(id, 0, "");
        break;
      }
    }
    w.drain(w.a);
    w.drain(w.b);
  }
  if (!w.forged) w.heal_and_check();
  return 0;
}
