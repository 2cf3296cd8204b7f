// One HTTP/1.1 GET for an app's health check, on libuv TCP: connect, send the request, read
// until the status line, close. Only the status code matters, so the body is never read.
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <string>

#include "common/net/uv_handle.hpp"
#include "common/workspace/health.hpp"

namespace airlock::agent {

struct ProbeOutcome {
  bool success = false;  // an answer with a status below 500
  int status = 0;        // 0: no answer
  std::string detail;    // "200", "status 503", "connection refused", "no answer within 800 ms"
};

class HttpProbe {
 public:
  using DoneCallback = std::function<void(const ProbeOutcome&)>;

  HttpProbe(uv_loop_t* loop, workspace::HttpUrl url, std::chrono::milliseconds timeout, DoneCallback done);
  // Abandons a probe in flight; its callback is then never called.
  ~HttpProbe();
  HttpProbe(const HttpProbe&) = delete;
  HttpProbe& operator=(const HttpProbe&) = delete;

  void start();
  bool finished() const { return finished_; }

  struct Connection;
  struct Resolution;

 private:
  void connect_to(const sockaddr* addr);
  void complete(ProbeOutcome outcome);
  void detach();

  uv_loop_t* loop_;
  workspace::HttpUrl url_;
  std::chrono::milliseconds timeout_;
  DoneCallback done_;
  net::UvHandle<uv_timer_t> timer_;
  Connection* conn_ = nullptr;       // freed by its close callback
  Resolution* resolving_ = nullptr;  // freed by its callback
  bool finished_ = false;

  friend struct Connection;
  friend struct Resolution;
  friend void probe_on_connect(uv_connect_t*, int);
  friend void probe_on_read(uv_stream_t*, ssize_t, const uv_buf_t*);
  friend void probe_on_resolved(uv_getaddrinfo_t*, int, addrinfo*);
};

}  // namespace airlock::agent
