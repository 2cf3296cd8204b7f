// One relay link as the relay sees it. Small while idle: the queues and the reassembly buffer hold
// no memory when empty, and the claims are the only per-peer strings of any size.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <libwebsockets.h>

#include "common/relay/protocol.hpp"
#include "common/relay/queue.hpp"
#include "common/token/token.hpp"

namespace airlock::relayd {

using Clock = std::chrono::steady_clock;

struct Peer {
  uint64_t id = 0;  // never reused; lists of peers hold ids, so a departed peer is simply not found
  lws* wsi = nullptr;
  std::string source;  // "ip:port" as the relay saw it
  Clock::time_point connected_at{};
  std::chrono::system_clock::time_point connected_wall{};
  Clock::time_point last_rx{};
  Clock::time_point last_tx{};

  // Handshake.
  relay::Challenge challenge{};
  bool hello_done = false;
  relay::PeerKey key{};
  std::string key_b64;
  token::Claims claims;
  std::string program;  // from the hello's meta, for logs
  bool registered = false;  // the relay's key table points at this link

  // Reassembly of one WebSocket message (headroom for lws in front); released when complete.
  Bytes rx;

  // Outgoing: the relay's own frames first, then interactive packets, then bulk.
  relay::FrameQueue control_q;
  relay::FrameQueue interactive_q;
  relay::FrameQueue bulk_q;

  // Backpressure. Senders paused because this peer's queue passed the high watermark:
  std::vector<uint64_t> waiting_senders;
  int blocked_on = 0;        // destinations currently holding this peer paused
  bool rate_paused = false;  // over its byte rate; resumes when the bucket refills
  bool rx_paused = false;    // what lws was last told
  relay::TokenBucket rate;
  relay::TokenBucket control_rate;

  // Closing: an error frame (if any) goes out, then the link closes with this reason.
  bool closing = false;
  std::string close_reason;
  std::string disconnect_label = "closed";
  int close_status = LWS_CLOSE_STATUS_NORMAL;

  size_t data_bytes() const { return interactive_q.bytes() + bulk_q.bytes(); }
  size_t queued_bytes() const { return control_q.bytes() + data_bytes(); }
  size_t queued_frames() const { return control_q.count() + interactive_q.count() + bulk_q.count(); }
  bool is_agent() const { return hello_done && claims.role == token::Role::agent; }
  std::string name() const;  // "3kQ…= (agent demo) from 1.2.3.4:5" for logs
};

}  // namespace airlock::relayd
