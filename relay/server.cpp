// The relay's lws context on the caller's libuv loop: listening (ws:// and/or wss:// on one port),
// the housekeeping tick (hello deadlines, keep-alives, idle links, lingering dial grants) and the
// graceful shutdown that tells every peer "restarting" before closing.
#include <sys/resource.h>

#include "common/util/heap.hpp"
#include "common/util/log.hpp"
#include "relay/receive_buffers.hpp"
#include "relay/relay.hpp"

namespace airlock::relayd {

using namespace std::chrono;

namespace {

// lws keeps pointers into this table until its teardown finishes (after the Relay is gone), so it
// lives for the whole process. The link protocol's receive buffer size (0 here) is set from the
// config at start.
lws_protocols g_protocols[] = {
    {"http", Relay::http_callback, sizeof(HttpSession), 0, 0, nullptr, 0},
    {"airlock-relay.v1", Relay::link_callback, sizeof(Peer*), 0, 0, nullptr, relay::kMaxFrameSize + LWS_PRE},
    {nullptr, nullptr, 0, 0, 0, nullptr, 0},
};

void raise_fd_limit(size_t wanted) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t target = std::min<rlim_t>(rl.rlim_max, static_cast<rlim_t>(wanted));
  if (rl.rlim_cur < target) {
    rl.rlim_cur = target;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

std::string key_b64(const relay::PeerKey& key) { return crypto::key_to_base64(key); }

std::string Peer::name() const {
  std::string n = hello_done ? log::short_key(key_b64) : "peer#" + std::to_string(id);
  if (hello_done) {
    n += " (";
    n += token::role_name(claims.role);
    n += claims.role == token::Role::agent ? " " + claims.workspace_name : " " + claims.sub;
    n += ")";
  }
  return n + " from " + source;
}

RelayMetrics::RelayMetrics(metrics::Registry& r)
    : registry(r),
      conns_handshake(r.gauge("airlock_relay_connections", "Relay links open now, by kind.", {{"kind", "handshake"}})),
      conns_agent(r.gauge("airlock_relay_connections", "Relay links open now, by kind.", {{"kind", "agent"}})),
      conns_client(r.gauge("airlock_relay_connections", "Relay links open now, by kind.", {{"kind", "client"}})),
      accepted(r.counter("airlock_relay_connections_accepted_total", "Relay links accepted (WebSocket established).")),
      bytes_in(r.counter("airlock_relay_bytes_total", "Frame bytes by direction.", {{"direction", "in"}})),
      bytes_out(r.counter("airlock_relay_bytes_total", "Frame bytes by direction.", {{"direction", "out"}})),
      packets_in(r.counter("airlock_relay_packets_total", "Packets by direction.", {{"direction", "in"}})),
      packets_out(r.counter("airlock_relay_packets_total", "Packets by direction.", {{"direction", "out"}})),
      queue_bytes(r.gauge("airlock_relay_queue_bytes", "Bytes waiting in per-peer send queues.")),
      queue_frames(r.gauge("airlock_relay_queue_frames", "Frames waiting in per-peer send queues.")),
      backpressure_pauses(r.counter("airlock_relay_backpressure_events_total",
                                    "Backpressure: senders paused because a destination queue passed its high watermark, and resumed.",
                                    {{"event", "pause"}})),
      backpressure_resumes(r.counter("airlock_relay_backpressure_events_total",
                                     "Backpressure: senders paused because a destination queue passed its high watermark, and resumed.",
                                     {{"event", "resume"}})),
      rate_limited(r.counter("airlock_relay_rate_limited_total", "Times a peer's reading was paused by its byte rate limit.")),
      dials_ok(r.counter("airlock_relay_dials_total", "Dial requests by result.", {{"result", "ok"}})),
      dials_refused(r.counter("airlock_relay_dials_total", "Dial requests by result.", {{"result", "refused"}})),
      workspaces(r.gauge("airlock_relay_workspaces", "Workspaces with at least one agent connected.")) {}

metrics::Counter& RelayMetrics::disconnects(const std::string& reason) {
  return registry.counter("airlock_relay_disconnects_total", "Relay links closed, by reason.", {{"reason", reason}});
}
metrics::Counter& RelayMetrics::peer_gone(relay::PeerGoneReason reason) {
  return registry.counter("airlock_relay_peer_gone_total", "peer_gone frames sent, by reason.",
                          {{"reason", std::string(relay::peer_gone_reason_name(reason))}});
}
metrics::Counter& RelayMetrics::http(const std::string& path, int status) {
  return registry.counter("airlock_relay_http_requests_total", "HTTP requests by path and status.",
                          {{"path", path}, {"code", std::to_string(status)}});
}

Relay::Relay(uv_loop_t* loop, Config config)
    : loop_(loop), config_(std::move(config)), tick_(loop), shaper_(loop), shutdown_timer_(loop), metrics_(registry_) {
  relay_public_ = crypto::x25519_public(config_.relay_private);
  // Series that should read 0 rather than be absent before the first event.
  for (const char* reason : {"closed", "hello_timeout", "hello_failed", "token_refused", "frame_malformed",
                             "frame_too_big", "queue_overflow", "rate_limit", "idle_timeout", "replaced", "shutdown"})
    metrics_.disconnects(reason);
  metrics_.peer_gone(relay::PeerGoneReason::disconnected);
  metrics_.peer_gone(relay::PeerGoneReason::not_connected);
  metrics_.peer_gone(relay::PeerGoneReason::not_allowed);
}

Relay::~Relay() {
  context_.reset();
  for (auto& [id, p] : peers_) delete p;
}

Status Relay::start() {
  raise_fd_limit(config_.max_connections + 256);
  g_protocols[1].rx_buffer_size = config_.ws_rx_buffer_bytes;
  ReceiveBufferPool::install_for_lws();
  heap::keep_freed_memory_between_bursts();  // each packet is a 64 KiB buffer, freed once sent

  lws_context_creation_info info{};
  info.port = config_.listen_port;
  bool any = config_.listen_host.empty() || config_.listen_host == "0.0.0.0" || config_.listen_host == "::";
  info.iface = any && config_.listen_host != "0.0.0.0" ? nullptr : config_.listen_host.c_str();
  info.protocols = g_protocols;
  info.gid = -1;
  info.uid = -1;
  info.vhost_name = "airlock-relay";
  info.server_string = "airlock-relay";
  info.options = LWS_SERVER_OPTION_SKIP_SERVER_CANONICAL_NAME;
  info.timeout_secs = 10;       // HTTP / WebSocket handshake
  info.keepalive_timeout = 10;  // idle HTTP keep-alive connections
  // One read buffer shared by every link, not per link; a link's read is capped by the smaller of
  // this and its own receive buffer.
  info.pt_serv_buf_size = static_cast<unsigned>(std::max<size_t>(32 * 1024, config_.ws_rx_buffer_bytes + LWS_PRE));
  info.fd_limit_per_thread = static_cast<unsigned>(config_.max_connections + 128);
  if (tls()) {
    info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    if (config_.plain_on_tls_port) info.options |= LWS_SERVER_OPTION_ALLOW_NON_SSL_ON_SSL_PORT | LWS_SERVER_OPTION_ALLOW_HTTP_ON_HTTPS_LISTENER;
    info.ssl_cert_filepath = config_.tls_cert.c_str();
    info.ssl_private_key_filepath = config_.tls_key.c_str();
  }
  auto ctx = net::LwsContext::create(loop_, info, this);
  if (!ctx) return make_error("cannot listen on " + config_.listen_host + ":" + std::to_string(config_.listen_port) +
                              ": " + ctx.error().message);
  context_ = std::move(*ctx);
  lws_vhost* vh = lws_get_vhost_by_name(context_->get(), "airlock-relay");
  port_ = vh ? lws_get_vhost_listen_port(vh) : config_.listen_port;
  if (port_ <= 0) return make_error("the relay is not listening (port " + std::to_string(port_) + ")");
  tick_.start(milliseconds(500), [this] { on_tick(); }, milliseconds(500));
  return Ok{};
}

Peer* Relay::find(uint64_t id) const {
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : it->second;
}

Peer* Relay::find(const relay::PeerKey& key) const {
  auto it = by_key_.find(key);
  return it == by_key_.end() ? nullptr : it->second;
}

void Relay::on_tick() {
  auto now = Clock::now();
  std::vector<uint64_t> ids;
  ids.reserve(peers_.size());
  for (auto& [id, p] : peers_) ids.push_back(id);
  for (uint64_t id : ids) {
    Peer* p = find(id);
    if (!p || p->closing) continue;
    if (!p->hello_done) {
      if (now - p->connected_at > config_.hello_timeout)
        close_peer(*p, "no client hello within " + std::to_string(config_.hello_timeout.count()) + " ms", "hello_timeout");
      continue;
    }
    if (now - p->last_tx >= config_.keepalive_interval) queue_frame(*p, relay::KeepAlive{});
    if (!p->rx_paused && now - p->last_rx > config_.idle_timeout)
      close_peer(*p, "nothing received for " + std::to_string(duration_cast<seconds>(now - p->last_rx).count()) + " s",
                 "idle_timeout");
  }
  expire_pairs(now);
}

void Relay::begin_shutdown() {
  if (stopped_) return;
  if (shutting_down_) {
    LOG_WARN("relay", "second signal: stopping now");
    finish_shutdown();
    return;
  }
  shutting_down_ = true;
  shutdown_started_ = Clock::now();
  LOG_INFO("relay", "shutting down: telling %zu peers to reconnect in %lld ms", peers_.size(),
           static_cast<long long>(config_.restart_reconnect_in.count()));
  relay::Restarting r{static_cast<uint32_t>(config_.restart_reconnect_in.count()),
                      static_cast<uint32_t>(config_.restart_try_for.count())};
  for (auto& [id, p] : peers_) {
    if (p->hello_done && !p->closing) queue_frame(*p, r);
  }
  shutdown_timer_.start(milliseconds(20), [this] {
    auto now = Clock::now();
    if (!links_closed_) {
      bool drained = true;
      for (auto& [id, p] : peers_) drained = drained && (p->control_q.empty() || p->closing);
      if (!drained && now - shutdown_started_ < config_.shutdown_grace) return;
      std::vector<uint64_t> ids;
      for (auto& [id, p] : peers_) ids.push_back(id);
      for (uint64_t id : ids) {
        if (Peer* p = find(id)) close_peer(*p, "relay restarting", "shutdown", LWS_CLOSE_STATUS_GOINGAWAY, false);
      }
      links_closed_ = true;
      shutdown_started_ = now;
      return;
    }
    if (peers_.empty() || now - shutdown_started_ > seconds(1)) finish_shutdown();
  }, milliseconds(20));
}

void Relay::finish_shutdown() {
  if (stopped_) return;
  stopped_ = true;
  tick_.stop();
  shaper_.stop();
  shutdown_timer_.stop();
  context_.reset();  // lws closes what is left and tears down on the loop
  for (auto& [id, p] : peers_) delete p;
  peers_.clear();
  by_key_.clear();
  LOG_INFO("relay", "stopped");
  if (on_stopped) on_stopped();
}

}  // namespace airlock::relayd
