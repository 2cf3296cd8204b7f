// App health, without I/O: which URL to ask, what an answer means, and when an app turns
// unhealthy. The agent's probe (agent/lifecycle/health_monitor) does the HTTP GET and feeds the
// outcome to an AppHealth.
//
// Rules (the same as the workspace platform's):
//   - no healthcheck URL                      -> disabled
//   - no answer yet                           -> initializing
//   - any HTTP answer with a status below 500 -> healthy, at once (one success heals)
//   - `threshold` consecutive failures        -> unhealthy (a failure is no answer, a timeout,
//                                                or a status of 500 or more)
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/util/result.hpp"

namespace airlock::workspace {

enum class HealthState { disabled, initializing, healthy, unhealthy };
const char* health_state_name(HealthState s);

struct HttpUrl {
  std::string host;  // "127.0.0.1", "localhost", "::1" (no brackets)
  uint16_t port = 80;
  std::string target = "/";  // path and query, as sent in the request line
  std::string host_header;   // "127.0.0.1:13337"
};

// http://host[:port][/path][?query]. https:// is refused with a message saying it is not
// supported yet; the monitor shows that message as the app's health detail.
Result<HttpUrl> parse_http_url(std::string_view url);

// "HTTP/1.1 503 Service Unavailable" -> 503; nullopt when the text is not a status line.
std::optional<int> parse_http_status_line(std::string_view line);

inline bool healthy_status(int status) { return status > 0 && status < 500; }

// The state machine of one app's health; time comes in with every result.
class AppHealth {
 public:
  AppHealth(bool enabled, int threshold) : state_(enabled ? HealthState::initializing : HealthState::disabled),
                                           threshold_(threshold < 1 ? 1 : threshold) {}

  // Feeds one probe outcome; returns true when the state changed.
  bool record(bool success, std::string detail, std::chrono::system_clock::time_point at);
  // For a check that cannot run at all (an https:// URL today): disabled with the reason.
  void disable(std::string reason);

  HealthState state() const { return state_; }
  int consecutive_failures() const { return failures_; }
  const std::string& detail() const { return detail_; }
  std::optional<std::chrono::system_clock::time_point> last_check() const { return last_check_; }
  std::optional<std::chrono::system_clock::time_point> changed_at() const { return changed_at_; }
  uint64_t checks() const { return checks_; }

 private:
  HealthState state_;
  int threshold_;
  int failures_ = 0;
  uint64_t checks_ = 0;
  std::string detail_;
  std::optional<std::chrono::system_clock::time_point> last_check_;
  std::optional<std::chrono::system_clock::time_point> changed_at_;
};

}  // namespace airlock::workspace
