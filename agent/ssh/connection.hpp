// One SSH connection: key exchange, authentication, and the channels and remote forwards it
// opens, all driven from the agent's loop. libssh runs non-blocking: a uv_poll on the
// connection's fd calls ssh_handle_key_exchange() (until the keys are set) and then
// ssh_event_dopoll(event, 0), and the fd is polled for writing only while libssh has output
// queued.
//
// Objects here are destroyed only at the top of the stack: libssh callbacks and fd handlers
// record what happened, then the handle's Waker calls after_event(), which advances every
// channel, drops finished ones, and asks the server to destroy this connection once it ended.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <libssh/callbacks.h>
#include <nlohmann/json.hpp>

#include "agent/service.hpp"
#include "agent/ssh/handles.hpp"
#include "agent/ssh/server_context.hpp"
#include "agent/ssh/waker.hpp"
#include "common/net/uv_handle.hpp"
#include "common/util/result.hpp"

namespace airlock::agent::ssh {

class Connection;
class RemoteForward;

// A channel of any kind (session, direct-tcpip, forwarded-tcpip).
class Channel {
 public:
  explicit Channel(Connection& connection) : connection_(connection) {}
  virtual ~Channel() = default;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  // Advance after any event; set finished() when the channel is closed both ways.
  virtual void update() = 0;
  bool finished() const { return finished_; }

 protected:
  Connection& connection_;
  bool finished_ = false;
};

// Bounds on what one client may make the agent hold.
constexpr size_t kMaxChannelsPerConnection = 64;
constexpr size_t kMaxRemoteForwardsPerConnection = 16;
// Like sshd's LoginGraceTime: a client that has not authenticated by then is dropped.
constexpr std::chrono::seconds kLoginGrace{60};

class Connection {
 public:
  Connection(ServerContext& context, Identity identity);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Takes ownership of fd (also on failure).
  Status start(int fd);
  bool finished() const { return finished_; }

  // Re-evaluates every channel and the socket's poll interest; the Waker of every handle here.
  void after_event();
  Waker waker() { return Waker{[](void* self) { static_cast<Connection*>(self)->after_event(); }, this}; }

  // Ends the connection; `reason` is logged and recorded in the session_end audit note.
  void close(const std::string& reason);

  ServerContext& context() { return context_; }
  ssh_session session() const { return session_.get(); }
  const Identity& identity() const { return identity_; }
  const std::string& id() const { return id_; }
  const std::string& ssh_user() const { return ssh_user_; }
  bool authenticated() const { return authenticated_; }

  void audit(const std::string& event_type, nlohmann::json details);

  bool can_add_channel() const { return channels_.size() < kMaxChannelsPerConnection; }
  void add_channel(std::unique_ptr<Channel> channel) { channels_.push_back(std::move(channel)); }
  std::vector<std::unique_ptr<RemoteForward>>& remote_forwards() { return forwards_; }

 private:
  void on_socket(int status, int events);
  void update_socket_poll();
  void start_timers();
  static void on_deadline(uv_timer_t* timer);

  static int on_auth_none(ssh_session, const char* user, void* self);
  static int on_auth_pubkey(ssh_session, const char* user, ssh_key_struct* key, char state, void* self);
  static ssh_channel on_session_open(ssh_session, void* self);
  static int on_message(ssh_session, ssh_message message, void* self);
  int accept_user(const char* user, const char* method);

  ServerContext& context_;
  Identity identity_;
  std::string id_;
  std::string ssh_user_;
  std::chrono::steady_clock::time_point started_at_;
  bool kex_done_ = false;
  bool authenticated_ = false;
  bool finished_ = false;
  std::string close_reason_;

  UniqueSession session_;
  UniqueEvent event_;
  int fd_ = -1;  // owned by session_ once ssh_bind_accept_fd succeeded
  ssh_server_callbacks_struct server_callbacks_{};
  net::UvHandle<uv_poll_t> poll_;
  int poll_events_ = 0;
  net::UvHandle<uv_timer_t> keepalive_;
  net::UvHandle<uv_timer_t> deadline_;  // login grace, then the policy's session lifetime
  std::vector<std::unique_ptr<Channel>> channels_;
  std::vector<std::unique_ptr<RemoteForward>> forwards_;
};

}  // namespace airlock::agent::ssh
