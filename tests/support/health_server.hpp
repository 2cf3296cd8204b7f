// A tiny HTTP server for app health checks, which a test switches between answering 200,
// answering 503 and not listening at all; it records every answer with its time.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/loopback.hpp"

namespace airlock::test {

class HealthServer {
 public:
  enum class Mode { ok, failing, down };

  HealthServer() {
    listen_on(0);
    thread_ = std::thread([this] { serve(); });
  }
  ~HealthServer() {
    stop_ = true;
    thread_.join();
    if (fd_ >= 0) close(fd_);
  }

  uint16_t port() const { return port_; }

  void set(Mode m) {
    std::lock_guard lock(mu_);
    if (m == Mode::down && fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    } else if (m != Mode::down && fd_ < 0) {
      listen_on(port_);
    }
    mode_ = m;
  }

  // Answers given since the last call: (time, status).
  std::vector<std::pair<std::chrono::system_clock::time_point, int>> take_answers() {
    std::lock_guard lock(mu_);
    return std::exchange(answers_, {});
  }

 private:
  void listen_on(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr = loopback_address(port);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd_, 16) != 0)
      throw std::runtime_error("health server: cannot listen on 127.0.0.1");
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }

  void serve() {
    while (!stop_) {
      int fd;
      {
        std::lock_guard lock(mu_);
        fd = fd_;
      }
      if (fd < 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      std::lock_guard lock(mu_);
      if (fd_ < 0) continue;
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      char buf[2048];
      std::string req;
      pollfd cp{c, POLLIN, 0};
      while (req.find("\r\n\r\n") == std::string::npos && poll(&cp, 1, 500) > 0) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      int status = mode_ == Mode::ok ? 200 : 503;
      std::string body = status == 200 ? "ok" : "starting";
      std::string resp = "HTTP/1.1 " + std::to_string(status) + (status == 200 ? " OK" : " Service Unavailable") +
                         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
      (void)!write(c, resp.data(), resp.size());
      close(c);
      answers_.emplace_back(std::chrono::system_clock::now(), status);
    }
  }

  std::mutex mu_;
  int fd_ = -1;
  uint16_t port_ = 0;
  Mode mode_ = Mode::failing;
  std::atomic<bool> stop_{false};
  std::vector<std::pair<std::chrono::system_clock::time_point, int>> answers_;
  std::thread thread_;
};

}  // namespace airlock::test
