// The peer side of a relay link (layer 1), for the agent and the CLI: one WebSocket to the relay
// on the caller's libuv loop, the hello handshake, packets both ways, control JSON, pings, and
// reconnection by itself (jittered exponential backoff; promptly after a "restarting" frame).
//
// Sending is pull-based so nothing queues without bound: send_packet() succeeds while writable()
// is true; when it returns false the caller stops and waits for on_writable, which fires when the
// link can take more. The relay applies the same backpressure on its side, so a slow receiver
// ends up pausing the sender rather than filling memory anywhere.
//
//   net::RelayClient::Options o;
//   o.url = "wss://relay.example:7443/";  o.token = token;  o.private_key = key;
//   net::RelayClient link(loop, o);
//   link.on_packet = [&](const relay::PeerKey& src, uint8_t flags, ByteView bytes) { ... };
//   link.on_writable = [&] { while (link.writable() && have_data()) link.send_packet(dst, 0, next()); };
//   link.start();
//
// Callbacks run on the loop thread. A callback may call any method, including stop(), and may
// destroy the RelayClient.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <uv.h>

#include "common/crypto/crypto.hpp"
#include "common/relay/protocol.hpp"
#include "common/util/bytes.hpp"
#include "common/util/result.hpp"

namespace airlock::net {

enum class LinkState {
  connected,     // hello accepted; packets flow
  disconnected,  // the link dropped or was refused; the client reconnects unless stopped
};

class RelayClient {
 public:
  struct Options {
    std::string url;                // ws://host:port/ or wss://host:port/
    std::string token;              // control-plane token presented in the hello
    crypto::SecretKey private_key;  // this peer's X25519 key; its public key is its relay address
    nlohmann::json meta = nlohmann::json::object();  // {"program": "...", "version": "..."}
    // TLS: trust this CA (or self-signed certificate) file instead of the system store.
    std::string ca_file;
    // TLS: accept any certificate. Development only (the relay's --dev certificate).
    bool insecure_skip_verify = false;
    // Refuse a relay whose hello carries another key.
    std::optional<relay::PeerKey> expected_relay_key;
    // Sending: writable() turns false once this many bytes wait in the link's own queue, and
    // on_writable fires once they drain below half of it.
    size_t send_buffer_bytes = 256 * 1024;
    std::chrono::milliseconds keepalive_interval = relay::kKeepAliveInterval;
    std::chrono::milliseconds idle_timeout = relay::kIdleTimeout;
    std::chrono::milliseconds handshake_timeout = std::chrono::seconds(15);
    std::chrono::milliseconds ping_timeout = std::chrono::seconds(10);
    // Reconnection: first delay, doubling up to max, each scaled by a random 0.5..1.0.
    bool reconnect = true;
    std::chrono::milliseconds backoff_initial = std::chrono::milliseconds(250);
    std::chrono::milliseconds backoff_max = std::chrono::seconds(30);
  };

  RelayClient(uv_loop_t* loop, Options options);
  ~RelayClient();
  RelayClient(const RelayClient&) = delete;
  RelayClient& operator=(const RelayClient&) = delete;

  // Starts connecting (and keeps reconnecting until stop()). Fails on a bad URL or TLS setup.
  Status start();
  // Closes the link and stops reconnecting; on_state(disconnected, reason) follows.
  void stop(std::string_view reason = "stopped by the application");

  bool connected() const;
  // True while send_packet() will accept a packet.
  bool writable() const;
  // Queues one packet for dst. Errors: link down, link busy (wait for on_writable), packet empty
  // or larger than relay::kMaxPacketSize, unknown flag bits.
  Status send_packet(const relay::PeerKey& dst, uint8_t flags, ByteView bytes);
  // Queues one control message (a JSON object); not subject to writable().
  Status send_control(const nlohmann::json& message);
  // Measures the round trip to the relay; done gets the RTT or an error (timeout, link closed).
  void ping(std::function<void(Result<std::chrono::microseconds>)> done);
  // Flow control for receiving: false stops reading from the relay (the relay then queues, and
  // past its watermark pauses the senders); true resumes. Survives reconnects.
  void set_receiving(bool on);

  const relay::PeerKey& public_key() const { return public_key_; }
  // Known after a server hello.
  std::optional<relay::PeerKey> relay_key() const { return relay_key_; }
  // From the last welcome: this peer's address as the relay saw it, and the relay's info JSON.
  const std::string& observed_address() const { return observed_address_; }
  const nlohmann::json& welcome_info() const { return welcome_info_; }
  // Bytes waiting in this link's send queue.
  size_t queued_bytes() const;

  std::function<void(const relay::PeerKey& src, uint8_t flags, ByteView bytes)> on_packet;
  std::function<void(const nlohmann::json& message)> on_control;
  std::function<void(const relay::PeerKey& key, relay::PeerGoneReason reason, std::string_view text)> on_peer_gone;
  std::function<void(const relay::PeerKey& key)> on_peer_present;
  std::function<void(LinkState state, std::string_view reason)> on_state;
  // The relay announced a restart; the client will reconnect after about reconnect_in by itself.
  std::function<void(std::chrono::milliseconds reconnect_in)> on_restarting;
  std::function<void()> on_writable;

  struct Impl;  // the lws glue, in relay_client.cpp

 private:
  std::unique_ptr<Impl> impl_;
  relay::PeerKey public_key_{};
  std::optional<relay::PeerKey> relay_key_;
  std::string observed_address_;
  nlohmann::json welcome_info_ = nlohmann::json::object();
};

}  // namespace airlock::net
