// The stream multiplexer end to end: two Sessions over a fake link (stream_harness.hpp).
#include <doctest/doctest.h>

#include "tests/unit/stream_harness.hpp"

using namespace airlock;
using namespace airlock::stream;
using namespace airlock::stream::test;

namespace {

bool all_delivered(const Side& from, const Side& to) {
  for (const auto& [id, app] : from.apps) {
    auto it = to.apps.find(id);
    if (it == to.apps.end() || it->second.received != app.to_send || !it->second.finished) return false;
  }
  return true;
}

bool all_closed(const Side& s) {
  return std::all_of(s.apps.begin(), s.apps.end(), [](const auto& kv) { return kv.second.closed; });
}

}  // namespace

TEST_CASE("open, accept, data both ways, fin, close") {
  Sim sim;
  sim.set_links(100e6, 5ms);
  sim.b.incoming_to_send = 1000;
  StreamId id = sim.a.open("pty", Priority::interactive, 3000);
  CHECK(id == 1);  // the initiator opens odd ids

  std::optional<StreamOpened> opened;
  sim.b.on_event = [&](const Event& e) {
    if (auto* o = std::get_if<StreamOpened>(&e)) opened = *o;
  };
  REQUIRE(sim.run_until([&] { return all_closed(sim.a) && all_closed(sim.b); }, 5s));
  REQUIRE(opened);
  CHECK(opened->service == "pty");
  CHECK(opened->args == nlohmann::json{{"n", 3000}});
  CHECK(opened->priority == Priority::interactive);

  const StreamApp& at_a = sim.a.apps[id];
  const StreamApp& at_b = sim.b.apps[id];
  CHECK(at_a.accepted);
  CHECK(at_b.received == 3000);
  CHECK(at_a.received == 1000);
  CHECK_FALSE(at_a.corrupt);
  CHECK_FALSE(at_b.corrupt);
  CHECK(at_a.finished);
  CHECK(at_b.finished);
  CHECK(sim.a.session.stats().streams == 0);
  CHECK(sim.b.session.stats().streams == 0);
  CHECK(sim.a.errors.empty());
  CHECK(sim.b.errors.empty());
}

TEST_CASE("the responder opens even ids, and both sides can open at once") {
  Sim sim;
  StreamId from_a = sim.a.open("tcp", Priority::bulk, 100000);
  StreamId from_b = sim.b.open("status", Priority::interactive, 100000);
  CHECK(from_a % 2 == 1);
  CHECK(from_b % 2 == 0);
  REQUIRE(sim.run_until([&] { return all_delivered(sim.a, sim.b) && all_delivered(sim.b, sim.a); }, 5s));
  CHECK_FALSE(sim.a.apps[from_b].corrupt);
  CHECK_FALSE(sim.b.apps[from_a].corrupt);
}

TEST_CASE("the opener sends before the accept arrives") {
  Sim sim;
  sim.set_links(1e9, 20ms);
  StreamId id = sim.a.open("tcp", Priority::interactive, 1000);
  // One payload carries the open and the data: the peer sees both after one trip.
  sim.run_for(21ms);
  CHECK(sim.b.apps[id].received == 1000);
  CHECK_FALSE(sim.a.apps[id].accepted);  // the accept is still on its way back
}

TEST_CASE("refusing an open resets the stream with the service's code and reason") {
  Sim sim;
  sim.b.accept_incoming = false;
  sim.b.on_event = [&](const Event& e) {
    if (auto* o = std::get_if<StreamOpened>(&e)) {
      REQUIRE(sim.b.session.reset(o->id, kResetRefused, "no such service").ok());
    }
  };
  StreamId id = sim.a.open("nope", Priority::interactive, 10);
  REQUIRE(sim.run_until([&] { return sim.a.apps[id].closed && sim.b.apps[id].closed; }, 5s));
  CHECK(sim.a.apps[id].reset);
  CHECK(sim.a.apps[id].reset_code == kResetRefused);
  CHECK(sim.a.apps[id].reset_reason == "no such service");
  CHECK_FALSE(sim.a.apps[id].accepted);
  CHECK(sim.b.apps[id].received == 0);  // data that raced the reset was dropped, not delivered
  CHECK_FALSE(sim.a.session.write(id, as_bytes("x")).ok());
}

TEST_CASE("reset in the middle of a transfer stops it on both sides") {
  Sim sim;
  sim.set_links(50e6, 5ms);
  StreamId id = sim.a.open("tcp", Priority::bulk, 50'000'000, false);
  REQUIRE(sim.run_until([&] { return sim.b.apps[id].received > 1'000'000; }, 10s));
  REQUIRE(sim.a.session.reset(id, kResetServiceBase + 7, "user pressed ^C").ok());
  REQUIRE(sim.run_until([&] { return sim.a.apps[id].closed && sim.b.apps[id].closed; }, 5s));
  CHECK(sim.b.apps[id].reset);
  CHECK(sim.b.apps[id].reset_code == kResetServiceBase + 7);
  CHECK(sim.b.apps[id].reset_reason == "user pressed ^C");
  CHECK_FALSE(sim.b.apps[id].corrupt);
  CHECK(sim.b.apps[id].received < 50'000'000);
  CHECK_FALSE(sim.a.apps[id].reset);  // no event for the side that reset it
}

TEST_CASE("API misuse returns errors") {
  Session s(Role::initiator);
  CHECK_FALSE(s.open("", nullptr, Priority::bulk).ok());
  CHECK_FALSE(s.open(std::string(kMaxServiceName + 1, 'a'), nullptr, Priority::bulk).ok());
  CHECK_FALSE(s.open("has space", nullptr, Priority::bulk).ok());
  CHECK_FALSE(s.open("pty", nlohmann::json::array(), Priority::bulk).ok());
  CHECK_FALSE(s.open("pty", nlohmann::json{{"big", std::string(kMaxOpenArgs, 'x')}}, Priority::bulk).ok());
  auto id = s.open("pty", nullptr, Priority::interactive);
  REQUIRE(id.ok());
  CHECK_FALSE(s.accept(*id).ok());           // our own stream
  CHECK_FALSE(s.write(99, as_bytes("x")).ok());  // unknown
  CHECK_FALSE(s.consume(*id, 1).ok());       // nothing delivered
  CHECK(s.finish(*id).ok());
  CHECK_FALSE(s.write(*id, as_bytes("x")).ok());  // finished
  CHECK(s.reset(*id, 0, "bye").ok());
  CHECK_FALSE(s.finish(*id).ok());
}

TEST_CASE("write takes what the stream can buffer and says when it can take more") {
  Sim sim;
  sim.set_links(10e6, 10ms);
  Config config;
  StreamId id = sim.a.open("tcp", Priority::bulk, 0, false);
  // Straight after open: the initial credit plus the send buffer, no more.
  Bytes big(4 * 1024 * 1024, 0x11);
  auto took = sim.a.session.write(id, big);
  REQUIRE(took.ok());
  CHECK(*took == kInitialWindow + config.send_buffer);
  CHECK(*sim.a.session.write(id, big) == 0);
  bool writable = false;
  sim.a.on_event = [&](const Event& e) {
    if (auto* w = std::get_if<StreamWritable>(&e)) writable = w->id == id;
  };
  sim.b.apps[id].consume = true;
  REQUIRE(sim.run_until([&] { return writable; }, 5s));
  CHECK(*sim.a.session.write(id, big) > 0);
}

TEST_CASE("a stalled stream blocks only itself, and its buffers stay within its window") {
  Sim sim;
  sim.set_links(100e6, 10ms);
  Config config;
  StreamId stalled = sim.a.open("tcp", Priority::bulk, 1'000'000'000, false);
  StreamId busy = sim.a.open("tcp", Priority::bulk, 40'000'000);
  sim.b.on_event = [&](const Event& e) {
    if (auto* o = std::get_if<StreamOpened>(&e); o && o->id == stalled) sim.b.apps[stalled].consume = false;
  };
  uint64_t max_send_buffered = 0;
  REQUIRE(sim.run_until(
      [&] {
        if (auto st = sim.a.session.stream_stats(stalled)) max_send_buffered = std::max(max_send_buffered, st->send_buffered);
        return sim.b.apps[busy].finished;
      },
      30s));
  const StreamApp& s = sim.b.apps[stalled];
  MESSAGE("busy stream: " << sim.b.apps[busy].received << " bytes; stalled stream: " << s.received
                          << " bytes received, at most " << s.max_recv_buffered << " buffered; sender held at most "
                          << max_send_buffered);
  CHECK(sim.b.apps[busy].received == 40'000'000);
  CHECK_FALSE(sim.b.apps[busy].corrupt);
  // The stalled consumer got exactly one window and nothing more, and the window never grew.
  CHECK(s.received == kInitialWindow);
  CHECK(s.max_recv_buffered <= kInitialWindow);
  auto st = sim.b.session.stream_stats(stalled);
  REQUIRE(st);
  CHECK(st->recv_window == kInitialWindow);
  CHECK(st->recv_buffered <= st->recv_window);
  // The sender holds at most the credit plus its send buffer for it.
  CHECK(max_send_buffered <= kInitialWindow + config.send_buffer);
}

TEST_CASE("interactive data overtakes a saturating bulk stream") {
  Sim sim;
  sim.set_links(50e6, 5ms);
  StreamId bulk = sim.a.open("sftp", Priority::bulk, 1'000'000'000, false);
  StreamId keys = sim.a.open("pty", Priority::interactive, 0, false);
  REQUIRE(sim.run_until([&] { return sim.b.apps[bulk].received > 5'000'000 && sim.b.apps[keys].accepted; }, 10s));

  uint64_t written_at_index = sim.ab.payloads_sent;
  std::optional<uint64_t> arrived_in;
  sim.on_deliver = [&](bool to_b, uint64_t index, const OutgoingPayload& p) {
    if (!to_b || arrived_in) return;
    size_t pos = 0;
    while (pos < p.bytes.size()) {
      auto f = decode_frame(p.bytes, pos);
      REQUIRE(f.ok());
      if (auto* d = std::get_if<DataFrame>(&*f); d && d->h.stream == keys) arrived_in = index;
    }
  };
  // Six keystrokes ("ls -l\r" in length): bytes of the stream's pattern, which the receiver checks.
  Bytes keystrokes(6);
  for (size_t i = 0; i < keystrokes.size(); ++i) keystrokes[i] = pattern_byte(keys, true, i);
  REQUIRE(*sim.a.session.write(keys, keystrokes) == keystrokes.size());
  REQUIRE(sim.run_until([&] { return sim.b.apps[keys].received == 6; }, 1s));
  REQUIRE(arrived_in);
  MESSAGE("keystrokes went out " << (*arrived_in - written_at_index) << " payload(s) after the write, behind bulk");
  CHECK(*arrived_in - written_at_index <= 1);
  CHECK_FALSE(sim.b.apps[keys].corrupt);
}

TEST_CASE("bulk streams share the link round robin") {
  Sim sim;
  sim.set_links(100e6, 2ms);
  std::vector<StreamId> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(sim.a.open("tcp", Priority::bulk, 1'000'000'000, false));
  sim.run_for(3s);
  uint64_t least = UINT64_MAX, most = 0;
  for (StreamId id : ids) {
    least = std::min(least, sim.b.apps[id].received);
    most = std::max(most, sim.b.apps[id].received);
    CHECK_FALSE(sim.b.apps[id].corrupt);
  }
  MESSAGE("4 bulk streams over 3 s: least " << least << " bytes, most " << most);
  CHECK(least > 0);
  CHECK(static_cast<double>(least) / static_cast<double>(most) > 0.9);
}

TEST_CASE("windows grow to the bandwidth-delay product: 16 MiB on a long fat link") {
  Sim sim;
  sim.set_links(125e6, 100ms);  // 1 Gbit/s, 200 ms round trip: 25 MB in flight
  StreamId id = sim.a.open("sftp", Priority::bulk, 1'000'000'000, false);
  uint64_t window = 0;
  TimePoint start = sim.now;
  sim.run_until(
      [&] {
        if (auto st = sim.b.session.stream_stats(id)) window = std::max(window, st->recv_window);
        return window >= kDefaultMaxWindow;
      },
      30s);
  MESSAGE("long fat link: receive window reached " << window << " bytes after "
                                                   << std::chrono::duration<double>(sim.now - start).count()
                                                   << " s, srtt "
                                                   << std::chrono::duration<double, std::milli>(sim.b.session.stats().srtt).count()
                                                   << " ms");
  CHECK(window >= 16 * 1024 * 1024);
  CHECK_FALSE(sim.b.apps[id].corrupt);
}

TEST_CASE("an interactive stream's window stops at 4 MiB where a bulk one goes on to 16 MiB") {
  Sim sim;
  sim.set_links(125e6, 100ms);  // the long fat link above: both would grow to 16 MiB
  StreamId bulk = sim.a.open("sftp", Priority::bulk, 1'000'000'000, false);
  StreamId interactive = sim.a.open("pty", Priority::interactive, 1'000'000'000, false);
  uint64_t bulk_window = 0, interactive_window = 0;
  sim.run_until(
      [&] {
        if (auto st = sim.b.session.stream_stats(bulk)) bulk_window = std::max(bulk_window, st->recv_window);
        if (auto st = sim.b.session.stream_stats(interactive))
          interactive_window = std::max(interactive_window, st->recv_window);
        return bulk_window >= kDefaultMaxWindow;
      },
      60s);
  MESSAGE("bulk window " << bulk_window << " bytes, interactive window " << interactive_window << " bytes");
  CHECK(bulk_window == kDefaultMaxWindow);
  CHECK(interactive_window == kDefaultMaxInteractiveWindow);
  CHECK_FALSE(sim.b.apps[bulk].corrupt);
  CHECK_FALSE(sim.b.apps[interactive].corrupt);
}

TEST_CASE("windows stay small on a link with a small bandwidth-delay product") {
  Sim sim;
  sim.set_links(20e6, 100us);  // 20 MB/s, 0.2 ms round trip
  StreamId id = sim.a.open("sftp", Priority::bulk, 1'000'000'000, false);
  uint64_t window = 0;
  TimePoint start = sim.now;
  sim.run_until(
      [&] {
        if (auto st = sim.b.session.stream_stats(id)) window = std::max(window, st->recv_window);
        return false;
      },
      3s);
  double rate = sim.b.apps[id].received / std::chrono::duration<double>(sim.now - start).count();
  MESSAGE("small link: receive window reached " << window << " bytes at " << rate / 1e6 << " MB/s, srtt "
                                                << std::chrono::duration<double, std::milli>(sim.b.session.stats().srtt).count()
                                                << " ms");
  CHECK(window <= 1024 * 1024);
  CHECK(rate > 0.9 * 20e6);  // and the link is still full
}

TEST_CASE("throughput on a long fat link approaches the link rate once the window has grown") {
  Sim sim;
  sim.set_links(125e6, 25ms);  // 1 Gbit/s, 50 ms round trip
  StreamId id = sim.a.open("sftp", Priority::bulk, 1'000'000'000, false);
  sim.run_for(3s);  // grow
  uint64_t before = sim.b.apps[id].received;
  sim.run_for(2s);
  double rate = (sim.b.apps[id].received - before) / 2.0;
  MESSAGE("steady state: " << rate / 1e6 << " MB/s on a 125 MB/s link");
  CHECK(rate > 0.9 * 125e6);
  CHECK_FALSE(sim.b.apps[id].corrupt);
}

TEST_CASE("resume after a relay restart: every byte of every stream exactly once, in order") {
  Sim sim;
  sim.set_links(100e6, 5ms);
  constexpr int kStreams = 8;
  constexpr uint64_t kBytes = 6'000'000;
  sim.b.incoming_to_send = kBytes / 2;
  sim.a.incoming_to_send = kBytes / 3;
  for (int i = 0; i < kStreams; ++i) {
    sim.a.open("tcp", i % 2 ? Priority::bulk : Priority::interactive, kBytes);
    sim.b.open("status", i % 3 ? Priority::bulk : Priority::interactive, kBytes / 4);
  }
  uint64_t total = 0;
  auto done = [&] {
    return all_delivered(sim.a, sim.b) && all_delivered(sim.b, sim.a) && all_closed(sim.a) && all_closed(sim.b);
  };
  // Three restarts while everything is in full flow, of different lengths.
  for (Duration gap : {Duration(300ms), Duration(50ms), Duration(2s)}) {
    sim.run_for(150ms);
    REQUIRE_FALSE(done());
    sim.outage(gap);
  }
  REQUIRE(sim.run_until(done, 60s));
  for (const Side* s : {&sim.a, &sim.b}) {
    for (const auto& [id, app] : s->apps) {
      CHECK_FALSE(app.corrupt);
      total += app.received;
    }
    CHECK(s->errors.empty());
  }
  auto sa = sim.a.session.stats(), sb = sim.b.session.stats();
  MESSAGE("resume: " << total << " bytes over " << 2 * kStreams << " streams; dropped payloads " << sim.ab.payloads_dropped
                     << "+" << sim.ba.payloads_dropped << "; retransmitted frames " << sa.frames_retransmitted << "+"
                     << sb.frames_retransmitted << "; duplicates dropped " << sa.duplicates_received << "+"
                     << sb.duplicates_received << "; timeouts " << sa.retransmit_timeouts + sb.retransmit_timeouts);
  CHECK(total == kStreams * (kBytes + kBytes / 4 + kBytes / 2 + kBytes / 3));
  CHECK(sim.ab.payloads_dropped > 0);
  CHECK(sim.ba.payloads_dropped > 0);
  CHECK(sa.retransmit_timeouts + sb.retransmit_timeouts == 0);  // resume did the work, not the timer
}

TEST_CASE("resume called on one side only still recovers both directions") {
  Sim sim;
  sim.set_links(100e6, 5ms);
  sim.b.incoming_to_send = 3'000'000;
  StreamId id = sim.a.open("tcp", Priority::bulk, 3'000'000);
  sim.run_for(100ms);
  sim.outage(200ms, /*resume_a=*/false, /*resume_b=*/true);
  TimePoint back = sim.now;
  REQUIRE(sim.run_until([&] { return sim.a.apps[id].closed && sim.b.apps[id].closed; }, 30s));
  CHECK(sim.a.apps[id].received == 3'000'000);
  CHECK(sim.b.apps[id].received == 3'000'000);
  CHECK_FALSE(sim.a.apps[id].corrupt);
  CHECK_FALSE(sim.b.apps[id].corrupt);
  CHECK(sim.now - back < 1s);  // well before any retransmit timeout
}

TEST_CASE("streams opened during an outage arrive after resume") {
  Sim sim;
  sim.set_links(100e6, 5ms);
  sim.ab.down = sim.ba.down = true;
  StreamId id = sim.a.open("pty", Priority::interactive, 5000);
  sim.run_for(100ms);
  sim.ab.down = sim.ba.down = false;
  sim.a.session.resume(sim.now);
  sim.b.session.resume(sim.now);
  REQUIRE(sim.run_until([&] { return sim.a.apps[id].closed && sim.b.apps[id].closed; }, 5s));
  CHECK(sim.b.apps[id].received == 5000);
  CHECK(sim.b.apps[id].opened_event);
}

TEST_CASE("a lost tail is retransmitted after the timeout, without resume") {
  Sim sim;
  sim.set_links(100e6, 5ms);
  StreamId id = sim.a.open("tcp", Priority::bulk, 200'000);
  // Lose the payload that carries the tail of the data and the fin; nothing after it reveals the gap.
  int lost = 0;
  sim.ab.drop_if = [&](uint64_t, const OutgoingPayload& p) {
    size_t pos = 0;
    bool has_fin = false;
    while (pos < p.bytes.size()) {
      auto f = decode_frame(p.bytes, pos);
      if (f && std::holds_alternative<FinFrame>(*f)) has_fin = true;
    }
    if (has_fin && lost < 1) return ++lost, true;
    return false;
  };
  REQUIRE(sim.run_until([&] { return sim.b.apps[id].finished; }, 10s));
  CHECK(lost == 1);
  CHECK(sim.b.apps[id].received == 200'000);
  CHECK_FALSE(sim.b.apps[id].corrupt);
  CHECK(sim.a.session.stats().retransmit_timeouts >= 1);
  // The timer fires no earlier than the minimum timeout (1 s).
  CHECK(sim.now - (TimePoint{} + 1000s) >= 1s);
}

TEST_CASE("a loss in the middle is repaired by the receiver's gap report, long before the timeout") {
  Sim sim;
  sim.set_links(100e6, 5ms);
  StreamId id = sim.a.open("tcp", Priority::bulk, 5'000'000);
  sim.ab.drop_if = [&](uint64_t index, const OutgoingPayload&) { return index == 20 || index == 21; };
  REQUIRE(sim.run_until([&] { return sim.b.apps[id].finished; }, 10s));
  CHECK(sim.b.apps[id].received == 5'000'000);
  CHECK_FALSE(sim.b.apps[id].corrupt);
  CHECK(sim.b.session.stats().gaps_detected > 0);
  CHECK(sim.a.session.stats().retransmit_timeouts == 0);
  CHECK(sim.now - (TimePoint{} + 1000s) < 1s);
}

TEST_CASE("acks are coalesced: far fewer ack-only payloads than data payloads") {
  Sim sim;
  sim.set_links(100e6, 5ms);
  StreamId id = sim.a.open("tcp", Priority::bulk, 20'000'000);
  REQUIRE(sim.run_until([&] { return sim.b.apps[id].finished; }, 10s));
  MESSAGE("a sent " << sim.ab.payloads_sent << " payloads, b answered with " << sim.ba.payloads_sent);
  CHECK(sim.ba.payloads_sent * 4 < sim.ab.payloads_sent);
}

TEST_CASE("many streams at once") {
  Sim sim;
  sim.set_links(200e6, 2ms);
  std::vector<StreamId> ids;
  for (int i = 0; i < 200; ++i) ids.push_back(sim.a.open("tcp", i % 5 ? Priority::bulk : Priority::interactive, 50'000 + i));
  REQUIRE(sim.run_until([&] { return all_delivered(sim.a, sim.b) && all_closed(sim.a) && all_closed(sim.b); }, 30s));
  for (StreamId id : ids) CHECK_FALSE(sim.b.apps[id].corrupt);
  CHECK(sim.a.session.stats().streams == 0);
}

TEST_CASE("frames the peer sent before it saw a reset are dropped quietly, even once the stream is gone") {
  // The relay serves interactive payloads first, so the ack for a reset can overtake bulk data the
  // peer sent just before the reset reached it. Those stragglers are no reason to reject anything.
  Session a(Role::initiator), b(Role::responder);
  TimePoint now = TimePoint{} + 1000s;
  std::vector<Event> events_a, events_b;
  auto drain = [&] {
    while (auto e = a.poll_event()) events_a.push_back(*e);
    while (auto e = b.poll_event()) {
      if (auto* o = std::get_if<StreamOpened>(&*e)) REQUIRE(b.accept(o->id).ok());
      events_b.push_back(*e);
    }
  };
  auto send_all = [&](Session& from, Session& to) {
    while (auto p = from.poll_payload(now)) to.receive(p->bytes, now);
    drain();
  };
  auto rejected = [](const std::vector<Event>& events) {
    return std::count_if(events.begin(), events.end(), [](const Event& e) { return std::holds_alternative<StreamRejected>(e); });
  };
  auto id = a.open("tcp", nullptr, Priority::bulk);
  REQUIRE(id.ok());
  send_all(a, b);
  send_all(b, a);
  Bytes bytes(40'000, 0x42);
  REQUIRE(*b.write(*id, bytes) == bytes.size());
  std::vector<OutgoingPayload> held;  // b's data, stuck behind other bulk traffic in the relay
  while (auto p = b.poll_payload(now)) held.push_back(std::move(*p));
  REQUIRE_FALSE(held.empty());

  REQUIRE(a.reset(*id, kResetServiceBase, "gone").ok());
  send_all(a, b);  // b sees the reset ...
  now += 50ms;
  b.on_timer(now);
  send_all(b, a);  // ... and its ack overtakes the held data: a forgets the stream
  CHECK(std::any_of(events_a.begin(), events_a.end(), [&](const Event& e) { return std::holds_alternative<StreamClosed>(e); }));
  for (const OutgoingPayload& p : held) a.receive(p.bytes, now);
  drain();
  now += 50ms;  // a's delayed ack lets b forget the stream too
  a.on_timer(now);
  send_all(a, b);
  send_all(b, a);
  CHECK(a.stats().stale_frames_dropped == (bytes.size() + kMaxDataChunk - 1) / kMaxDataChunk);  // its data frames
  CHECK(rejected(events_a) == 0);
  CHECK(rejected(events_b) == 0);
  CHECK_FALSE(a.broken());
  CHECK_FALSE(b.broken());
  CHECK(a.stats().streams == 0);
  CHECK(b.stats().streams == 0);
}

TEST_CASE("answering a StreamOpened is never an error, even if the peer reset the stream meanwhile") {
  // The open, some data and the peer's reset arrive at once: the application still has
  // StreamOpened, StreamData, StreamReset and StreamClosed to read when it answers the open.
  for (bool refuse : {false, true}) {
    CAPTURE(refuse);
    Session a(Role::initiator), b(Role::responder);
    TimePoint now = TimePoint{} + 1000s;
    auto id = a.open("tcp", nullptr, Priority::interactive);
    REQUIRE(id.ok());
    REQUIRE(*a.write(*id, as_bytes("hello")) == 5);
    std::vector<OutgoingPayload> payloads;
    while (auto p = a.poll_payload(now)) payloads.push_back(std::move(*p));
    REQUIRE(a.reset(*id, kResetServiceBase, "changed my mind").ok());
    while (auto p = a.poll_payload(now)) payloads.push_back(std::move(*p));
    for (const OutgoingPayload& p : payloads) b.receive(p.bytes, now);

    auto e = b.poll_event();
    REQUIRE(e);
    REQUIRE(std::holds_alternative<StreamOpened>(*e));
    if (refuse) {
      CHECK(b.reset(*id, kResetRefused, "no").ok());
    } else {
      CHECK(b.accept(*id).ok());
    }
    std::vector<Event> rest;
    while (auto more = b.poll_event()) rest.push_back(*more);
    // A refusal is the application's reset: what it has not read of the stream is moot.
    bool data = std::any_of(rest.begin(), rest.end(), [](const Event& ev) { return std::holds_alternative<StreamData>(ev); });
    CHECK(data == !refuse);
    CHECK(std::holds_alternative<StreamClosed>(rest.back()));
    // Nothing goes back for the stream but acks: no accept, no reset.
    now += 50ms;
    b.on_timer(now);
    while (auto p = b.poll_payload(now)) {
      size_t pos = 0;
      while (pos < p->bytes.size()) {
        auto f = decode_frame(p->bytes, pos);
        REQUIRE(f.ok());
        CHECK_FALSE(std::holds_alternative<AcceptFrame>(*f));
        CHECK_FALSE(std::holds_alternative<ResetFrame>(*f));
      }
    }
    CHECK_FALSE(b.broken());
  }
}
