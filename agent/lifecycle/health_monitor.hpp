// Polls each app's healthcheck URL every `interval` and pushes health changes at once.
// Each check's timeout is below the interval (80% of it, at most 10 s) so checks never overlap.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "agent/lifecycle/http_probe.hpp"
#include "common/config/manifest.hpp"
#include "common/net/uv_handle.hpp"
#include "common/workspace/health.hpp"
#include "common/workspace/status.hpp"

namespace airlock::agent {

class HealthMonitor {
 public:
  // Called with the app whose health state changed.
  using ChangeCallback = std::function<void(const workspace::AppStatus&)>;

  HealthMonitor(uv_loop_t* loop, const std::vector<config::App>& apps, ChangeCallback on_change);
  HealthMonitor(const HealthMonitor&) = delete;
  HealthMonitor& operator=(const HealthMonitor&) = delete;

  void start();
  void stop();
  std::vector<workspace::AppStatus> apps() const;

  static std::chrono::milliseconds probe_timeout(std::chrono::seconds interval);

 private:
  struct AppCheck {
    config::App app;
    workspace::AppHealth health;
    std::optional<workspace::HttpUrl> url;
    net::UvHandle<uv_timer_t> timer;
    std::unique_ptr<HttpProbe> probe;
    HealthMonitor* monitor = nullptr;
  };

  void check(AppCheck& app);
  workspace::AppStatus status_of(const AppCheck& app) const;

  uv_loop_t* loop_;
  std::vector<std::unique_ptr<AppCheck>> apps_;
  ChangeCallback on_change_;
};

}  // namespace airlock::agent
