#include "common/workspace/health.hpp"

#include <charconv>

namespace airlock::workspace {

const char* health_state_name(HealthState s) {
  switch (s) {
    case HealthState::disabled: return "disabled";
    case HealthState::initializing: return "initializing";
    case HealthState::healthy: return "healthy";
    case HealthState::unhealthy: return "unhealthy";
  }
  return "unknown";
}

Result<HttpUrl> parse_http_url(std::string_view url) {
  const std::string quoted = "\"" + std::string(url) + "\"";
  if (url.rfind("https://", 0) == 0)
    return make_error("https health checks are not supported yet: use an http:// URL on the workspace's loopback "
                      "(the check never leaves the workspace)");
  if (url.rfind("http://", 0) != 0) return make_error(quoted + " is not an http:// URL");
  std::string_view rest = url.substr(7);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view target = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (auto hash = target.find('#'); hash != std::string_view::npos) target = target.substr(0, hash);
  if (authority.find('@') != std::string_view::npos) return make_error(quoted + ": user:password@ is not supported");
  HttpUrl out;
  std::string_view host = authority, port;
  if (!authority.empty() && authority[0] == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return make_error(quoted + ": unclosed [ in the IPv6 address");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return make_error(quoted + ": unexpected text after the IPv6 address");
      port = after.substr(1);
    }
  } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return make_error(quoted + " has no host");
  for (char c : host)
    if (c <= ' ' || c == '/' || c == '\\' || c == '%' || c == 0x7f) return make_error(quoted + ": the host has a character URLs do not allow");
  out.host = std::string(host);
  if (!port.empty()) {
    unsigned p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || ptr != port.data() + port.size() || p < 1 || p > 65535)
      return make_error(quoted + ": the port must be 1-65535");
    out.port = static_cast<uint16_t>(p);
  }
  for (char c : target)
    if (c <= ' ' || c == 0x7f) return make_error(quoted + ": the path has a space or control character (percent-encode it)");
  out.target = target.empty() ? "/" : (target[0] == '?' ? "/" + std::string(target) : std::string(target));
  out.host_header = std::string(authority);
  return out;
}

std::optional<int> parse_http_status_line(std::string_view line) {
  // HTTP/1.x SP 3DIGIT [SP reason]
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ') return std::nullopt;
  if (line[7] != '0' && line[7] != '1') return std::nullopt;
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return std::nullopt;
    status = status * 10 + (line[i] - '0');
  }
  if (line.size() > 12 && line[12] != ' ' && line[12] != '\r') return std::nullopt;
  if (status < 100) return std::nullopt;
  return status;
}

bool AppHealth::record(bool success, std::string detail, std::chrono::system_clock::time_point at) {
  if (state_ == HealthState::disabled) return false;
  ++checks_;
  last_check_ = at;
  detail_ = std::move(detail);
  HealthState next = state_;
  if (success) {
    failures_ = 0;
    next = HealthState::healthy;
  } else {
    ++failures_;
    if (failures_ >= threshold_) next = HealthState::unhealthy;
  }
  if (next == state_) return false;
  state_ = next;
  changed_at_ = at;
  return true;
}

void AppHealth::disable(std::string reason) {
  state_ = HealthState::disabled;
  detail_ = std::move(reason);
}

}  // namespace airlock::workspace
