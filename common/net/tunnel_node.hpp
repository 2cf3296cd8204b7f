// A tunnel node: one relay link, one WireGuard tunnel over it, and a stream session per peer.
//
//   relay link (RelayClient)  <->  tunnel::Tunnel  <->  stream::Session per peer  <->  handlers
//
// This is the glue the agent and the CLI share; it owns no protocol logic of its own. Data moves
// only when the next stage can take it: payloads are pulled from a peer's stream session only
// while the relay link is writable, and a handler's socket is read only while its stream has
// credit, so nothing between a service socket and the relay queues without bound.
//
// The same key is the node's relay address and its tunnel static key.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>
#include <uv.h>

#include "common/net/relay_client.hpp"
#include "common/net/uv.hpp"
#include "common/stream/session.hpp"
#include "common/tunnel/tunnel.hpp"

namespace airlock::net {

class TunnelNode;
class PeerLink;

// Largest stream payload that still fits one relay packet once the tunnel has framed, padded
// and sealed it: transport header 16 + payload (a multiple of 16) + tag 16 <= kMaxPacketSize.
inline constexpr size_t kMaxTunnelPayload =
    relay::kMaxPacketSize - tunnel::TRANSPORT_HEADER_SIZE - tunnel::AEAD_TAG_SIZE;
static_assert(kMaxTunnelPayload % 16 == 0);

// Receives one stream's events. The link never owns a handler: on_closed is the last call, after
// which the handler may delete itself.
class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  virtual void on_accepted() {}
  // Bytes from the peer. Call PeerLink::consume() once they are processed (that returns credit).
  virtual void on_data(ByteView data) = 0;
  // The same bytes handed over: a handler that keeps them (to write them out later) overrides
  // this instead and saves a copy.
  virtual void on_data_owned(Bytes&& data) { on_data(data); }
  // The stream can take more writes after a short write.
  virtual void on_writable() {}
  // The peer half-closed: no more data will come.
  virtual void on_finished() {}
  // The peer (or the session) reset the stream. on_closed follows.
  virtual void on_reset(uint32_t code, std::string_view reason) {}
  virtual void on_closed() {}
};

struct IncomingStream {
  stream::StreamId id = 0;
  std::string service;
  nlohmann::json args;
  stream::Priority priority = stream::Priority::bulk;
};

// The stream session with one peer, inside the tunnel.
class PeerLink {
 public:
  PeerLink(TunnelNode& node, const crypto::Key& key, stream::Role role);
  ~PeerLink();
  PeerLink(const PeerLink&) = delete;
  PeerLink& operator=(const PeerLink&) = delete;

  const crypto::Key& key() const { return key_; }
  // True once a tunnel handshake with the peer has completed.
  bool ready() const { return ready_; }

  stream::StreamId open(std::string_view service, const nlohmann::json& args, stream::Priority priority,
                        StreamHandler* handler);
  void accept(stream::StreamId id, StreamHandler* handler);
  void refuse(stream::StreamId id, uint32_t code, std::string_view reason);
  // Accepts what fits the stream's credit; on a short write, on_writable follows later.
  size_t write(stream::StreamId id, ByteView data);
  void consume(stream::StreamId id, size_t bytes);
  void finish(stream::StreamId id);
  void reset(stream::StreamId id, uint32_t code, std::string_view reason);
  // The handler is going away on its own: stop calling it (the stream is reset).
  void detach(stream::StreamId id, std::string_view reason);
  size_t stream_count() const { return handlers_.size(); }
  // Calls the stream's on_writable on the next loop turn: a writer that still has credit after a
  // burst yields the loop to others instead of writing on.
  void schedule_writable(stream::StreamId id);

  // Acceptor side: a stream was opened by the peer. Call accept() or refuse() (now or later).
  std::function<void(IncomingStream)> on_open;
  // The first handshake completed (the peer is reachable end to end).
  std::function<void()> on_ready;
  // The session cannot go on (protocol error, handshake gave up); the node removes the peer next.
  std::function<void(std::string_view reason)> on_broken;

  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t bytes_out() const { return bytes_out_; }
  // The stream session's numbers: smoothed round-trip time, retransmissions, ...
  stream::SessionStats session_stats() const { return session_.stats(); }

 private:
  friend class TunnelNode;
  void receive(ByteView payload, stream::TimePoint now);
  void drain_events();
  void dispatch(stream::Event& event);
  void replay_accepted();
  StreamHandler* handler(stream::StreamId id);
  void close_all(std::string_view reason);

  TunnelNode& node_;
  crypto::Key key_;
  stream::Session session_;
  std::unordered_map<stream::StreamId, StreamHandler*> handlers_;
  // Streams the peer opened that are not accepted yet, with the events that came meanwhile.
  std::unordered_map<stream::StreamId, std::vector<stream::Event>> pending_;
  std::vector<std::pair<stream::StreamId, std::vector<stream::Event>>> replay_;  // due on the next pump
  std::vector<stream::StreamId> wake_;  // streams whose on_writable is due on the next pump
  bool ready_ = false;
  bool broken_ = false;
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
};

class TunnelNode {
 public:
  // options.private_key is the node's identity on the relay and in the tunnel.
  TunnelNode(uv_loop_t* loop, RelayClient::Options options);
  ~TunnelNode();
  TunnelNode(const TunnelNode&) = delete;
  TunnelNode& operator=(const TunnelNode&) = delete;

  Status start();
  void stop(std::string_view reason);

  uv_loop_t* loop() const { return loop_; }
  RelayClient& relay() { return *relay_; }
  const crypto::Key& public_key() const { return tunnel_.public_key(); }

  // Adds a tunnel peer with its stream session. Returns the existing link if there is one.
  PeerLink& add_peer(const crypto::Key& key, stream::Role role);
  PeerLink* find_peer(const crypto::Key& key);
  // Resets every stream of the peer and forgets it (and its tunnel keys).
  void remove_peer(const crypto::Key& key, std::string_view reason);
  // Starts a tunnel handshake now rather than with the first payload.
  void connect(const crypto::Key& key);
  std::vector<crypto::Key> peers() const;

  // Relay-level events, passed through for the owner (coordination lives above this layer).
  std::function<void(const nlohmann::json&)> on_control;
  std::function<void(LinkState, std::string_view reason)> on_relay_state;
  std::function<void(const crypto::Key&, std::string_view reason)> on_peer_gone;
  std::function<void(const crypto::Key&)> on_peer_present;

  // Asks for data to move on the next loop turn (after a handler wrote or consumed).
  void schedule_pump();
  const tunnel::Stats& tunnel_stats() const { return tunnel_.stats(); }

 private:
  friend class PeerLink;
  void on_packet(const crypto::Key& src, ByteView bytes);
  void handle_tunnel_output();
  void pump();
  void arm_timer();
  void on_timer();
  tunnel::Now now() const;

  uv_loop_t* loop_;
  std::unique_ptr<RelayClient> relay_;
  tunnel::Tunnel tunnel_;
  std::unordered_map<crypto::Key, std::unique_ptr<PeerLink>, tunnel::KeyHash> peers_;
  std::vector<crypto::Key> round_robin_;  // peers in the order the pump visits them
  size_t next_peer_ = 0;
  Timer timer_;
  uv_idle_t* pump_idle_ = nullptr;
  bool pump_scheduled_ = false;
  bool pumping_ = false;
  tunnel::Datagram datagram_;  // reused across polls
  tunnel::Event event_;
  std::vector<crypto::Key> broken_;  // peers to remove once the current call unwinds
};

}  // namespace airlock::net
