// Everything airlock-relay can be told, with the protocol's defaults (common/relay/protocol.hpp).
// main.cpp fills it from flags and checks it; the rest of the relay only reads it.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "common/crypto/crypto.hpp"
#include "common/relay/protocol.hpp"

namespace airlock::relayd {

using std::chrono::milliseconds;

struct Config {
  std::string listen_host = "0.0.0.0";  // an IP address; "0.0.0.0" or "::" for every interface
  int listen_port = 7443;                // 0: any free port (printed at startup)
  std::string tls_cert;                  // PEM files; both or neither
  std::string tls_key;
  bool plain_on_tls_port = false;        // also accept ws:// on the TLS port (development)

  crypto::SecretKey relay_private;  // X25519: the relay's key in the server hello
  crypto::Key issuer_public{};      // Ed25519: verifies control-plane tokens

  size_t max_packet_bytes = relay::kMaxPacketSize;
  size_t queue_high_bytes = relay::kQueueHighWatermark;
  size_t queue_low_bytes = relay::kQueueLowWatermark;
  size_t queue_hard_cap_bytes = relay::kQueueHardCap;
  size_t control_queue_bytes = relay::kControlQueueCap;
  double rate_bytes_per_second = static_cast<double>(relay::kRateBytesPerSecond);  // 0: unlimited
  double rate_burst_bytes = static_cast<double>(relay::kRateBurstBytes);
  double control_per_second = relay::kControlFramesPerSecond;
  double control_burst = relay::kControlFramesBurst;
  milliseconds hello_timeout = relay::kHelloDeadline;
  milliseconds keepalive_interval = relay::kKeepAliveInterval;
  milliseconds idle_timeout = relay::kIdleTimeout;
  milliseconds restart_reconnect_in = relay::kRestartReconnectIn;
  milliseconds restart_try_for = relay::kRestartTryFor;
  milliseconds shutdown_grace = std::chrono::seconds(3);
  milliseconds pair_linger = std::chrono::minutes(2);
  size_t max_connections = 10000;
  // lws's per-link receive buffer, which is also the most one recv() on a link reads. A whole packet
  // fits, so a bulk transfer costs one read per packet; an idle link commits only the buffer's first
  // page (relay/receive_buffers.hpp).
  size_t ws_rx_buffer_bytes = 64 * 1024;
};

}  // namespace airlock::relayd
