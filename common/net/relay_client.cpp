// RelayClient: the lws glue for the peer side of a relay link. One lws context per client, one
// protocol callback with a switch on the reason; the frame codec and the handshake are in
// common/relay.
#include "common/net/relay_client.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include <libwebsockets.h>

#include "common/net/lws.hpp"
#include "common/net/uv.hpp"
#include "common/relay/handshake.hpp"
#include "common/relay/queue.hpp"
#include "common/util/log.hpp"

namespace airlock::net {

using namespace std::chrono;
using relay::FrameQueue;
using Clock = steady_clock;

namespace {

constexpr size_t kClientRxBuffer = 16 * 1024;    // lws's per-link receive chunk
constexpr size_t kControlQueueLimit = 1024 * 1024;  // control frames waiting to go out
constexpr int kWritesPerCallback = 32;             // then yield to other sockets on the loop

int lws_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);

const lws_protocols kProtocols[] = {
    {"airlock-relay.v1", lws_callback, 0, kClientRxBuffer, 0, nullptr, relay::kMaxFrameSize + LWS_PRE},
    {nullptr, nullptr, 0, 0, 0, nullptr, 0},
};

std::string key_b64(const relay::PeerKey& k) { return crypto::key_to_base64(k); }

}  // namespace

struct RelayClient::Impl {
  enum class Phase { idle, connecting, hello, up, backoff, stopped };

  RelayClient& self;
  uv_loop_t* loop;
  Options opts;
  WsUrl url;
  std::string host_header;
  std::unique_ptr<LwsContext> ctx;
  lws* wsi = nullptr;
  bool in_connect = false;
  bool connect_failed_in_call = false;
  Phase phase = Phase::idle;
  Clock::time_point phase_since = Clock::now();
  Clock::time_point last_rx = Clock::now();
  Clock::time_point last_tx = Clock::now();

  Bytes rx;  // a message being reassembled; released when complete
  FrameQueue control_q, interactive_q, bulk_q;
  bool blocked = false;  // a sender was told "not writable" and waits for on_writable
  bool receiving = true;
  bool established = false;  // the WebSocket is open (flow control applies from here)

  relay::Challenge challenge{};
  std::string error_text;    // from the relay's error frame
  std::string peer_close;    // from the relay's close frame
  std::string local_reason;  // why we closed it ourselves
  bool was_connected = false;

  int attempt = 0;
  std::optional<Clock::time_point> restart_until;
  milliseconds restart_in{0};
  bool restart_first = false;

  struct PendingPing {
    relay::PingData data;
    Clock::time_point sent;
    std::function<void(Result<microseconds>)> done;
  };
  std::vector<PendingPing> pings;

  Timer tick;
  Timer reconnect_timer;
  std::shared_ptr<int> life = std::make_shared<int>(0);  // expires when the client is destroyed

  Impl(RelayClient& s, uv_loop_t* l, Options o) : self(s), loop(l), opts(std::move(o)), tick(l), reconnect_timer(l) {}

  // Runs a user callback; false if it destroyed the client (then touch nothing).
  template <typename F>
  bool call(F&& f) {
    std::weak_ptr<int> alive = life;
    f();
    return !alive.expired();
  }

  void set_phase(Phase p) {
    phase = p;
    phase_since = Clock::now();
  }

  size_t data_bytes() const { return interactive_q.bytes() + bulk_q.bytes(); }
  bool writable() const { return phase == Phase::up && data_bytes() < opts.send_buffer_bytes; }

  Status create_context() {
    lws_context_creation_info info{};
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = kProtocols;
    info.gid = -1;
    info.uid = -1;
    info.timeout_secs = static_cast<unsigned>(std::max<int64_t>(1, duration_cast<seconds>(opts.handshake_timeout).count()));
    info.connect_timeout_secs = info.timeout_secs;
    // Only a wss:// link needs TLS (and the trust store loaded with it).
    ClientTls tls;
    if (url.tls) {
      auto t = make_client_tls(opts.ca_file);
      if (!t) return t.error();
      tls = std::move(*t);
    }
    auto c = LwsContext::create(loop, info, this, std::move(tls));
    if (!c) return c.error();
    ctx = std::move(*c);
    return Ok{};
  }

  void connect_now() {
    if (phase == Phase::stopped) return;
    set_phase(Phase::connecting);
    error_text.clear();
    peer_close.clear();
    local_reason.clear();
    rx.clear();
    lws_client_connect_info ci{};
    ci.context = ctx->get();
    ci.address = url.host.c_str();
    ci.port = url.port;
    ci.path = url.path.c_str();
    ci.host = host_header.c_str();
    ci.origin = host_header.c_str();
    ci.protocol = kProtocols[0].name;
    ci.local_protocol_name = kProtocols[0].name;
    if (url.tls) {
      ci.ssl_connection = LCCSCF_USE_SSL;
      if (opts.insecure_skip_verify)
        ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK | LCCSCF_ALLOW_EXPIRED |
                             LCCSCF_ALLOW_INSECURE;
    }
    LOG_DEBUG("relay-link", "connecting to %s", opts.url.c_str());
    in_connect = true;
    connect_failed_in_call = false;
    std::weak_ptr<int> alive = life;
    lws* w = lws_client_connect_via_info(&ci);
    if (alive.expired()) return;
    in_connect = false;
    if (connect_failed_in_call) return;  // the error callback already ran and scheduled a retry
    if (!w) {
      link_down("could not start connecting to " + opts.url);
      return;
    }
    wsi = w;
  }

  bool ours(lws* w) const { return w && (w == wsi || (in_connect && !wsi && !connect_failed_in_call)); }

  // The link is gone (refused, failed, closed): tell the application and plan the next attempt.
  void link_down(std::string reason) {
    if (in_connect) connect_failed_in_call = true;
    wsi = nullptr;
    established = false;
    rx = Bytes();
    control_q.clear();
    interactive_q.clear();
    bulk_q.clear();
    blocked = false;
    if (!error_text.empty()) reason = "relay: " + error_text;
    else if (!local_reason.empty()) reason = local_reason;
    else if (!peer_close.empty()) reason = "relay closed the link: " + peer_close;
    error_text.clear();
    local_reason.clear();
    peer_close.clear();
    auto pending = std::move(pings);
    pings.clear();
    const bool stopped = phase == Phase::stopped;
    if (!stopped) set_phase(Phase::backoff);
    was_connected = false;
    LOG_INFO("relay-link", "link to %s down: %s", opts.url.c_str(), reason.c_str());
    for (auto& p : pending) {
      if (!call([&] { p.done(make_error("relay link closed before the pong: " + reason)); })) return;
    }
    if (self.on_state && !call([&] { self.on_state(LinkState::disconnected, reason); })) return;
    if (phase != Phase::backoff || !opts.reconnect) return;
    schedule_reconnect();
  }

  void schedule_reconnect() {
    milliseconds delay;
    auto now = Clock::now();
    double jitter = 0.5 + 0.5 * (crypto::random_u32() / 4294967296.0);
    if (restart_until && now < *restart_until) {
      // The relay said it is restarting: come back when it said, then retry briskly.
      delay = restart_first ? restart_in + milliseconds(static_cast<int64_t>(restart_in.count() * 0.25 * jitter))
                            : milliseconds(static_cast<int64_t>(500 * jitter));
      restart_first = false;
    } else {
      restart_until.reset();
      int64_t base = opts.backoff_initial.count() << std::min(attempt, 16);
      base = std::min<int64_t>(base, opts.backoff_max.count());
      delay = milliseconds(static_cast<int64_t>(base * jitter));
    }
    ++attempt;
    LOG_DEBUG("relay-link", "reconnecting in %lld ms", static_cast<long long>(delay.count()));
    reconnect_timer.start(delay, [this] { connect_now(); });
  }

  void close_link(std::string reason) {
    if (local_reason.empty()) local_reason = std::move(reason);
    if (wsi) lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
  }

  void queue_control_frame(const relay::Frame& f) {
    control_q.push(relay::encode(f, LWS_PRE));
    if (wsi) lws_callback_on_writable(wsi);
  }

  void on_tick() {
    auto now = Clock::now();
    if ((phase == Phase::connecting || phase == Phase::hello) && now - phase_since > opts.handshake_timeout) {
      close_link("relay handshake did not finish within " + std::to_string(opts.handshake_timeout.count()) + " ms");
    }
    if (phase == Phase::up) {
      if (now - last_tx >= opts.keepalive_interval) queue_control_frame(relay::KeepAlive{});
      if (receiving && now - last_rx > opts.idle_timeout)
        close_link("nothing heard from the relay for " + std::to_string(duration_cast<seconds>(now - last_rx).count()) + " s");
    }
    for (size_t i = 0; i < pings.size();) {
      if (now - pings[i].sent > opts.ping_timeout) {
        auto p = std::move(pings[i]);
        pings.erase(pings.begin() + static_cast<std::ptrdiff_t>(i));
        if (!call([&] { p.done(make_error("no pong from the relay within " + std::to_string(opts.ping_timeout.count()) + " ms")); }))
          return;
      } else {
        ++i;
      }
    }
  }

  // ---- receiving ------------------------------------------------------------------------------
  // Returns -1 to close the link.
  int on_receive(lws* w, const uint8_t* in, size_t len) {
    last_rx = Clock::now();
    if (lws_is_first_fragment(w)) rx.clear();
    if (!lws_frame_is_binary(w)) {
      local_reason = "relay sent a text message; relay frames are binary";
      return -1;
    }
    if (rx.size() + len > relay::kMaxFrameSize) {
      local_reason = "relay sent a frame larger than " + std::to_string(relay::kMaxFrameSize) + " bytes";
      return -1;
    }
    if (rx.empty()) rx.reserve(std::min<size_t>(relay::kMaxFrameSize, len + lws_remaining_packet_payload(w)));
    rx.insert(rx.end(), in, in + len);
    if (!lws_is_final_fragment(w) || lws_remaining_packet_payload(w) > 0) return 0;
    Bytes frame = std::move(rx);
    rx = Bytes();
    return on_frame(frame);
  }

  int on_frame(const Bytes& bytes) {
    auto decoded = relay::decode(bytes);
    if (!decoded) {
      local_reason = "relay sent a malformed frame: " + decoded.error().message;
      return -1;
    }
    relay::Frame& frame = *decoded;
    if (phase == Phase::connecting) {
      auto* hello = std::get_if<relay::ServerHello>(&frame);
      if (!hello) return protocol_error(frame, "a server hello");
      if (opts.expected_relay_key && !crypto::equal_ct(*opts.expected_relay_key, hello->relay_key)) {
        local_reason = "relay key " + key_b64(hello->relay_key) + " is not the expected " + key_b64(*opts.expected_relay_key);
        return -1;
      }
      auto reply = relay::make_client_hello(*hello, opts.private_key, opts.token, opts.meta.dump(), LWS_PRE);
      if (!reply) {
        local_reason = reply.error().message;
        return -1;
      }
      self.relay_key_ = hello->relay_key;
      control_q.push(std::move(*reply));
      lws_callback_on_writable(wsi);
      set_phase(Phase::hello);
      return 0;
    }
    if (phase == Phase::hello) {
      if (auto* e = std::get_if<relay::ErrorFrame>(&frame)) {
        error_text = std::string(e->text);
        return 0;
      }
      auto* welcome = std::get_if<relay::ServerWelcome>(&frame);
      if (!welcome) return protocol_error(frame, "a server welcome");
      self.observed_address_ = std::string(welcome->observed_address);
      self.welcome_info_ = nlohmann::json::parse(welcome->info, nullptr, false);
      set_phase(Phase::up);
      attempt = 0;
      restart_until.reset();
      was_connected = true;
      blocked = false;
      last_tx = last_rx = Clock::now();
      LOG_INFO("relay-link", "connected to %s as %s (seen from %s)", opts.url.c_str(),
               log::short_key(key_b64(self.public_key_)).c_str(), self.observed_address_.c_str());
      if (self.on_state && !call([&] { self.on_state(LinkState::connected, "hello accepted"); })) return 0;
      if (phase == Phase::up && self.on_writable && !call([&] { self.on_writable(); })) return 0;
      return 0;
    }
    return dispatch(frame);
  }

  int protocol_error(const relay::Frame& got, std::string_view expected) {
    local_reason = "relay sent " + std::string(relay::frame_type_name(relay::frame_type(got))) + " where " +
                   std::string(expected) + " belongs";
    return -1;
  }

  int dispatch(relay::Frame& frame) {
    switch (relay::frame_type(frame)) {
      case relay::FrameType::recv_packet: {
        auto& p = std::get<relay::RecvPacket>(frame);
        if (self.on_packet) call([&] { self.on_packet(p.src, p.flags, p.packet); });
        return 0;
      }
      case relay::FrameType::control: {
        auto json = nlohmann::json::parse(std::get<relay::Control>(frame).json, nullptr, false);
        if (self.on_control) call([&] { self.on_control(json); });
        return 0;
      }
      case relay::FrameType::peer_gone: {
        auto& g = std::get<relay::PeerGone>(frame);
        if (self.on_peer_gone) call([&] { self.on_peer_gone(g.key, g.reason, g.text); });
        return 0;
      }
      case relay::FrameType::peer_present: {
        auto& p = std::get<relay::PeerPresent>(frame);
        if (self.on_peer_present) call([&] { self.on_peer_present(p.key); });
        return 0;
      }
      case relay::FrameType::ping:
        queue_control_frame(relay::Pong{std::get<relay::Ping>(frame).data});
        return 0;
      case relay::FrameType::pong: {
        auto& data = std::get<relay::Pong>(frame).data;
        for (size_t i = 0; i < pings.size(); ++i) {
          if (pings[i].data == data) {
            auto p = std::move(pings[i]);
            pings.erase(pings.begin() + static_cast<std::ptrdiff_t>(i));
            auto rtt = duration_cast<microseconds>(Clock::now() - p.sent);
            call([&] { p.done(rtt); });
            return 0;
          }
        }
        return 0;
      }
      case relay::FrameType::keep_alive:
        return 0;
      case relay::FrameType::restarting: {
        auto& r = std::get<relay::Restarting>(frame);
        restart_in = milliseconds(r.reconnect_in_ms);
        restart_until = Clock::now() + milliseconds(r.reconnect_in_ms) + milliseconds(r.try_for_ms);
        restart_first = true;
        attempt = 0;
        LOG_INFO("relay-link", "relay is restarting: reconnecting in %u ms", r.reconnect_in_ms);
        if (self.on_restarting) call([&] { self.on_restarting(restart_in); });
        return 0;
      }
      case relay::FrameType::error:
        error_text = std::string(std::get<relay::ErrorFrame>(frame).text);
        return 0;
      default:
        return protocol_error(frame, "a relay-to-peer frame");
    }
  }

  // ---- sending --------------------------------------------------------------------------------
  int on_writeable(lws* w) {
    if (phase == Phase::stopped || !local_reason.empty()) return -1;
    for (int i = 0; i < kWritesPerCallback; ++i) {
      FrameQueue* q = !control_q.empty() ? &control_q : nullptr;
      if (!q && phase == Phase::up) q = !interactive_q.empty() ? &interactive_q : !bulk_q.empty() ? &bulk_q : nullptr;
      if (!q) break;
      Bytes& f = q->front();
      int n = lws_write(w, f.data() + LWS_PRE, f.size() - LWS_PRE, LWS_WRITE_BINARY);
      if (n < 0) {
        local_reason = "writing to the relay failed";
        return -1;
      }
      q->pop();
      last_tx = Clock::now();
      if (lws_send_pipe_choked(w)) break;
    }
    if (!control_q.empty() || (phase == Phase::up && data_bytes() > 0)) lws_callback_on_writable(w);
    if (blocked && phase == Phase::up && data_bytes() <= opts.send_buffer_bytes / 2) {
      blocked = false;
      if (self.on_writable) call([&] { self.on_writable(); });
    }
    return 0;
  }
};

namespace {

int lws_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  auto* impl = static_cast<RelayClient::Impl*>(LwsContext::owner(wsi));
  if (!impl) return 0;  // the client has gone; lws is tearing down
  switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
      if (!impl->ours(wsi)) return 0;
      std::string why = in && len ? std::string(static_cast<const char*>(in), len)
                                  : in ? std::string(static_cast<const char*>(in)) : "connection failed";
      impl->link_down("could not connect to " + impl->opts.url + ": " + why);
      return 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
      if (!impl->ours(wsi)) return -1;
      impl->wsi = wsi;
      impl->established = true;
      impl->last_rx = Clock::now();
      if (!impl->receiving) lws_rx_flow_control(wsi, 0);
      return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
      if (!impl->ours(wsi)) return -1;
      return impl->on_receive(wsi, static_cast<const uint8_t*>(in), len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
      if (!impl->ours(wsi)) return -1;
      return impl->on_writeable(wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
      if (impl->ours(wsi) && len >= 2) {
        auto* p = static_cast<const uint8_t*>(in);
        impl->peer_close = "code " + std::to_string(load_be16(p));
        if (len > 2) impl->peer_close += ": " + std::string(reinterpret_cast<const char*>(p + 2), len - 2);
      }
      return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
      if (impl->ours(wsi)) impl->link_down("connection closed");
      return 0;
    default:
      break;
  }
  (void)user;
  return 0;
}

}  // namespace

RelayClient::RelayClient(uv_loop_t* loop, Options options) : impl_(std::make_unique<Impl>(*this, loop, std::move(options))) {
  public_key_ = crypto::x25519_public(impl_->opts.private_key);
}

RelayClient::~RelayClient() {
  impl_->life.reset();
  impl_->ctx.reset();  // detaches this client from lws at once; lws tears down on the loop
}

Status RelayClient::start() {
  auto& d = *impl_;
  if (d.phase != Impl::Phase::idle && d.phase != Impl::Phase::stopped) return Ok{};
  auto url = parse_ws_url(d.opts.url);
  if (!url) return url.error();
  d.url = *url;
  d.host_header = d.url.host_header();
  if (d.opts.token.empty()) return make_error("no token: the relay refuses links without one");
  if (!d.ctx) {
    if (auto s = d.create_context(); !s) return s;
  }
  d.attempt = 0;
  d.tick.start(seconds(1), [&d] { d.on_tick(); }, seconds(1));
  d.set_phase(Impl::Phase::idle);
  d.connect_now();
  return Ok{};
}

void RelayClient::stop(std::string_view reason) {
  auto& d = *impl_;
  if (d.phase == Impl::Phase::stopped) return;
  d.set_phase(Impl::Phase::stopped);
  d.reconnect_timer.stop();
  d.tick.stop();
  if (d.wsi) d.close_link(std::string(reason));
}

bool RelayClient::connected() const { return impl_->phase == Impl::Phase::up; }
bool RelayClient::writable() const { return impl_->writable(); }
size_t RelayClient::queued_bytes() const { return impl_->data_bytes(); }

Status RelayClient::send_packet(const relay::PeerKey& dst, uint8_t flags, ByteView bytes) {
  auto& d = *impl_;
  if (bytes.empty()) return make_error("packet is empty");
  if (bytes.size() > relay::kMaxPacketSize)
    return make_error("packet of " + std::to_string(bytes.size()) + " bytes exceeds the " +
                      std::to_string(relay::kMaxPacketSize) + "-byte limit");
  if (flags & ~relay::kFlagsKnown) return make_error("packet flags set reserved bits");
  if (d.phase != Impl::Phase::up) return make_error("relay link is down");
  if (!d.writable()) {
    d.blocked = true;
    return make_error("relay link is busy: wait for on_writable");
  }
  auto frame = relay::encode(relay::SendPacket{dst, flags, bytes}, LWS_PRE);
  (flags & relay::kFlagInteractive ? d.interactive_q : d.bulk_q).push(std::move(frame));
  if (!d.writable()) d.blocked = true;
  lws_callback_on_writable(d.wsi);
  return Ok{};
}

Status RelayClient::send_control(const nlohmann::json& message) {
  auto& d = *impl_;
  if (!message.is_object()) return make_error("control message must be a JSON object");
  std::string text = message.dump();
  if (text.size() > relay::kMaxControlSize)
    return make_error("control message of " + std::to_string(text.size()) + " bytes exceeds the " +
                      std::to_string(relay::kMaxControlSize) + "-byte limit");
  if (d.phase != Impl::Phase::up) return make_error("relay link is down");
  if (d.control_q.bytes() > kControlQueueLimit) return make_error("relay link's control queue is full");
  d.queue_control_frame(relay::Control{text});
  return Ok{};
}

void RelayClient::ping(std::function<void(Result<microseconds>)> done) {
  auto& d = *impl_;
  if (d.phase != Impl::Phase::up) {
    done(make_error("relay link is down"));
    return;
  }
  relay::PingData data;
  crypto::random_bytes(data);
  d.pings.push_back({data, Clock::now(), std::move(done)});
  d.queue_control_frame(relay::Ping{data});
}

void RelayClient::set_receiving(bool on) {
  auto& d = *impl_;
  if (d.receiving == on) return;
  d.receiving = on;
  d.last_rx = Clock::now();
  if (d.wsi && d.established) lws_rx_flow_control(d.wsi, on ? 1 : 0);
}

}  // namespace airlock::net
