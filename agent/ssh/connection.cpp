#include "agent/ssh/connection.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <chrono>

#include "agent/ssh/forwarding.hpp"
#include "agent/ssh/session_channel.hpp"
#include "common/util/bytes.hpp"
#include "common/util/log.hpp"
#include "common/util/unique_fd.hpp"

namespace airlock::agent::ssh {
namespace {

// ssh_event_dopoll() reads at most one socket buffer (4 KiB) per call: loop a few times per
// readiness event so bulk transfers are not limited by loop wake-ups, but bounded so that one
// connection cannot monopolise the loop.
constexpr int kPollRoundsPerEvent = 64;

std::string new_session_id() {
  uint8_t raw[8] = {};
  if (::getrandom(raw, sizeof(raw), 0) != static_cast<ssize_t>(sizeof(raw))) {
    uint64_t t = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    store_le64(raw, t);
  }
  return "ssh-" + to_hex(ByteView(raw, sizeof(raw)));
}

}  // namespace

Connection::Connection(ServerContext& context, Identity identity)
    : context_(context), identity_(std::move(identity)), id_(new_session_id()),
      started_at_(std::chrono::steady_clock::now()) {}

Status Connection::start(int fd) {
  UniqueFd owned(fd);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);  // children (shells, sftp-server) must not inherit the stream

  session_.reset(ssh_new());
  if (!session_) return make_error("ssh_new failed");
  if (ssh_bind_accept_fd(context_.bind(), session_.get(), fd) != SSH_OK)
    return make_error(std::string("ssh: cannot start a session: ") + ssh_get_error(context_.bind()));
  owned.release();  // libssh closes it from now on
  fd_ = fd;

  server_callbacks_.userdata = this;
  server_callbacks_.auth_none_function = &Connection::on_auth_none;
  server_callbacks_.auth_pubkey_function = &Connection::on_auth_pubkey;
  server_callbacks_.channel_open_request_session_function = &Connection::on_session_open;
  ssh_callbacks_init(&server_callbacks_);
  ssh_set_server_callbacks(session_.get(), &server_callbacks_);
  ssh_set_message_callback(session_.get(), &Connection::on_message, this);
  // The tunnel already proved who the caller is: no password prompt, ever. OpenSSH tries "none"
  // first; a public key (any) is accepted too, for clients configured to start with one.
  ssh_set_auth_methods(session_.get(), SSH_AUTH_METHOD_NONE | SSH_AUTH_METHOD_PUBLICKEY);
  ssh_set_blocking(session_.get(), 0);

  int rc = poll_.init([&](uv_poll_t* p) { return uv_poll_init(context_.loop(), p, fd_); });
  if (rc != 0) return make_error(std::string("ssh: uv_poll_init: ") + uv_strerror(rc));
  poll_->data = this;
  start_timers();

  LOG_INFO("ssh", "%s: connection from %s (%s)", id_.c_str(), identity_.user_email.c_str(),
           identity_.source_ip.empty() ? "?" : identity_.source_ip.c_str());
  // Sends our banner and first key-exchange packet; the rest arrives through the poll.
  on_socket(0, 0);
  after_event();
  return Ok{};
}

void Connection::start_timers() {
  if (deadline_.init([&](uv_timer_t* t) { return uv_timer_init(context_.loop(), t); }) == 0) {
    deadline_->data = this;
    uv_timer_start(deadline_.get(), &Connection::on_deadline,
                   static_cast<uint64_t>(std::chrono::milliseconds(kLoginGrace).count()), 0);
  }
  if (keepalive_.init([&](uv_timer_t* t) { return uv_timer_init(context_.loop(), t); }) == 0) {
    keepalive_->data = this;
  }
}

void Connection::on_deadline(uv_timer_t* timer) {
  auto* self = static_cast<Connection*>(timer->data);
  if (self == nullptr) return;
  self->close(self->authenticated_ ? "session lifetime reached (workspace policy)"
                                   : "not authenticated within the login grace time");
  self->after_event();
}

Connection::~Connection() {
  poll_.reset();  // before libssh closes the fd
  keepalive_.reset();
  deadline_.reset();
  // Channels and forwards first: they free their libssh channels, which need the session.
  channels_.clear();
  forwards_.clear();
  if (event_ && session_) ssh_event_remove_session(event_.get(), session_.get());
  event_.reset();
  if (session_ && ssh_is_connected(session_.get())) ssh_disconnect(session_.get());
  session_.reset();
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_at_);
  LOG_INFO("ssh", "%s: closed after %llds: %s", id_.c_str(), static_cast<long long>(seconds.count()),
           close_reason_.empty() ? "done" : close_reason_.c_str());
  if (authenticated_)
    audit("session_end", {{"reason", close_reason_.empty() ? "done" : close_reason_}, {"duration_s", seconds.count()}});
}

void Connection::close(const std::string& reason) {
  if (finished_) return;
  finished_ = true;
  close_reason_ = reason;
  poll_.reset();
  context_.schedule_sweep();
}

void Connection::audit(const std::string& event_type, nlohmann::json details) {
  const auto& callback = context_.config().audit;
  if (!callback) return;
  details["service"] = "ssh";
  if (!ssh_user_.empty()) details["ssh_user"] = ssh_user_;
  callback(identity_, AuditNote{event_type, id_, std::move(details)});
}

void Connection::on_socket(int status, int events) {
  if (finished_) return;
  if (status < 0) {
    close(std::string("socket error: ") + uv_strerror(status));
    return;
  }
  if (!kex_done_) {
    int rc = ssh_handle_key_exchange(session_.get());
    if (rc == SSH_AGAIN) return;
    if (rc != SSH_OK) {
      close(std::string("key exchange failed: ") + ssh_get_error(session_.get()));
      return;
    }
    kex_done_ = true;
    event_.reset(ssh_event_new());
    if (!event_ || ssh_event_add_session(event_.get(), session_.get()) != SSH_OK) {
      close("ssh_event setup failed");
      return;
    }
    LOG_DEBUG("ssh", "%s: keys exchanged", id_.c_str());
  }
  for (int round = 0; round < kPollRoundsPerEvent && !finished_; ++round) {
    int rc = ssh_event_dopoll(event_.get(), 0);
    if (rc == SSH_ERROR) {
      const char* why = ssh_get_error(session_.get());
      close(std::string("connection ended: ") + (why && *why ? why : "peer closed"));
      return;
    }
    if (rc == SSH_AGAIN) break;
  }
  (void)events;
}

void Connection::after_event() {
  if (finished_) return;
  if (kex_done_ && !ssh_is_connected(session_.get())) {
    const char* why = ssh_get_error(session_.get());
    close(std::string("client disconnected") + (why && *why ? std::string(": ") + why : ""));
    return;
  }
  // Each update may write to the session; a channel that finished is dropped here (its libssh
  // channel freed), never from inside a callback.
  for (size_t i = 0; i < channels_.size(); ++i) channels_[i]->update();
  for (auto& forward : forwards_) forward->update();
  std::erase_if(channels_, [](const std::unique_ptr<Channel>& c) { return c->finished(); });
  update_socket_poll();
}

void Connection::update_socket_poll() {
  if (finished_ || !poll_) return;
  int events = UV_READABLE;
  if (ssh_get_poll_flags(session_.get()) & SSH_WRITE_PENDING) events |= UV_WRITABLE;
  if (events == poll_events_) return;
  poll_events_ = events;
  uv_poll_start(poll_.get(), events, [](uv_poll_t* h, int status, int ev) {
    auto* self = static_cast<Connection*>(h->data);
    if (self == nullptr) return;
    self->on_socket(status, ev);
    self->after_event();
  });
}

int Connection::accept_user(const char* user, const char* method) {
  if (authenticated_) return SSH_AUTH_SUCCESS;
  authenticated_ = true;
  ssh_user_ = user != nullptr ? user : "";
  LOG_INFO("ssh", "%s: %s authenticated by the tunnel as %s (ssh user %s, method %s)", id_.c_str(),
           identity_.user_email.c_str(), identity_.user_id.c_str(), ssh_user_.c_str(), method);
  audit("session_start", {{"method", method}, {"os_user", context_.login_user().name}});

  const SshConfig& config = context_.config();
  if (deadline_) {
    uv_timer_stop(deadline_.get());
    if (config.policy.session_lifetime.count() > 0)
      uv_timer_start(deadline_.get(), &Connection::on_deadline,
                     static_cast<uint64_t>(std::chrono::milliseconds(config.policy.session_lifetime).count()), 0);
  }
  if (keepalive_ && config.keepalive_interval.count() > 0) {
    uint64_t ms = static_cast<uint64_t>(std::chrono::milliseconds(config.keepalive_interval).count());
    uv_timer_start(keepalive_.get(), [](uv_timer_t* t) {
      auto* self = static_cast<Connection*>(t->data);
      if (self == nullptr || self->finished_) return;
      // OpenSSH answers with a request-failure, which libssh swallows; a dead peer shows up as
      // a write error on the stream.
      ssh_send_keepalive(self->session_.get());
      self->after_event();
    }, ms, ms);
  }
  return SSH_AUTH_SUCCESS;
}

int Connection::on_auth_none(ssh_session, const char* user, void* self) {
  return static_cast<Connection*>(self)->accept_user(user, "none");
}

int Connection::on_auth_pubkey(ssh_session, const char* user, ssh_key_struct*, char state, void* self) {
  // SSH_PUBLICKEY_STATE_NONE is the "would you take this key?" probe; VALID means libssh checked
  // the signature. Any key will do: the identity comes from the tunnel, not from the key.
  if (state == SSH_PUBLICKEY_STATE_NONE) return SSH_AUTH_SUCCESS;
  if (state != SSH_PUBLICKEY_STATE_VALID) return SSH_AUTH_DENIED;
  return static_cast<Connection*>(self)->accept_user(user, "publickey");
}

ssh_channel Connection::on_session_open(ssh_session, void* self_ptr) {
  auto* self = static_cast<Connection*>(self_ptr);
  if (!self->authenticated_ || self->finished_ || !self->can_add_channel()) return nullptr;
  ssh_channel channel = nullptr;
  auto session = make_session_channel(*self, &channel);
  if (!session) return nullptr;
  self->add_channel(std::move(session));
  return channel;
}

int Connection::on_message(ssh_session, ssh_message message, void* self_ptr) {
  auto* self = static_cast<Connection*>(self_ptr);
  if (!self->authenticated_ || self->finished_) return 1;  // 1: libssh sends its default refusal
  int type = ssh_message_type(message);
  int subtype = ssh_message_subtype(message);
  if (type == SSH_REQUEST_CHANNEL_OPEN && subtype == SSH_CHANNEL_DIRECT_TCPIP) return open_direct_tcpip(*self, message);
  if (type == SSH_REQUEST_GLOBAL) return handle_global_request(*self, message);
  return 1;
}

}  // namespace airlock::agent::ssh
