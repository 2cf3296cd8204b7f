// Packets between peers. A packet for a connected, paired peer is always queued (interactive
// ahead of bulk); when a destination's queue passes the high watermark the senders feeding it stop
// being read until it drains below the low watermark. Nothing is dropped: a packet that cannot be
// delivered is answered with peer_gone, and a sender that overruns a hard limit is disconnected
// with a reason.
#include "common/util/log.hpp"
#include "relay/relay.hpp"

namespace airlock::relayd {

using namespace std::chrono;

namespace {
constexpr size_t kFrameCost = 64;  // per-frame overhead charged to the rate limit
}

void Relay::forward(Peer& s, const relay::SendPacket& packet, Bytes&& message) {
  const size_t frame_size = message.size() - LWS_PRE;
  metrics_.packets_in.inc();
  if (packet.packet.size() > config_.max_packet_bytes) {
    close_peer(s, "packet of " + std::to_string(packet.packet.size()) + " bytes exceeds this relay's limit of " +
                      std::to_string(config_.max_packet_bytes) + " bytes",
               "frame_too_big");
    return;
  }
  charge_rate(s, frame_size);
  if (!paired(s.key, packet.dst)) {
    send_peer_gone(s, packet.dst, relay::PeerGoneReason::not_allowed,
                   "this link has no dial grant for that key: dial its workspace first");
    return;
  }
  Peer* d = find(packet.dst);
  if (!d || d->closing) {
    send_peer_gone(s, packet.dst, relay::PeerGoneReason::not_connected, "peer is not connected");
    return;
  }
  if (d->data_bytes() + message.size() > config_.queue_hard_cap_bytes) {
    close_peer(s, "the queue for peer " + log::short_key(d->key_b64) + " passed its hard cap of " +
                      std::to_string(config_.queue_hard_cap_bytes) + " bytes",
               "queue_overflow");
    return;
  }
  relay::rewrite_send_as_recv(MutableByteView(message).subspan(LWS_PRE), s.key);
  metrics_.queue_bytes.inc(static_cast<double>(message.size()));
  metrics_.queue_frames.inc();
  (packet.flags & relay::kFlagInteractive ? d->interactive_q : d->bulk_q).push(std::move(message));
  lws_callback_on_writable(d->wsi);

  if (d->data_bytes() > config_.queue_high_bytes) {
    bool listed = false;
    for (uint64_t id : d->waiting_senders) listed = listed || id == s.id;
    if (!listed) {
      d->waiting_senders.push_back(s.id);
      ++s.blocked_on;
      metrics_.backpressure_pauses.inc();
      LOG_DEBUG("relay", "backpressure: %s paused, %s has %zu bytes queued", s.name().c_str(), d->name().c_str(),
                d->data_bytes());
    }
    pause_reading(s);
  }
}

void Relay::send_peer_gone(Peer& to, const relay::PeerKey& key, relay::PeerGoneReason reason, const std::string& text) {
  metrics_.peer_gone(reason).inc();
  queue_frame(to, relay::PeerGone{key, reason, text});
}

void Relay::pause_reading(Peer& p) {
  if (p.rx_paused) return;
  p.rx_paused = true;
  lws_rx_flow_control(p.wsi, 0);
}

void Relay::maybe_resume_reading(Peer& p) {
  if (!p.rx_paused || p.closing || p.blocked_on > 0 || p.rate_paused) return;
  p.rx_paused = false;
  p.last_rx = Clock::now();  // the idle clock did not run while we were not reading
  lws_rx_flow_control(p.wsi, 1);
}

void Relay::release_waiting_senders(Peer& destination) {
  if (destination.waiting_senders.empty()) return;
  std::vector<uint64_t> waiting;
  waiting.swap(destination.waiting_senders);
  for (uint64_t id : waiting) {
    Peer* s = find(id);
    if (!s) continue;
    if (s->blocked_on > 0) --s->blocked_on;
    metrics_.backpressure_resumes.inc();
    maybe_resume_reading(*s);
  }
}

void Relay::charge_rate(Peer& p, size_t bytes) {
  if (p.rate.unlimited()) return;
  auto now = Clock::now();
  p.rate.take(static_cast<double>(bytes + kFrameCost), now);
  if (!p.rate.in_debt(now) || p.rate_paused) return;
  p.rate_paused = true;
  metrics_.rate_limited.inc();
  pause_reading(p);
  rate_paused_.push_back(p.id);
  auto wait = p.rate.wait_time(now);
  if (!shaper_.active()) shaper_.start(std::max(wait, milliseconds(1)), [this] { on_shaper(); });
}

void Relay::on_shaper() {
  auto now = Clock::now();
  milliseconds next = milliseconds::max();
  std::vector<uint64_t> still;
  for (uint64_t id : rate_paused_) {
    Peer* p = find(id);
    if (!p || p->closing) continue;
    if (p->rate.in_debt(now)) {
      still.push_back(id);
      next = std::min(next, p->rate.wait_time(now));
      continue;
    }
    p->rate_paused = false;
    maybe_resume_reading(*p);
  }
  rate_paused_.swap(still);
  if (!rate_paused_.empty()) shaper_.start(std::max(next, milliseconds(1)), [this] { on_shaper(); });
}

void Relay::account_dequeued(size_t bytes, size_t frames) {
  metrics_.queue_bytes.dec(static_cast<double>(bytes));
  metrics_.queue_frames.dec(static_cast<double>(frames));
}

}  // namespace airlock::relayd
