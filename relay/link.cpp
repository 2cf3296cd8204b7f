// The "airlock-relay.v1" protocol: one callback, a switch on the reason. A link says server hello,
// waits for a client hello (deadline in server.cpp's tick), then carries frames both ways. Bad
// input closes only that link, after an error frame that says why.
#include <cstring>

#include <nlohmann/json.hpp>

#include "common/relay/handshake.hpp"
#include "common/util/log.hpp"
#include "relay/relay.hpp"

namespace airlock::relayd {

using namespace std::chrono;

int Relay::link_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  auto* self = static_cast<Relay*>(net::LwsContext::owner(wsi));
  if (!self) return reason == LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION ? -1 : 0;
  return self->on_link(wsi, reason, static_cast<Peer**>(user), in, len);
}

int Relay::on_link(lws* wsi, lws_callback_reasons reason, Peer** slot, void* in, size_t len) {
  switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
      if (shutting_down_) return -1;
      if (peers_.size() >= config_.max_connections) {
        LOG_WARN("relay", "refusing a link: %zu links open (--max-connections)", peers_.size());
        return -1;
      }
      return 0;
    case LWS_CALLBACK_ESTABLISHED:
      on_established(wsi, slot);
      return 0;
    case LWS_CALLBACK_RECEIVE:
      if (!slot || !*slot) return -1;
      return on_receive(**slot, static_cast<const uint8_t*>(in), len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
      if (!slot || !*slot) return -1;
      return on_writeable(**slot);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
      if (slot && *slot && !(*slot)->closing) (*slot)->disconnect_label = "closed";
      return 0;
    case LWS_CALLBACK_CLOSED:
      if (slot && *slot) {
        Peer* p = *slot;
        *slot = nullptr;
        on_closed(*p);
        delete p;
      }
      return 0;
    default:
      return 0;
  }
}

void Relay::on_established(lws* wsi, Peer** slot) {
  auto* p = new Peer;
  *slot = p;
  auto now = Clock::now();
  p->id = next_id_++;
  p->wsi = wsi;
  p->source = net::peer_address(wsi);
  p->connected_at = p->last_rx = p->last_tx = now;
  p->connected_wall = system_clock::now();
  p->rate = relay::TokenBucket(config_.rate_bytes_per_second, config_.rate_burst_bytes, now);
  p->control_rate = relay::TokenBucket(config_.control_per_second, config_.control_burst, now);
  crypto::random_bytes(p->challenge);
  peers_[p->id] = p;
  metrics_.accepted.inc();
  metrics_.conns_handshake.inc();
  LOG_DEBUG("relay", "link %s opened", p->name().c_str());
  queue_frame(*p, relay::ServerHello{relay::kProtocolVersion, relay_public_, p->challenge});
}

int Relay::on_receive(Peer& p, const uint8_t* in, size_t len) {
  if (p.closing) return 0;  // lws may still hand over what it had read; the link is going anyway
  p.last_rx = Clock::now();
  metrics_.bytes_in.inc(static_cast<double>(len));
  if (!lws_frame_is_binary(p.wsi)) {
    close_peer(p, "relay frames are binary WebSocket messages; got a text message", "frame_malformed");
    return 0;
  }
  if (lws_is_first_fragment(p.wsi)) p.rx.clear();
  const size_t have = p.rx.empty() ? 0 : p.rx.size() - LWS_PRE;
  const size_t remaining = lws_remaining_packet_payload(p.wsi);
  if (have + len > relay::kMaxFrameSize) {
    close_peer(p, "frame of more than " + std::to_string(relay::kMaxFrameSize) + " bytes exceeds the limit",
               "frame_too_big");
    return 0;
  }
  if (p.rx.empty()) {
    // Room for the whole WebSocket frame at once when lws says how big it is; lws's headroom in
    // front so the message can be forwarded without a copy.
    p.rx.reserve(LWS_PRE + std::min(relay::kMaxFrameSize, len + remaining));
    p.rx.resize(LWS_PRE);
  }
  p.rx.insert(p.rx.end(), in, in + len);
  if (!lws_is_final_fragment(p.wsi) || remaining > 0) return 0;
  Bytes message = std::move(p.rx);
  p.rx = Bytes();
  on_frame(p, std::move(message));
  return 0;
}

void Relay::on_frame(Peer& p, Bytes&& message) {
  ByteView bytes = ByteView(message).subspan(LWS_PRE);
  auto decoded = relay::decode(bytes);
  if (!decoded) {
    bool big = bytes.size() > relay::kMaxFrameSize;
    close_peer(p, "malformed frame: " + decoded.error().message, big ? "frame_too_big" : "frame_malformed");
    return;
  }
  relay::Frame& frame = *decoded;
  const auto type = relay::frame_type(frame);
  if (!p.hello_done) {
    if (type != relay::FrameType::client_hello) {
      close_peer(p, "expected a client hello first, got " + std::string(relay::frame_type_name(type)), "hello_failed");
      return;
    }
    on_hello(p, std::get<relay::ClientHello>(frame));
    return;
  }
  auto now = Clock::now();
  switch (type) {
    case relay::FrameType::send_packet:
      forward(p, std::get<relay::SendPacket>(frame), std::move(message));
      return;
    case relay::FrameType::ping:
    case relay::FrameType::control:
    case relay::FrameType::keep_alive:
    case relay::FrameType::pong:
      if (!p.control_rate.try_take(1, now)) {
        close_peer(p, "control frames arrive faster than " + std::to_string(static_cast<int>(config_.control_per_second)) +
                          " per second (burst " + std::to_string(static_cast<int>(config_.control_burst)) + ")",
                   "rate_limit");
        return;
      }
      if (type == relay::FrameType::ping) queue_frame(p, relay::Pong{std::get<relay::Ping>(frame).data});
      if (type == relay::FrameType::control) on_control(p, std::get<relay::Control>(frame).json);
      return;
    default:
      close_peer(p, std::string(relay::frame_type_name(type)) + " is a relay-to-peer frame; a peer may not send it",
                 "frame_malformed");
      return;
  }
}

void Relay::on_hello(Peer& p, const relay::ClientHello& hello) {
  auto accepted = relay::accept_client_hello(hello, config_.relay_private, p.challenge, config_.issuer_public,
                                             duration_cast<seconds>(system_clock::now().time_since_epoch()).count());
  if (!accepted) {
    const std::string& why = accepted.error().message;
    bool token_problem = why.rfind("token", 0) == 0 || why.find("agent token") != std::string::npos;
    LOG_INFO("relay", "hello from %s refused: %s", p.source.c_str(), why.c_str());
    close_peer(p, "hello refused: " + why, token_problem ? "token_refused" : "hello_failed");
    return;
  }
  if (!hello.meta.empty()) {
    auto meta = nlohmann::json::parse(hello.meta, nullptr, false);
    if (meta.is_object() && meta.contains("program") && meta["program"].is_string())
      p.program = meta["program"].get<std::string>().substr(0, 64);
  }
  p.key = accepted->key;
  p.key_b64 = key_b64(p.key);
  p.claims = std::move(accepted->claims);
  p.hello_done = true;
  metrics_.conns_handshake.dec();
  (p.is_agent() ? metrics_.conns_agent : metrics_.conns_client).inc();

  // One link per key: a newer link replaces the older one (a reconnect that beat the old
  // link's timeout), as DERP does.
  if (Peer* old = find(p.key); old && old != &p) {
    old->registered = false;
    close_peer(*old, "replaced by a newer link with the same key from " + p.source, "replaced",
               LWS_CLOSE_STATUS_GOINGAWAY);
  }
  by_key_[p.key] = &p;
  p.registered = true;
  LOG_INFO("relay", "link %s up%s%s", p.name().c_str(), p.program.empty() ? "" : " running ", p.program.c_str());

  std::string info = welcome_info(p).dump();
  queue_frame(p, relay::ServerWelcome{p.source.substr(0, relay::kMaxAddressSize), info});
  if (p.is_agent()) register_agent(p);
  pairs_on_arrival(p);
}

nlohmann::json Relay::welcome_info(const Peer& p) const {
  nlohmann::json info = {
      {"relay", "airlock-relay"},
      {"protocol", relay::kProtocolVersion},
      {"key", p.key_b64},
      {"sub", p.claims.sub},
      {"role", token::role_name(p.claims.role)},
      {"limits",
       {{"max_packet", config_.max_packet_bytes},
        {"keepalive_ms", config_.keepalive_interval.count()},
        {"idle_timeout_ms", config_.idle_timeout.count()}}},
  };
  if (p.is_agent())
    info["workspace"] = {{"id", p.claims.workspace_id}, {"name", p.claims.workspace_name}, {"owner", p.claims.owner}};
  return info;
}

void Relay::queue_frame(Peer& p, const relay::Frame& frame) {
  if (p.closing) return;
  Bytes b = relay::encode(frame, LWS_PRE);
  metrics_.queue_bytes.inc(static_cast<double>(b.size()));
  metrics_.queue_frames.inc();
  p.control_q.push(std::move(b));
  lws_callback_on_writable(p.wsi);
  if (p.control_q.bytes() > config_.control_queue_bytes) {
    // The relay's own frames (pongs, peer_gone, control replies) pile up: the peer is not reading.
    close_peer(p, "the peer does not read the relay's frames (" + std::to_string(p.control_q.bytes()) +
                      " bytes waiting, --control-queue-bytes)",
               "queue_overflow");
  }
}

void Relay::close_peer(Peer& p, const std::string& reason, const std::string& label, int status, bool send_error) {
  if (p.closing) return;
  LOG_INFO("relay", "closing link %s: %s", p.name().c_str(), reason.c_str());
  p.closing = true;
  p.close_reason = reason.substr(0, 120);  // a WebSocket close reason has room for 123 bytes
  p.disconnect_label = label;
  p.close_status = status;
  account_dequeued(p.queued_bytes(), p.queued_frames());
  p.control_q.clear();
  p.interactive_q.clear();
  p.bulk_q.clear();
  p.rx = Bytes();
  if (send_error) {
    std::string text = reason.substr(0, relay::kMaxReasonSize);
    p.control_q.push(relay::encode(relay::ErrorFrame{text}, LWS_PRE));
    metrics_.queue_bytes.inc(static_cast<double>(p.control_q.bytes()));
    metrics_.queue_frames.inc();
  }
  pause_reading(p);
  release_waiting_senders(p);
  lws_callback_on_writable(p.wsi);
  // If the peer never lets us write (it stopped reading), close anyway.
  lws_set_timeout(p.wsi, PENDING_TIMEOUT_USER_OK, 3);
}

int Relay::on_writeable(Peer& p) {
  p.last_tx = Clock::now();
  constexpr int kFramesPerTurn = 32;
  constexpr size_t kBytesPerTurn = 512 * 1024;
  size_t written = 0;
  for (int i = 0; i < kFramesPerTurn && written < kBytesPerTurn; ++i) {
    bool control = !p.control_q.empty();
    relay::FrameQueue* q = control ? &p.control_q : !p.interactive_q.empty() ? &p.interactive_q
                                                  : !p.bulk_q.empty()        ? &p.bulk_q
                                                                             : nullptr;
    if (!q) break;
    Bytes& f = q->front();
    const size_t n = f.size() - LWS_PRE;
    if (lws_write(p.wsi, f.data() + LWS_PRE, n, LWS_WRITE_BINARY) < 0) {
      p.disconnect_label = "write_failed";
      return -1;
    }
    Bytes done = q->pop();
    account_dequeued(done.size(), 1);
    written += n;
    metrics_.bytes_out.inc(static_cast<double>(n));
    if (!control) metrics_.packets_out.inc();
    // The socket took less than the whole frame and lws holds the rest: wait for the next
    // WRITEABLE. (lws_send_pipe_choked() would ask the kernel with a poll() per frame.)
    if (lws_partial_buffered(p.wsi)) break;
  }
  if (p.closing) {
    if (!p.control_q.empty()) {
      lws_callback_on_writable(p.wsi);
      return 0;
    }
    // The close frame is written here rather than left to lws_close_reason(): lws 4.1 marks the
    // socket unusable when a WRITEABLE callback returns -1 and sends no close frame, and the peer
    // should read the reason. Opcode 4 is lws's private LWS_WRITE_CLOSE (a WebSocket close).
    Bytes close(LWS_PRE + 2 + p.close_reason.size());
    store_be16(close.data() + LWS_PRE, static_cast<uint16_t>(p.close_status));
    std::memcpy(close.data() + LWS_PRE + 2, p.close_reason.data(), p.close_reason.size());
    lws_write(p.wsi, close.data() + LWS_PRE, close.size() - LWS_PRE, static_cast<lws_write_protocol>(4));
    return -1;
  }
  if (p.queued_bytes() > 0) lws_callback_on_writable(p.wsi);
  if (!p.waiting_senders.empty() && p.data_bytes() <= config_.queue_low_bytes) release_waiting_senders(p);
  return 0;
}

void Relay::on_closed(Peer& p) {
  metrics_.disconnects(p.closing ? p.disconnect_label : "closed").inc();
  if (!p.hello_done) metrics_.conns_handshake.dec();
  else (p.is_agent() ? metrics_.conns_agent : metrics_.conns_client).dec();
  account_dequeued(p.queued_bytes(), p.queued_frames());
  LOG_INFO("relay", "link %s closed (%s)", p.name().c_str(), p.closing ? p.close_reason.c_str() : "by the peer");
  p.closing = true;
  release_waiting_senders(p);
  peers_.erase(p.id);
  if (p.registered) {
    auto it = by_key_.find(p.key);
    if (it != by_key_.end() && it->second == &p) by_key_.erase(it);
    if (p.is_agent()) unregister_agent(p);
    pairs_on_departure(p);
  }
}

}  // namespace airlock::relayd
