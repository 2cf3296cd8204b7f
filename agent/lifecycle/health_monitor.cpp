#include "agent/lifecycle/health_monitor.hpp"

#include <algorithm>

#include "common/util/log.hpp"

namespace airlock::agent {

using workspace::HealthState;

std::chrono::milliseconds HealthMonitor::probe_timeout(std::chrono::seconds interval) {
  auto t = std::chrono::duration_cast<std::chrono::milliseconds>(interval) * 4 / 5;
  return std::min<std::chrono::milliseconds>(t, std::chrono::seconds(10));
}

HealthMonitor::HealthMonitor(uv_loop_t* loop, const std::vector<config::App>& apps, ChangeCallback on_change)
    : loop_(loop), on_change_(std::move(on_change)) {
  for (const auto& app : apps) {
    bool enabled = !app.healthcheck_url.empty();
    auto check = std::make_unique<AppCheck>(AppCheck{app, workspace::AppHealth(enabled, app.threshold), {}, {}, {}, this});
    if (enabled) {
      auto url = workspace::parse_http_url(app.healthcheck_url);
      if (url) {
        check->url = *url;
      } else {
        // Not a failure of the app: the check itself cannot run, and the detail says why.
        check->health.disable(url.error().message);
        LOG_WARN("agent", "app %s: health check off: %s", app.slug.c_str(), url.error().message.c_str());
      }
    }
    apps_.push_back(std::move(check));
  }
}

void HealthMonitor::start() {
  for (auto& a : apps_) {
    if (!a->url) continue;
    a->timer.init([&](uv_timer_t* h) { return uv_timer_init(loop_, h); });
    a->timer->data = a.get();
    auto interval_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(a->app.interval).count());
    uv_timer_start(
        a->timer.get(),
        [](uv_timer_t* h) {
          auto* app = static_cast<AppCheck*>(h->data);
          app->monitor->check(*app);
        },
        0, interval_ms);
  }
}

void HealthMonitor::stop() {
  for (auto& a : apps_) {
    a->timer.reset();
    a->probe.reset();
  }
}

void HealthMonitor::check(AppCheck& a) {
  if (a.probe && !a.probe->finished()) return;  // cannot happen with timeout < interval; harmless
  a.probe = std::make_unique<HttpProbe>(loop_, *a.url, probe_timeout(a.app.interval), [this, &a](const ProbeOutcome& o) {
    HealthState before = a.health.state();
    bool changed = a.health.record(o.success, o.detail, std::chrono::system_clock::now());
    if (changed) {
      auto level = a.health.state() == HealthState::unhealthy ? log::Level::warn : log::Level::info;
      AIRLOCK_LOG_AT(level, "agent", "app %s: %s -> %s (%s)", a.app.slug.c_str(), workspace::health_state_name(before),
                     workspace::health_state_name(a.health.state()), o.detail.c_str());
      if (on_change_) on_change_(status_of(a));
    } else {
      LOG_DEBUG("agent", "app %s: check %s (%s, %d consecutive failures)", a.app.slug.c_str(),
                o.success ? "passed" : "failed", o.detail.c_str(), a.health.consecutive_failures());
    }
  });
  a.probe->start();
}

workspace::AppStatus HealthMonitor::status_of(const AppCheck& a) const {
  workspace::AppStatus s;
  s.slug = a.app.slug;
  s.display_name = a.app.display_name;
  s.url = a.app.url;
  s.healthcheck_url = a.app.healthcheck_url;
  s.interval = a.app.interval;
  s.threshold = a.app.threshold;
  s.health = a.health.state();
  s.detail = a.health.detail();
  s.consecutive_failures = a.health.consecutive_failures();
  s.checks = a.health.checks();
  s.last_check_at = a.health.last_check();
  s.changed_at = a.health.changed_at();
  return s;
}

std::vector<workspace::AppStatus> HealthMonitor::apps() const {
  std::vector<workspace::AppStatus> out;
  for (const auto& a : apps_) out.push_back(status_of(*a));
  return out;
}

}  // namespace airlock::agent
