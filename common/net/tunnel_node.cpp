#include "common/net/tunnel_node.hpp"

#include <type_traits>
#include <variant>

#include "common/util/heap.hpp"
#include "common/util/log.hpp"

namespace airlock::net {

namespace {
std::string key_text(const crypto::Key& k) { return log::short_key(crypto::key_to_base64(k)); }
}  // namespace

// ---- PeerLink -----------------------------------------------------------------------------------

PeerLink::PeerLink(TunnelNode& node, const crypto::Key& key, stream::Role role)
    : node_(node), key_(key), session_(role) {}

// The node is going away: handlers hear on_closed (so they can free themselves) but no reset.
PeerLink::~PeerLink() {
  auto handlers = std::move(handlers_);
  handlers_.clear();
  for (auto& [id, h] : handlers) h->on_closed();
}

namespace {
void warn_if(const Status& s, const char* what, const crypto::Key& key) {
  if (!s) LOG_DEBUG("tunnel", "%s (peer %s): %s", what, key_text(key).c_str(), s.error().message.c_str());
}
}  // namespace

stream::StreamId PeerLink::open(std::string_view service, const nlohmann::json& args, stream::Priority priority,
                                StreamHandler* handler) {
  auto id = session_.open(service, args, priority);
  if (!id) {
    LOG_WARN("tunnel", "cannot open %.*s stream to %s: %s", static_cast<int>(service.size()), service.data(),
             key_text(key_).c_str(), id.error().message.c_str());
    return 0;
  }
  handlers_[*id] = handler;
  node_.schedule_pump();
  return *id;
}

void PeerLink::accept(stream::StreamId id, StreamHandler* handler) {
  handlers_[id] = handler;
  warn_if(session_.accept(id), "accept", key_);
  if (auto p = pending_.find(id); p != pending_.end()) {
    if (!p->second.empty()) replay_.emplace_back(id, std::move(p->second));
    pending_.erase(p);
  }
  node_.schedule_pump();
}

void PeerLink::refuse(stream::StreamId id, uint32_t code, std::string_view reason) {
  pending_.erase(id);
  warn_if(session_.reset(id, code, reason), "refuse", key_);
  node_.schedule_pump();
}

size_t PeerLink::write(stream::StreamId id, ByteView data) {
  auto n = session_.write(id, data);
  if (!n) return 0;
  bytes_out_ += *n;
  if (*n > 0) node_.schedule_pump();
  return *n;
}

void PeerLink::consume(stream::StreamId id, size_t bytes) {
  warn_if(session_.consume(id, bytes), "consume", key_);
  node_.schedule_pump();
}

void PeerLink::finish(stream::StreamId id) {
  warn_if(session_.finish(id), "finish", key_);
  node_.schedule_pump();
}

void PeerLink::reset(stream::StreamId id, uint32_t code, std::string_view reason) {
  warn_if(session_.reset(id, code, reason), "reset", key_);
  node_.schedule_pump();
}

void PeerLink::detach(stream::StreamId id, std::string_view reason) {
  if (handlers_.erase(id)) {
    warn_if(session_.reset(id, stream::kResetCancelled, reason), "detach", key_);
    node_.schedule_pump();
  }
}

void PeerLink::schedule_writable(stream::StreamId id) {
  wake_.push_back(id);
  node_.schedule_pump();
}

void PeerLink::receive(ByteView payload, stream::TimePoint now) {
  if (broken_) return;
  session_.receive(payload, now);
  drain_events();
}

StreamHandler* PeerLink::handler(stream::StreamId id) {
  auto it = handlers_.find(id);
  return it == handlers_.end() ? nullptr : it->second;
}

void PeerLink::drain_events() {
  while (auto event = session_.poll_event()) dispatch(*event);
}

// Hands one session event to its stream's handler. Events for a stream the peer opened and this
// side has not yet accepted wait in pending_ (the opener may send data before the accept), and
// are replayed on the next pump once accept() names the handler.
void PeerLink::dispatch(stream::Event& event) {
  std::visit(
      [&](auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, stream::StreamOpened>) {
          if (!on_open) {
            warn_if(session_.reset(e.id, stream::kResetRefused, "this side accepts no streams"), "refuse", key_);
            return;
          }
          pending_[e.id];
          on_open(IncomingStream{e.id, std::move(e.service), std::move(e.args), e.priority});
        } else if constexpr (std::is_same_v<T, stream::SessionError>) {
          if (!broken_) {
            broken_ = true;
            LOG_WARN("tunnel", "peer %s broke the stream protocol: %s", key_text(key_).c_str(), e.reason.c_str());
            if (on_broken) on_broken("stream protocol error: " + e.reason);
          }
        } else if constexpr (std::is_same_v<T, stream::StreamRejected>) {
          LOG_DEBUG("tunnel", "peer %s: stream %llu refused: %s", key_text(key_).c_str(),
                    static_cast<unsigned long long>(e.id), e.reason.c_str());
        } else {
          if (auto p = pending_.find(e.id); p != pending_.end()) {
            if constexpr (std::is_same_v<T, stream::StreamClosed>) {
              // Closed before anyone accepted it (reset by the peer, or refused): nothing to replay.
              if (p->second.empty() || !std::holds_alternative<stream::StreamReset>(p->second.back())) {
                pending_.erase(p);
                return;
              }
            }
            p->second.push_back(std::move(event));
            return;
          }
          if constexpr (std::is_same_v<T, stream::StreamData>) bytes_in_ += e.bytes.size();
          auto it = handlers_.find(e.id);
          if (it == handlers_.end()) {
            if constexpr (std::is_same_v<T, stream::StreamData>)
              warn_if(session_.consume(e.id, e.bytes.size()), "consume", key_);
            return;
          }
          StreamHandler* h = it->second;
          if constexpr (std::is_same_v<T, stream::StreamAccepted>) h->on_accepted();
          else if constexpr (std::is_same_v<T, stream::StreamData>) h->on_data_owned(std::move(e.bytes));
          else if constexpr (std::is_same_v<T, stream::StreamWritable>) h->on_writable();
          else if constexpr (std::is_same_v<T, stream::StreamFinished>) h->on_finished();
          else if constexpr (std::is_same_v<T, stream::StreamReset>) h->on_reset(e.code, e.reason);
          else if constexpr (std::is_same_v<T, stream::StreamClosed>) {
            handlers_.erase(it);
            h->on_closed();
          }
        }
      },
      event);
}

void PeerLink::replay_accepted() {
  auto ready = std::move(replay_);
  replay_.clear();
  for (auto& [id, events] : ready)
    for (auto& event : events) dispatch(event);
}

void PeerLink::close_all(std::string_view reason) {
  auto handlers = std::move(handlers_);
  handlers_.clear();
  for (auto& [id, h] : handlers) {
    h->on_reset(stream::kResetCancelled, reason);
    h->on_closed();
  }
}

// ---- TunnelNode ---------------------------------------------------------------------------------

TunnelNode::TunnelNode(uv_loop_t* loop, RelayClient::Options options)
    : loop_(loop), tunnel_(options.private_key), timer_(loop) {
  heap::keep_freed_memory_between_bursts();
  relay_ = std::make_unique<RelayClient>(loop, std::move(options));
  relay_->on_packet = [this](const relay::PeerKey& src, uint8_t, ByteView bytes) { on_packet(src, bytes); };
  relay_->on_writable = [this] { pump(); };
  relay_->on_control = [this](const nlohmann::json& m) {
    if (on_control) on_control(m);
  };
  relay_->on_peer_gone = [this](const relay::PeerKey& key, relay::PeerGoneReason, std::string_view text) {
    if (on_peer_gone) on_peer_gone(key, text);
  };
  relay_->on_peer_present = [this](const relay::PeerKey& key) {
    if (on_peer_present) on_peer_present(key);
  };
  relay_->on_state = [this](LinkState state, std::string_view reason) {
    if (state == LinkState::connected) {
      // Payloads in flight when the link dropped may be lost: every session says what it has and
      // the peers retransmit the rest.
      auto t = now();
      for (auto& [key, link] : peers_) {
        link->session_.resume(t.monotonic);
        link->drain_events();
      }
      schedule_pump();
    }
    if (on_relay_state) on_relay_state(state, reason);
  };
  pump_idle_ = new uv_idle_t;
  uv_idle_init(loop_, pump_idle_);
  pump_idle_->data = this;
}

TunnelNode::~TunnelNode() {
  peers_.clear();
  relay_.reset();
  uv_idle_stop(pump_idle_);
  uv_close(reinterpret_cast<uv_handle_t*>(pump_idle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_idle_t*>(h); });
}

Status TunnelNode::start() { return relay_->start(); }

void TunnelNode::stop(std::string_view reason) {
  timer_.stop();
  relay_->stop(reason);
}

tunnel::Now TunnelNode::now() const {
  return {std::chrono::steady_clock::now(), std::chrono::system_clock::now()};
}

PeerLink& TunnelNode::add_peer(const crypto::Key& key, stream::Role role) {
  if (auto it = peers_.find(key); it != peers_.end()) return *it->second;
  if (!tunnel_.has_peer(key)) {
    (void)tunnel_.add_peer(key, std::nullopt, tunnel::Endpoint(ByteView(key.data(), key.size())));
  }
  auto link = std::make_unique<PeerLink>(*this, key, role);
  PeerLink& ref = *link;
  peers_.emplace(key, std::move(link));
  round_robin_.push_back(key);
  return ref;
}

PeerLink* TunnelNode::find_peer(const crypto::Key& key) {
  auto it = peers_.find(key);
  return it == peers_.end() ? nullptr : it->second.get();
}

void TunnelNode::remove_peer(const crypto::Key& key, std::string_view reason) {
  auto it = peers_.find(key);
  if (it == peers_.end()) return;
  auto link = std::move(it->second);
  peers_.erase(it);
  std::erase(round_robin_, key);
  tunnel_.remove_peer(key);
  link->close_all(reason);
}

void TunnelNode::connect(const crypto::Key& key) {
  (void)tunnel_.connect(key, now());
  handle_tunnel_output();
  schedule_pump();
}

std::vector<crypto::Key> TunnelNode::peers() const {
  std::vector<crypto::Key> out;
  for (auto& [k, _] : peers_) out.push_back(k);
  return out;
}

void TunnelNode::on_packet(const crypto::Key& src, ByteView bytes) {
  auto t = now();
  tunnel::Outcome o = tunnel_.receive(bytes, tunnel::Endpoint(ByteView(src.data(), src.size())), t);
  if (!tunnel::accepted(o)) LOG_DEBUG("tunnel", "dropped a message from %s: %s", key_text(src).c_str(), tunnel::outcome_name(o));
  handle_tunnel_output();
  schedule_pump();
}

// Delivers tunnel events to the peers' stream sessions.
void TunnelNode::handle_tunnel_output() {
  auto t = now();
  while (tunnel_.poll_event(event_)) {
    PeerLink* link = find_peer(event_.peer);
    if (!link) continue;
    switch (event_.kind) {
      case tunnel::Event::Kind::payload:
        link->receive(event_.payload, t.monotonic);
        break;
      case tunnel::Event::Kind::handshake_complete:
        if (!link->ready_) {
          link->ready_ = true;
          LOG_INFO("tunnel", "tunnel to %s is up", key_text(event_.peer).c_str());
          if (link->on_ready) link->on_ready();
        }
        break;
      case tunnel::Event::Kind::peer_unreachable:
        LOG_WARN("tunnel", "peer %s did not answer the handshake", key_text(event_.peer).c_str());
        if (link->on_broken) link->on_broken("the workspace did not answer the tunnel handshake");
        break;
      case tunnel::Event::Kind::keys_zeroed:
        link->ready_ = false;
        break;
    }
  }
  arm_timer();
}

void TunnelNode::schedule_pump() {
  if (pump_scheduled_) return;
  pump_scheduled_ = true;
  uv_idle_start(pump_idle_, [](uv_idle_t* h) {
    auto* self = static_cast<TunnelNode*>(h->data);
    uv_idle_stop(h);
    self->pump_scheduled_ = false;
    self->pump();
  });
}

// Moves data toward the relay while the link can take it: tunnel messages first (handshakes,
// keepalives), then stream payloads, interactive before bulk, round robin across peers.
void TunnelNode::pump() {
  if (pumping_) return;
  pumping_ = true;
  auto t = now();
  while (relay_->connected() && relay_->writable()) {
    if (tunnel_.poll_datagram(datagram_)) {
      (void)relay_->send_packet(datagram_.peer, relay::kFlagInteractive, datagram_.bytes);
      continue;
    }
    // Round robin across peers; each session puts its interactive streams first.
    bool sent = false;
    for (size_t i = 0; i < round_robin_.size() && !sent; ++i) {
      const crypto::Key& key = round_robin_[(next_peer_ + i) % round_robin_.size()];
      PeerLink* link = find_peer(key);
      if (!link || !link->ready_ || link->broken_) continue;
      auto payload = link->session_.poll_payload(t.monotonic, kMaxTunnelPayload);
      if (!payload) continue;
      (void)tunnel_.send(key, payload->bytes, t);
      uint8_t flags = payload->priority == stream::Priority::interactive ? relay::kFlagInteractive : 0;
      while (tunnel_.poll_datagram(datagram_)) (void)relay_->send_packet(datagram_.peer, flags, datagram_.bytes);
      next_peer_ = (next_peer_ + i + 1) % round_robin_.size();
      sent = true;
    }
    if (!sent) break;
  }
  // Sessions may have produced events while building payloads (e.g. writable after acks).
  for (auto& [key, link] : peers_) {
    link->drain_events();
    if (!link->replay_.empty()) link->replay_accepted();
    if (!link->wake_.empty()) {
      auto wake = std::move(link->wake_);
      link->wake_.clear();
      for (auto id : wake)
        if (auto it = link->handlers_.find(id); it != link->handlers_.end()) it->second->on_writable();
    }
  }
  pumping_ = false;
  arm_timer();
}

void TunnelNode::arm_timer() {
  std::optional<stream::TimePoint> deadline = tunnel_.next_deadline();
  for (auto& [key, link] : peers_) {
    auto d = link->session_.next_deadline();
    if (d && (!deadline || *d < *deadline)) deadline = d;
  }
  if (!deadline) {
    timer_.stop();
    return;
  }
  auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
  if (delay.count() < 0) delay = std::chrono::milliseconds(0);
  // +1 ms: libuv's timers round down, and firing before the deadline does nothing.
  timer_.start(delay + std::chrono::milliseconds(1), [this] { on_timer(); });
}

void TunnelNode::on_timer() {
  auto t = now();
  tunnel_.tick(t);
  for (auto& [key, link] : peers_) {
    link->session_.on_timer(t.monotonic);
    link->drain_events();
  }
  handle_tunnel_output();
  pump();
}

}  // namespace airlock::net
