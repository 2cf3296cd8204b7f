// The relay: link server, forwarding, coordinator and HTTP endpoints on one lws context.
// Split by concern, one file each (ttyd-style):
//   server.cpp       lws context on the loop, listening, housekeeping tick, signals, shutdown
//   link.cpp         the "airlock-relay.v1" protocol callback: hello, frames in, frames out
//   forwarding.cpp   packets between peers: queues, priorities, backpressure, rate shaping
//   coordinator.cpp  workspaces, dial grants (pairs), control messages
//   http.cpp         protocol[0]: /healthz, /metrics, /api/v2/workspaces
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>
#include <uv.h>

#include "common/net/lws.hpp"
#include "common/net/uv.hpp"
#include "common/relay/access.hpp"
#include "common/util/metrics.hpp"
#include "relay/config.hpp"
#include "relay/peer.hpp"

namespace airlock::relayd {

struct KeyHash {
  size_t operator()(const relay::PeerKey& k) const {
    size_t h;
    std::memcpy(&h, k.data(), sizeof h);  // keys are uniformly random
    return h;
  }
};

// protocol[0]'s per-connection state: the response body being written.
struct HttpSession {
  std::string* body;
  size_t sent;
};

// The metrics the relay exports, looked up once.
struct RelayMetrics {
  explicit RelayMetrics(metrics::Registry& r);
  metrics::Registry& registry;
  metrics::Gauge& conns_handshake;
  metrics::Gauge& conns_agent;
  metrics::Gauge& conns_client;
  metrics::Counter& accepted;
  metrics::Counter& bytes_in;
  metrics::Counter& bytes_out;
  metrics::Counter& packets_in;
  metrics::Counter& packets_out;
  metrics::Gauge& queue_bytes;
  metrics::Gauge& queue_frames;
  metrics::Counter& backpressure_pauses;
  metrics::Counter& backpressure_resumes;
  metrics::Counter& rate_limited;
  metrics::Counter& dials_ok;
  metrics::Counter& dials_refused;
  metrics::Gauge& workspaces;
  metrics::Counter& disconnects(const std::string& reason);
  metrics::Counter& peer_gone(relay::PeerGoneReason reason);
  metrics::Counter& http(const std::string& path, int status);
};

// A dial grant: dialer may exchange packets with agent (workspace_id's agent), both ways.
struct Pair {
  relay::PeerKey dialer{};
  relay::PeerKey agent{};
  std::string workspace_id;
  std::optional<Clock::time_point> gone_since;  // one side is disconnected since then
};

// A connected workspace: the agents serving it, newest last (dials go to the newest).
struct Workspace {
  relay::WorkspaceRef ref;
  std::vector<relay::PeerKey> agents;
  // The newest agent's status document (lifecycle, apps, metadata, ports, stats; docs/AGENT.md),
  // pushed by the agent whenever it changes; null until the first push.
  nlohmann::json status;
  std::chrono::system_clock::time_point status_at{};
};

class Relay {
 public:
  Relay(uv_loop_t* loop, Config config);
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Listens; returns once the socket is bound (listen_port() then holds the real port).
  Status start();
  // SIGTERM/SIGINT: tell every peer "restarting", let the frames drain, close links, stop.
  void begin_shutdown();
  int listen_port() const { return port_; }
  bool tls() const { return !config_.tls_cert.empty(); }
  // Called once the relay has stopped (the loop then has nothing left of ours).
  std::function<void()> on_stopped;

  // lws glue entry points (static so the protocol table can name them).
  static int link_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);
  static int http_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);

 private:
  // link.cpp
  int on_link(lws* wsi, lws_callback_reasons reason, Peer** slot, void* in, size_t len);
  void on_established(lws* wsi, Peer** slot);
  int on_receive(Peer& p, const uint8_t* in, size_t len);
  void on_frame(Peer& p, Bytes&& message);
  void on_hello(Peer& p, const relay::ClientHello& hello);
  void on_closed(Peer& p);
  int on_writeable(Peer& p);
  void queue_frame(Peer& p, const relay::Frame& frame);
  void close_peer(Peer& p, const std::string& reason, const std::string& label,
                  int status = LWS_CLOSE_STATUS_POLICY_VIOLATION, bool send_error = true);
  nlohmann::json welcome_info(const Peer& p) const;

  // forwarding.cpp
  void forward(Peer& sender, const relay::SendPacket& packet, Bytes&& message);
  void send_peer_gone(Peer& to, const relay::PeerKey& key, relay::PeerGoneReason reason, const std::string& text);
  void pause_reading(Peer& p);
  void maybe_resume_reading(Peer& p);
  void release_waiting_senders(Peer& destination);
  void charge_rate(Peer& p, size_t bytes);
  void on_shaper();
  void account_dequeued(size_t bytes, size_t frames);

  // coordinator.cpp
  void on_control(Peer& p, std::string_view json);
  void on_dial(Peer& p, const nlohmann::json& msg);
  void register_agent(Peer& p);
  void unregister_agent(Peer& p);
  void pairs_on_arrival(Peer& p);
  void pairs_on_departure(Peer& p);
  bool paired(const relay::PeerKey& a, const relay::PeerKey& b) const;
  void expire_pairs(Clock::time_point now);
  Status check_pair(const Pair& pair) const;
  nlohmann::json peer_incoming(const Peer& dialer) const;
  void send_control(Peer& p, const nlohmann::json& msg);
  Workspace* find_workspace(const std::string& name_or_id, const token::Claims& who, std::string& error);

  // http.cpp
  struct HttpResponse {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
  };
  HttpResponse route_http(std::string_view method, std::string_view path, std::string_view authorization);
  HttpResponse workspaces_api(std::string_view authorization);
  HttpResponse workspace_api(std::string_view reference, std::string_view authorization);
  std::variant<token::Claims, HttpResponse> authenticate(std::string_view authorization) const;
  nlohmann::json workspace_json(const Workspace& ws);
  void on_status(Peer& p, nlohmann::json& msg);

  // server.cpp
  void on_tick();
  void finish_shutdown();
  Peer* find(uint64_t id) const;
  Peer* find(const relay::PeerKey& key) const;

  uv_loop_t* loop_;
  Config config_;
  relay::PeerKey relay_public_{};
  int port_ = 0;
  std::unique_ptr<net::LwsContext> context_;
  net::Timer tick_;
  net::Timer shaper_;
  net::Timer shutdown_timer_;
  bool shutting_down_ = false;
  bool stopped_ = false;
  Clock::time_point shutdown_started_{};
  bool links_closed_ = false;

  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, Peer*> peers_;
  std::unordered_map<relay::PeerKey, Peer*, KeyHash> by_key_;
  std::vector<uint64_t> rate_paused_;
  std::map<std::string, Workspace> workspaces_;  // by workspace id
  std::map<std::pair<relay::PeerKey, relay::PeerKey>, Pair> pairs_;  // by (dialer, agent)

  metrics::Registry registry_;
  RelayMetrics metrics_;
};

std::string key_b64(const relay::PeerKey& key);

}  // namespace airlock::relayd
