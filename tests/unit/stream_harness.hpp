// Two stream Sessions back to back over an in-memory link with a fake clock: configurable latency
// and bandwidth each way, and drops (a relay restart loses whatever is in flight). Each side runs
// a small application that writes a known byte pattern on its streams, checks every byte it
// receives against the pattern (so loss, duplication or reordering shows up at once), and consumes
// or stalls as told. A discrete-event loop advances the clock to the next thing that happens.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/stream/session.hpp"

namespace airlock::stream::test {

using namespace std::chrono_literals;

// The bytes each stream carries: a pseudo-random function of (stream id, direction, offset), so a
// lost, repeated or misplaced byte shows. Made 8 bytes at a time (one word per 8 offsets): the
// tests move gigabytes, and this keeps them fast even in a sanitizer build.
inline uint64_t pattern_word(StreamId id, bool from_opener, uint64_t word_index) {
  uint64_t x = word_index * 0x9e3779b97f4a7c15ull + id * 0x100000001b3ull + (from_opener ? 0x55 : 0xaa);
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ull;
  return x ^ x >> 29;
}

// Writes the pattern of [offset, offset + n) to dst.
inline void fill_pattern(StreamId id, bool from_opener, uint64_t offset, uint8_t* dst, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint64_t at = offset + i;
    uint64_t word = pattern_word(id, from_opener, at / 8);
    size_t skip = static_cast<size_t>(at % 8);
    size_t take = std::min<size_t>(8 - skip, n - i);
    std::memcpy(dst + i, reinterpret_cast<const uint8_t*>(&word) + skip, take);
    i += take;
  }
}

// The byte at `offset` of stream `id` in the direction from its opener (true) or to it (false).
inline uint8_t pattern_byte(StreamId id, bool from_opener, uint64_t offset) {
  uint8_t b = 0;
  fill_pattern(id, from_opener, offset, &b, 1);
  return b;
}

// One direction of the link. A payload occupies the wire for size/bandwidth, then takes `latency`
// to arrive; the sender may hand over the next payload while at most `backlog` is still waiting
// for the wire (a socket buffer), which is where backpressure into poll_payload() comes from.
struct FakeLink {
  double bytes_per_second = 1e9;
  Duration latency = 1ms;
  Duration backlog = 0ms;
  bool down = false;  // a relay restart: everything sent is lost

  struct InFlight {
    OutgoingPayload payload;
    TimePoint arrive;
    uint64_t index;
  };
  std::deque<InFlight> in_flight;
  TimePoint busy_until{};
  uint64_t payloads_sent = 0;
  uint64_t bytes_sent = 0;
  uint64_t payloads_dropped = 0;
  std::function<bool(uint64_t index, const OutgoingPayload&)> drop_if;  // selective loss

  bool can_take(TimePoint now) const { return busy_until <= now + backlog; }
  void send(OutgoingPayload p, TimePoint now) {
    TimePoint start = std::max(now, busy_until);
    auto wire = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(p.bytes.size() / bytes_per_second));
    busy_until = start + wire;
    uint64_t index = payloads_sent++;
    bytes_sent += p.bytes.size();
    if (down || (drop_if && drop_if(index, p))) {
      ++payloads_dropped;
      return;
    }
    in_flight.push_back(InFlight{std::move(p), busy_until + latency, index});
  }
  void drop_in_flight() {
    payloads_dropped += in_flight.size();
    in_flight.clear();
  }
};

// What the application on one side does with one stream.
struct StreamApp {
  StreamId id = 0;
  bool local = false;          // this side opened it
  uint64_t to_send = 0;        // bytes to write in total
  bool finish_after = true;    // finish() once to_send is written
  bool consume = true;         // false: a consumer that never reads (stalled)
  uint64_t written = 0;
  Bytes unsent;           // pattern bytes from offset `written` on, made but not yet taken by write()
  size_t unsent_at = 0;   // ... starting at this index
  bool writable = true;
  uint64_t received = 0;
  uint64_t max_recv_buffered = 0;
  bool opened_event = false, accepted = false, finished = false, closed = false, reset = false;
  uint32_t reset_code = 0;
  std::string reset_reason;
  bool corrupt = false;        // a byte did not match the pattern
  std::optional<TimePoint> first_data_at;
};

struct Side {
  explicit Side(Role role, Config config = {}) : session(role, config) {}
  Session session;
  std::map<StreamId, StreamApp> apps;
  bool accept_incoming = true;
  uint64_t incoming_to_send = 0;  // bytes to answer with on each accepted stream
  std::vector<std::string> errors;
  std::vector<StreamRejected> rejected;
  std::function<void(const Event&)> on_event;  // extra hook for a test
  static constexpr size_t kWriteChunk = 64 * 1024;
  Bytes expected;  // scratch: what a StreamData should hold

  StreamId open(std::string_view service, Priority priority, uint64_t to_send, bool finish_after = true) {
    auto id = session.open(service, nlohmann::json{{"n", to_send}}, priority);
    REQUIRE(id.ok());
    StreamApp& app = apps[*id];
    app.id = *id;
    app.local = true;
    app.to_send = to_send;
    app.finish_after = finish_after;
    return *id;
  }

  void pump_writes() {
    for (auto& [id, app] : apps) {
      if (app.reset || app.closed || (!app.local && !app.accepted)) continue;
      while (app.writable && app.written < app.to_send) {
        // Each byte of the pattern is made once, however many writes it takes to hand it over.
        if (app.unsent_at == app.unsent.size()) {
          size_t n = static_cast<size_t>(std::min<uint64_t>(kWriteChunk, app.to_send - app.written));
          app.unsent.resize(n);
          fill_pattern(id, app.local, app.written, app.unsent.data(), n);
          app.unsent_at = 0;
        }
        ByteView chunk(app.unsent.data() + app.unsent_at, app.unsent.size() - app.unsent_at);
        auto took = session.write(id, chunk);
        REQUIRE(took.ok());
        app.written += *took;
        app.unsent_at += *took;
        if (*took < chunk.size()) app.writable = false;
      }
      if (app.written == app.to_send && app.finish_after) {
        REQUIRE(session.finish(id).ok());
        app.finish_after = false;  // once
      }
    }
  }

  void handle_events(TimePoint now) {
    while (auto e = session.poll_event()) {
      if (on_event) on_event(*e);
      std::visit(
          [&](auto& ev) {
            using T = std::decay_t<decltype(ev)>;
            if constexpr (std::is_same_v<T, StreamOpened>) {
              StreamApp& app = apps[ev.id];
              app.id = ev.id;
              app.opened_event = true;
              if (accept_incoming) {
                REQUIRE(session.accept(ev.id).ok());
                app.accepted = true;
                app.to_send = incoming_to_send;
                app.finish_after = true;
              }
            } else if constexpr (std::is_same_v<T, StreamAccepted>) {
              apps[ev.id].accepted = true;
            } else if constexpr (std::is_same_v<T, StreamData>) {
              StreamApp& app = apps[ev.id];
              if (!app.first_data_at) app.first_data_at = now;
              expected.resize(ev.bytes.size());
              fill_pattern(ev.id, !app.local, app.received, expected.data(), expected.size());
              if (!std::equal(ev.bytes.begin(), ev.bytes.end(), expected.begin())) app.corrupt = true;
              app.received += ev.bytes.size();
              if (app.consume) REQUIRE(session.consume(ev.id, ev.bytes.size()).ok());
              if (auto st = session.stream_stats(ev.id)) {
                app.max_recv_buffered = std::max(app.max_recv_buffered, st->recv_buffered);
              }
            } else if constexpr (std::is_same_v<T, StreamWritable>) {
              apps[ev.id].writable = true;
            } else if constexpr (std::is_same_v<T, StreamFinished>) {
              apps[ev.id].finished = true;
            } else if constexpr (std::is_same_v<T, StreamReset>) {
              StreamApp& app = apps[ev.id];
              app.reset = true;
              app.reset_code = ev.code;
              app.reset_reason = ev.reason;
            } else if constexpr (std::is_same_v<T, StreamClosed>) {
              apps[ev.id].closed = true;
            } else if constexpr (std::is_same_v<T, StreamRejected>) {
              rejected.push_back(ev);
            } else if constexpr (std::is_same_v<T, SessionError>) {
              errors.push_back(ev.reason);
            }
          },
          *e);
    }
  }
};

struct Sim {
  explicit Sim(Config config = {}) : a(Role::initiator, config), b(Role::responder, config) {}
  TimePoint now = TimePoint{} + 1000s;
  Side a, b;
  FakeLink ab, ba;  // a -> b and b -> a
  size_t max_payload = kMaxPayloadSize;
  // Every payload delivered: (receiver is b, link index, bytes) for tests that inspect them.
  std::function<void(bool to_b, uint64_t index, const OutgoingPayload&)> on_deliver;

  void set_links(double bytes_per_second, Duration latency, Duration backlog = 0ms) {
    for (FakeLink* l : {&ab, &ba}) {
      l->bytes_per_second = bytes_per_second;
      l->latency = latency;
      l->backlog = backlog;
    }
  }

  // Everything that is due at `now`, until nothing more happens at this instant.
  void settle() {
    for (int round = 0; round < 1000; ++round) {
      bool progress = false;
      for (auto [link, to, to_b] : {std::tuple{&ab, &b, true}, std::tuple{&ba, &a, false}}) {
        while (!link->in_flight.empty() && link->in_flight.front().arrive <= now) {
          FakeLink::InFlight f = std::move(link->in_flight.front());
          link->in_flight.pop_front();
          if (on_deliver) on_deliver(to_b, f.index, f.payload);
          to->session.receive(f.payload.bytes, now);
          progress = true;
        }
      }
      for (Side* s : {&a, &b}) {
        if (auto d = s->session.next_deadline(); d && *d <= now) {
          s->session.on_timer(now);
          progress = true;
        }
        s->handle_events(now);
        s->pump_writes();
      }
      for (auto [link, from] : {std::pair{&ab, &a}, std::pair{&ba, &b}}) {
        while (link->can_take(now)) {
          auto p = from->session.poll_payload(now, max_payload);
          if (!p) break;
          CHECK(p->bytes.size() <= max_payload);
          link->send(std::move(*p), now);
          progress = true;
        }
      }
      if (!progress) return;
    }
    FAIL("simulation does not settle");
  }

  // The next instant anything can happen; nullopt when the system is idle for good.
  std::optional<TimePoint> next_event() const {
    std::optional<TimePoint> next;
    auto consider = [&](TimePoint t) {
      if (t > now && (!next || t < *next)) next = t;
    };
    for (const FakeLink* l : {&ab, &ba}) {
      if (!l->in_flight.empty()) consider(l->in_flight.front().arrive);
      consider(l->busy_until - l->backlog);  // the link can take more then
    }
    for (const Side* s : {&a, &b}) {
      if (auto d = s->session.next_deadline()) consider(*d);
    }
    return next;
  }

  // Runs until done() or the clock passes `limit`; returns done().
  bool run_until(const std::function<bool()>& done, Duration limit) {
    TimePoint end = now + limit;
    settle();
    while (!done()) {
      auto next = next_event();
      if (!next || *next > end) {
        if (done()) return true;
        now = end;
        settle();
        return done();
      }
      now = *next;
      settle();
    }
    return true;
  }
  void run_for(Duration d) {
    run_until([] { return false; }, d);
  }

  // A relay restart: whatever is in flight is lost, and nothing gets through for `outage`.
  void outage(Duration outage, bool resume_a = true, bool resume_b = true) {
    ab.drop_in_flight();
    ba.drop_in_flight();
    ab.down = ba.down = true;
    run_for(outage);
    ab.down = ba.down = false;
    if (resume_a) a.session.resume(now);
    if (resume_b) b.session.resume(now);
  }
};

}  // namespace airlock::stream::test
