#include "agent/ssh/forwarding.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/ssh/channel_pump.hpp"
#include "common/util/log.hpp"
#include "common/util/unique_fd.hpp"

namespace airlock::agent::ssh {
namespace {

constexpr int kListenBacklog = 64;
constexpr int kAcceptsPerEvent = 16;
// A loopback connect is answered within microseconds, but may still say EINPROGRESS: waiting
// this long for its outcome lets a closed port be refused at open time, as sshd does.
constexpr int kLoopbackConnectWaitMs = 20;

bool is_loopback(const sockaddr* address) {
  if (address->sa_family == AF_INET)
    return (ntohl(reinterpret_cast<const sockaddr_in*>(address)->sin_addr.s_addr) >> 24) == 127;
  if (address->sa_family == AF_INET6)
    return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr);
  return false;
}

// Starts a non-blocking connect. -1 with errno set when it failed at once (loopback refusals
// usually do, which lets the open be refused with a reason instead of accepted and dropped).
int connect_nonblocking(const sockaddr* address, socklen_t length) {
  int fd = ::socket(address->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int err = ::connect(fd, address, length) == 0 ? 0 : errno;
  if (err == EINPROGRESS && is_loopback(address)) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, kLoopbackConnectWaitMs) == 1) {
      socklen_t size = sizeof(err);
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &size) != 0) err = errno;
    }
  }
  if (err != 0 && err != EINPROGRESS) {
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

// A numeric address or "localhost" resolves without DNS; anything else needs getaddrinfo.
bool resolve_locally(const std::string& host, int port, sockaddr_storage& out, socklen_t& length) {
  std::memset(&out, 0, sizeof(out));
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
  if (host == "localhost" || host.empty()) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    length = sizeof(sockaddr_in);
    return true;
  }
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    length = sizeof(sockaddr_in);
    return true;
  }
  if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    length = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

// A channel carrying one TCP connection, either way round.
class TcpChannel final : public Channel {
 public:
  struct Reverse {  // forwarded-tcpip: what the open request tells the client
    std::string listen_address;
    int listen_port = 0;
    std::string peer_address;
    int peer_port = 0;
  };

  TcpChannel(Connection& connection, ssh_channel channel, std::string what)
      : Channel(connection), channel_(channel), what_(std::move(what)) {
    callbacks_.userdata = this;
    callbacks_.channel_data_function = [](ssh_session, ssh_channel, void* data, uint32_t len, int is_stderr,
                                          void* self) -> int {
      auto* c = static_cast<TcpChannel*>(self);
      return c->pump_ ? c->pump_->on_data(data, len, is_stderr) : 0;  // 0: keep it until connected
    };
    callbacks_.channel_eof_function = [](ssh_session, ssh_channel, void* self) {
      auto* c = static_cast<TcpChannel*>(self);
      c->remote_eof_ = true;
      if (c->pump_) c->pump_->on_eof();
    };
    callbacks_.channel_close_function = [](ssh_session, ssh_channel, void* self) {
      static_cast<TcpChannel*>(self)->peer_closed_ = true;
    };
    ssh_callbacks_init(&callbacks_);
    ssh_set_channel_callbacks(channel_.get(), &callbacks_);
  }

  ~TcpChannel() override {
    ssh_remove_channel_callbacks(channel_.get(), &callbacks_);
    if (!closed_ && !peer_closed_ && ssh_channel_is_open(channel_.get())) ssh_channel_close(channel_.get());
    if (resolving_ != nullptr) {
      resolving_->data = nullptr;  // the callback frees it when libuv is done with it
      uv_cancel(reinterpret_cast<uv_req_t*>(resolving_));
    }
    if (pump_) pump_->stop();
  }

  // direct-tcpip to a connected (or connecting) socket.
  void start(UniqueFd socket) {
    pump_ = std::make_unique<ChannelPump>(connection_.context().loop(), connection_.session(), channel_.get(),
                                          connection_.waker());
    if (!pump_->attach_duplex(std::move(socket), ChannelPump::OnRemoteEof::shutdown_write)) {
      close_channel();
      return;
    }
    pump_->expect_buffered_input();
    if (remote_eof_) pump_->on_eof();
    pump_->update();
  }

  // direct-tcpip to a name: resolved off the loop, then connected.
  void resolve(const std::string& host, int port) {
    resolving_ = new uv_getaddrinfo_t{};
    resolving_->data = this;
    port_text_ = std::to_string(port);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    int rc = uv_getaddrinfo(connection_.context().loop(), resolving_, &TcpChannel::on_resolved, host.c_str(),
                            port_text_.c_str(), &hints);
    if (rc != 0) {
      delete resolving_;
      resolving_ = nullptr;
      LOG_INFO("ssh", "%s: %s: %s", connection_.id().c_str(), what_.c_str(), uv_strerror(rc));
      close_channel();
    }
  }

  // forwarded-tcpip: opens the channel towards the client, then carries `socket`.
  void open_reverse(Reverse reverse, UniqueFd socket) {
    reverse_ = std::move(reverse);
    pending_socket_ = std::move(socket);
    opening_ = true;
  }

  void update() override {
    if (finished_) return;
    if (peer_closed_) {
      finished_ = true;
      return;
    }
    if (opening_) {
      int rc = ssh_channel_open_reverse_forward(channel_.get(), reverse_.listen_address.c_str(), reverse_.listen_port,
                                                reverse_.peer_address.c_str(), reverse_.peer_port);
      if (rc == SSH_AGAIN) return;
      opening_ = false;
      if (rc != SSH_OK) {
        LOG_INFO("ssh", "%s: %s: the client refused the forwarded connection", connection_.id().c_str(), what_.c_str());
        closed_ = true;  // never opened: nothing to close
        finished_ = true;
        return;
      }
      start(std::move(pending_socket_));
    }
    if (!pump_) return;
    pump_->update();
    if (pump_->failed()) {
      close_channel();
      return;
    }
    if (pump_->output_eof() && !eof_sent_) {
      ssh_channel_send_eof(channel_.get());
      eof_sent_ = true;
    }
    if (eof_sent_ && pump_->input_finished()) close_channel();
  }

 private:
  static void on_resolved(uv_getaddrinfo_t* request, int status, addrinfo* result) {
    auto* self = static_cast<TcpChannel*>(request->data);
    std::unique_ptr<uv_getaddrinfo_t> owned(request);
    if (self == nullptr) {  // the channel went away meanwhile
      uv_freeaddrinfo(result);
      return;
    }
    self->resolving_ = nullptr;
    Waker waker = self->connection_.waker();
    int fd = -1;
    for (addrinfo* ai = status == 0 ? result : nullptr; ai != nullptr && fd < 0; ai = ai->ai_next)
      fd = connect_nonblocking(ai->ai_addr, ai->ai_addrlen);
    uv_freeaddrinfo(result);
    if (fd < 0) {
      LOG_INFO("ssh", "%s: %s: %s", self->connection_.id().c_str(), self->what_.c_str(),
               status != 0 ? uv_strerror(status) : std::strerror(errno));
      self->close_channel();
    } else {
      self->start(UniqueFd(fd));
    }
    waker();
  }

  void close_channel() {
    if (!closed_ && !peer_closed_) ssh_channel_close(channel_.get());
    closed_ = true;
    finished_ = true;
  }

  UniqueChannel channel_;
  ssh_channel_callbacks_struct callbacks_{};
  std::string what_;
  std::unique_ptr<ChannelPump> pump_;
  uv_getaddrinfo_t* resolving_ = nullptr;
  std::string port_text_;
  Reverse reverse_;
  UniqueFd pending_socket_;
  bool opening_ = false;
  bool remote_eof_ = false;
  bool eof_sent_ = false;
  bool peer_closed_ = false;
  bool closed_ = false;
};

std::string describe(const std::string& host, int port) { return host + ":" + std::to_string(port); }

}  // namespace

int open_direct_tcpip(Connection& connection, ssh_message message) {
  const char* dest = ssh_message_channel_request_open_destination(message);
  int port = ssh_message_channel_request_open_destination_port(message);
  const char* origin = ssh_message_channel_request_open_originator(message);
  std::string host = dest != nullptr ? dest : "";
  std::string what = "direct-tcpip to " + describe(host, port);
  const config::Policy& policy = connection.context().config().policy;
  if (port <= 0 || port > 65535) return 1;
  if (!policy.tcp || !policy.ports.permits(static_cast<uint16_t>(port))) {
    LOG_INFO("ssh", "%s: refused %s (port policy)", connection.id().c_str(), what.c_str());
    connection.audit("port_forward_blocked", {{"direction", "local"}, {"host", host}, {"port", port}});
    return 1;
  }
  if (!connection.can_add_channel()) return 1;

  sockaddr_storage address{};
  socklen_t length = 0;
  UniqueFd socket;
  bool local = resolve_locally(host, port, address, length);
  if (local) {
    socket.reset(connect_nonblocking(reinterpret_cast<sockaddr*>(&address), length));
    if (!socket.valid()) {
      LOG_INFO("ssh", "%s: %s: %s", connection.id().c_str(), what.c_str(), std::strerror(errno));
      return 1;  // OpenSSH prints "open failed: connect failed"
    }
  }
  ssh_channel channel = ssh_message_channel_request_open_reply_accept(message);
  if (channel == nullptr) return 0;  // libssh could not even answer: the session is failing
  auto tcp = std::make_unique<TcpChannel>(connection, channel, what);
  if (local)
    tcp->start(std::move(socket));
  else
    tcp->resolve(host, port);
  connection.audit("port_forward", {{"direction", "local"},
                                    {"host", host},
                                    {"port", port},
                                    {"originator", origin != nullptr ? origin : ""}});
  LOG_INFO("ssh", "%s: %s", connection.id().c_str(), what.c_str());
  connection.add_channel(std::move(tcp));
  return 0;
}

int handle_global_request(Connection& connection, ssh_message message) {
  int subtype = ssh_message_subtype(message);
  const char* raw_address = ssh_message_global_request_address(message);
  std::string address = raw_address != nullptr ? raw_address : "";
  int port = ssh_message_global_request_port(message);
  auto& forwards = connection.remote_forwards();

  if (subtype == SSH_GLOBAL_REQUEST_TCPIP_FORWARD) {
    if (port < 0 || port > 65535 || forwards.size() >= kMaxRemoteForwardsPerConnection) return 1;
    auto forward = std::make_unique<RemoteForward>(connection, address, port);
    if (Status listening = forward->listen(); !listening) {
      LOG_INFO("ssh", "%s: remote forward refused: %s", connection.id().c_str(), listening.error().message.c_str());
      return 1;
    }
    ssh_message_global_request_reply_success(message, static_cast<uint16_t>(forward->port()));
    connection.audit("port_forward", {{"direction", "remote"}, {"address", address}, {"port", forward->port()}});
    LOG_INFO("ssh", "%s: remote forward listening on port %d", connection.id().c_str(), forward->port());
    forwards.push_back(std::move(forward));
    return 0;
  }
  if (subtype == SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD) {
    auto it = std::find_if(forwards.begin(), forwards.end(), [&](const std::unique_ptr<RemoteForward>& f) {
      return f->port() == port && f->address() == address;
    });
    if (it == forwards.end()) return 1;
    forwards.erase(it);
    ssh_message_global_request_reply_success(message, 0);
    return 0;
  }
  return 1;
}

RemoteForward::RemoteForward(Connection& connection, std::string address, int port)
    : connection_(connection), address_(std::move(address)), port_(port) {}

RemoteForward::~RemoteForward() { poll_.reset(); }

Status RemoteForward::listen() {
  sockaddr_in bind_to{};
  bind_to.sin_family = AF_INET;
  bind_to.sin_port = htons(static_cast<uint16_t>(port_));
  bind_to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Like sshd's GatewayPorts=no: wildcards and names mean loopback; an explicit address is kept.
  in_addr explicit_address{};
  if (::inet_pton(AF_INET, address_.c_str(), &explicit_address) == 1 && explicit_address.s_addr != INADDR_ANY)
    bind_to.sin_addr = explicit_address;

  fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd_.valid()) return make_error(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&bind_to), sizeof(bind_to)) != 0)
    return make_error("bind port " + std::to_string(port_) + ": " + std::strerror(errno));
  if (::listen(fd_.get(), kListenBacklog) != 0) return make_error(std::string("listen: ") + std::strerror(errno));
  socklen_t length = sizeof(bind_to);
  ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&bind_to), &length);
  port_ = ntohs(bind_to.sin_port);

  int rc = poll_.init([&](uv_poll_t* p) { return uv_poll_init(connection_.context().loop(), p, fd_.get()); });
  if (rc != 0) return make_error(std::string("uv_poll_init: ") + uv_strerror(rc));
  poll_->data = this;
  rc = uv_poll_start(poll_.get(), UV_READABLE, [](uv_poll_t* h, int status, int) {
    auto* self = static_cast<RemoteForward*>(h->data);
    if (self == nullptr || status < 0) return;
    Waker waker = self->connection_.waker();
    self->accept_one();
    waker();
  });
  if (rc != 0) return make_error(std::string("uv_poll_start: ") + uv_strerror(rc));
  return Ok{};
}

void RemoteForward::accept_one() {
  for (int i = 0; i < kAcceptsPerEvent; ++i) {
    sockaddr_storage peer{};
    socklen_t length = sizeof(peer);
    UniqueFd socket(::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&peer), &length, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!socket.valid()) return;
    if (!connection_.can_add_channel() || connection_.finished()) continue;  // dropped: closes it
    char peer_host[INET6_ADDRSTRLEN] = "127.0.0.1";
    int peer_port = 0;
    if (peer.ss_family == AF_INET) {
      auto* v4 = reinterpret_cast<sockaddr_in*>(&peer);
      ::inet_ntop(AF_INET, &v4->sin_addr, peer_host, sizeof(peer_host));
      peer_port = ntohs(v4->sin_port);
    }
    ssh_channel channel = ssh_channel_new(connection_.session());
    if (channel == nullptr) continue;
    auto tcp = std::make_unique<TcpChannel>(connection_, channel, "forwarded-tcpip from port " + std::to_string(port_));
    tcp->open_reverse({address_, port_, peer_host, peer_port}, std::move(socket));
    connection_.add_channel(std::move(tcp));
  }
}

}  // namespace airlock::agent::ssh
