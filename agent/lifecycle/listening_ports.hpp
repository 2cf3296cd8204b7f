// Scans the workspace's listening TCP ports (/proc/net/tcp and tcp6, state LISTEN) and names the
// process holding each socket (socket inode -> /proc/PID/fd -> /proc/PID/comm). Scans on an
// interval and pushes the list when it changes.
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <vector>

#include "common/net/uv_handle.hpp"
#include "common/workspace/status.hpp"

namespace airlock::agent {

// One scan, now. Processes of other users show without a name (their fds cannot be read).
std::vector<workspace::ListeningPort> scan_listening_ports();

class ListeningPortScanner {
 public:
  using ChangeCallback = std::function<void(const std::vector<workspace::ListeningPort>&)>;

  ListeningPortScanner(uv_loop_t* loop, std::chrono::milliseconds interval, ChangeCallback on_change);
  void start();
  void stop();
  void scan_now();
  const std::vector<workspace::ListeningPort>& ports() const { return ports_; }

 private:
  uv_loop_t* loop_;
  std::chrono::milliseconds interval_;
  ChangeCallback on_change_;
  net::UvHandle<uv_timer_t> timer_;
  std::vector<workspace::ListeningPort> ports_;
};

}  // namespace airlock::agent
