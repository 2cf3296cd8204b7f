#include "agent/lifecycle/http_probe.hpp"

#include <cstring>

namespace airlock::agent {

// The TCP handle and its requests live in one block freed by the handle's close callback:
// libuv cancels pending requests (calling their callbacks) before it, so nothing dangles when
// the probe that started them is gone.
struct HttpProbe::Connection {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  std::string request;
  std::string response;
  HttpProbe* owner = nullptr;
  char buffer[1024];
};

struct HttpProbe::Resolution {
  uv_getaddrinfo_t req;
  HttpProbe* owner = nullptr;
};

namespace {

// The longest head we read looking for the status line; a longer first line is not HTTP.
constexpr size_t kMaxStatusLine = 1024;

void close_connection(HttpProbe::Connection* c) {
  c->owner = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp),
           [](uv_handle_t* h) { delete static_cast<HttpProbe::Connection*>(h->data); });
}

std::string describe_error(int code) {
  switch (code) {
    case UV_ECONNREFUSED: return "connection refused";
    case UV_ECONNRESET: return "connection reset";
    case UV_ENETUNREACH:
    case UV_EHOSTUNREACH: return "host unreachable";
    case UV_EOF: return "connection closed before an HTTP answer";
    default: return uv_strerror(code);
  }
}

}  // namespace

void probe_on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  auto* c = static_cast<HttpProbe::Connection*>(s->data);
  HttpProbe* self = c->owner;
  if (!self) return;
  if (n < 0) {
    self->complete({false, 0, describe_error(static_cast<int>(n))});
    return;
  }
  c->response.append(buf->base, static_cast<size_t>(n));
  auto eol = c->response.find('\n');
  if (eol == std::string::npos) {
    if (c->response.size() > kMaxStatusLine) self->complete({false, 0, "the answer is not HTTP"});
    return;
  }
  auto status = workspace::parse_http_status_line(std::string_view(c->response).substr(0, eol));
  if (!status) {
    self->complete({false, 0, "the answer is not HTTP"});
    return;
  }
  bool ok = workspace::healthy_status(*status);
  self->complete({ok, *status, ok ? std::to_string(*status) : "status " + std::to_string(*status)});
}

void probe_on_connect(uv_connect_t* req, int status) {
  auto* c = static_cast<HttpProbe::Connection*>(req->data);
  HttpProbe* self = c->owner;
  if (!self) return;
  if (status < 0) {
    self->complete({false, 0, describe_error(status)});
    return;
  }
  uv_buf_t buf = uv_buf_init(c->request.data(), static_cast<unsigned>(c->request.size()));
  c->write.data = c;
  uv_write(&c->write, reinterpret_cast<uv_stream_t*>(&c->tcp), &buf, 1, [](uv_write_t* w, int st) {
    auto* conn = static_cast<HttpProbe::Connection*>(w->data);
    if (st < 0 && conn->owner) conn->owner->complete({false, 0, describe_error(st)});
  });
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->tcp),
      [](uv_handle_t* h, size_t, uv_buf_t* b) {
        auto* conn = static_cast<HttpProbe::Connection*>(h->data);
        *b = uv_buf_init(conn->buffer, sizeof conn->buffer);
      },
      probe_on_read);
}

void probe_on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res) {
  auto* r = static_cast<HttpProbe::Resolution*>(req->data);
  HttpProbe* self = r->owner;
  delete r;
  if (!self) {
    uv_freeaddrinfo(res);
    return;
  }
  self->resolving_ = nullptr;
  if (status < 0 || !res) {
    self->complete({false, 0, "cannot resolve " + self->url_.host + ": " + uv_strerror(status)});
    uv_freeaddrinfo(res);
    return;
  }
  self->connect_to(res->ai_addr);
  uv_freeaddrinfo(res);
}

HttpProbe::HttpProbe(uv_loop_t* loop, workspace::HttpUrl url, std::chrono::milliseconds timeout, DoneCallback done)
    : loop_(loop), url_(std::move(url)), timeout_(timeout), done_(std::move(done)) {}

HttpProbe::~HttpProbe() { detach(); }

void HttpProbe::detach() {
  timer_.reset();
  if (conn_) close_connection(std::exchange(conn_, nullptr));
  if (resolving_) {
    resolving_->owner = nullptr;
    uv_cancel(reinterpret_cast<uv_req_t*>(&resolving_->req));
    resolving_ = nullptr;
  }
}

void HttpProbe::start() {
  timer_.init([&](uv_timer_t* h) { return uv_timer_init(loop_, h); });
  timer_->data = this;
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* h) {
        auto* self = static_cast<HttpProbe*>(h->data);
        self->complete({false, 0, "no answer within " + std::to_string(self->timeout_.count()) + " ms"});
      },
      static_cast<uint64_t>(timeout_.count()), 0);

  // Numeric addresses (the usual 127.0.0.1) skip the resolver and its thread pool.
  sockaddr_storage addr{};
  if (uv_ip4_addr(url_.host.c_str(), url_.port, reinterpret_cast<sockaddr_in*>(&addr)) == 0 ||
      uv_ip6_addr(url_.host.c_str(), url_.port, reinterpret_cast<sockaddr_in6*>(&addr)) == 0) {
    connect_to(reinterpret_cast<sockaddr*>(&addr));
    return;
  }
  auto* r = new Resolution;
  r->owner = this;
  r->req.data = r;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  std::string port = std::to_string(url_.port);
  int rc = uv_getaddrinfo(loop_, &r->req, probe_on_resolved, url_.host.c_str(), port.c_str(), &hints);
  if (rc != 0) {
    delete r;
    complete({false, 0, "cannot resolve " + url_.host + ": " + uv_strerror(rc)});
    return;
  }
  resolving_ = r;
}

void HttpProbe::connect_to(const sockaddr* addr) {
  auto* c = new Connection;
  int rc = uv_tcp_init(loop_, &c->tcp);
  if (rc != 0) {
    delete c;
    complete({false, 0, std::string("cannot create a socket: ") + uv_strerror(rc)});
    return;
  }
  c->tcp.data = c;
  c->owner = this;
  conn_ = c;
  c->request = "GET " + url_.target + " HTTP/1.1\r\nHost: " + url_.host_header +
               "\r\nUser-Agent: airlock-agent\r\nAccept: */*\r\nConnection: close\r\n\r\n";
  c->connect.data = c;
  rc = uv_tcp_connect(&c->connect, &c->tcp, addr, probe_on_connect);
  if (rc != 0) complete({false, 0, describe_error(rc)});
}

void HttpProbe::complete(ProbeOutcome outcome) {
  if (finished_) return;
  finished_ = true;
  detach();
  // done_ may destroy this probe: it is the last thing done here.
  auto cb = std::move(done_);
  if (cb) cb(outcome);
}

}  // namespace airlock::agent
