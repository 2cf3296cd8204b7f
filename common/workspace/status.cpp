#include "common/workspace/status.hpp"

#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>

namespace airlock::workspace {

using json = nlohmann::ordered_json;

const char* lifecycle_state_name(LifecycleState s) {
  switch (s) {
    case LifecycleState::created: return "created";
    case LifecycleState::starting: return "starting";
    case LifecycleState::ready: return "ready";
    case LifecycleState::start_error: return "start_error";
    case LifecycleState::start_timeout: return "start_timeout";
    case LifecycleState::shutting_down: return "shutting_down";
    case LifecycleState::off: return "off";
    case LifecycleState::shutdown_error: return "shutdown_error";
    case LifecycleState::shutdown_timeout: return "shutdown_timeout";
  }
  return "unknown";
}

bool startup_finished(LifecycleState s) {
  return s == LifecycleState::ready || s == LifecycleState::start_error || s == LifecycleState::start_timeout;
}

bool lifecycle_final(LifecycleState s) {
  return s == LifecycleState::off || s == LifecycleState::shutdown_error || s == LifecycleState::shutdown_timeout;
}

const char* script_state_name(ScriptState s) {
  switch (s) {
    case ScriptState::none: return "none";
    case ScriptState::pending: return "pending";
    case ScriptState::running: return "running";
    case ScriptState::succeeded: return "succeeded";
    case ScriptState::failed: return "failed";
    case ScriptState::timed_out: return "timed_out";
  }
  return "unknown";
}

std::string format_time(TimePoint t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  if (ms < 0 && ms % 1000) --secs;
  int millis = static_cast<int>(((ms % 1000) + 1000) % 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];  // room for any int the compiler can imagine in the fields
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

namespace {

json time_or_null(const std::optional<TimePoint>& t) { return t ? json(format_time(*t)) : json(nullptr); }
template <typename T>
json value_or_null(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

}  // namespace

json to_json(const ScriptResult& s) {
  json out = {
      {"state", script_state_name(s.state)},
      {"timeout_s", s.timeout.count()},
      {"blocks_login", s.blocks_login},
      {"exit_code", value_or_null(s.exit_code)},
      {"signal", value_or_null(s.signal)},
      {"started_at", time_or_null(s.started_at)},
      {"finished_at", time_or_null(s.finished_at)},
      {"duration_ms", nullptr},
      {"error", s.error},
      {"log_path", s.log_path},
      {"log_lines", s.log_lines},
      {"log_tail", s.log_tail},
  };
  if (s.started_at && s.finished_at)
    out["duration_ms"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(*s.finished_at - *s.started_at).count();
  return out;
}

json to_json(const AppStatus& a) {
  json health_check = nullptr;
  if (!a.healthcheck_url.empty())
    health_check = {{"url", a.healthcheck_url}, {"interval_s", a.interval.count()}, {"threshold", a.threshold}};
  return {
      {"slug", a.slug},
      {"display_name", a.display_name},
      {"url", a.url},
      {"healthcheck", health_check},
      {"health", health_state_name(a.health)},
      {"health_detail", a.detail},
      {"consecutive_failures", a.consecutive_failures},
      {"checks", a.checks},
      {"last_check_at", time_or_null(a.last_check_at)},
      {"health_changed_at", time_or_null(a.changed_at)},
  };
}

json to_json(const MetadataStatus& m) {
  return {
      {"key", m.key},
      {"display_name", m.display_name},
      {"interval_s", m.interval.count()},
      {"timeout_s", m.timeout.count()},
      {"value", m.value},
      {"error", m.error},
      {"collected_at", time_or_null(m.collected_at)},
  };
}

json to_json(const ListeningPort& p) {
  return {{"port", p.port},
          {"network", p.network},
          {"address", p.address},
          {"process", p.process},
          {"pid", p.pid == 0 ? json(nullptr) : json(p.pid)}};
}

json to_json(const TrafficStats& s) {
  json peers = json::array();
  for (const auto& p : s.peers)
    peers.push_back({{"peer", p.peer}, {"latency_ms", p.latency_ms}, {"measured_at", format_time(p.measured_at)}});
  return {
      {"bytes_in", s.bytes_in},
      {"bytes_out", s.bytes_out},
      {"sessions_open", json(s.sessions_open)},
      {"sessions_total", json(s.sessions_total)},
      {"peers", peers},
  };
}

json to_json(const WorkspaceStatus& s) {
  json apps = json::array(), metadata = json::array(), ports = json::array();
  for (const auto& a : s.apps) apps.push_back(to_json(a));
  for (const auto& m : s.metadata) metadata.push_back(to_json(m));
  for (const auto& p : s.listening_ports) ports.push_back(to_json(p));
  const auto& l = s.lifecycle;
  return {
      {"schema", kStatusSchema},
      {"updated_at", format_time(s.updated_at)},
      {"agent",
       {{"version", s.agent.version},
        {"pid", s.agent.pid},
        {"pid1", s.agent.pid1},
        {"subreaper", s.agent.subreaper},
        {"started_at", format_time(s.agent.started_at)},
        {"relay_configured", s.agent.relay_configured},
        {"connected", s.agent.connected},
        {"relay_url", s.agent.relay_url},
        {"reaped_orphans", s.agent.reaped_orphans}}},
      {"lifecycle",
       {{"state", lifecycle_state_name(l.state)},
        {"changed_at", format_time(l.changed_at)},
        {"starting_at", time_or_null(l.starting_at)},
        {"ready_at", time_or_null(l.ready_at)},
        {"shutting_down_at", time_or_null(l.shutting_down_at)},
        {"finished_at", time_or_null(l.finished_at)},
        {"login_blocked", l.login_blocked}}},
      {"startup_script", to_json(s.startup)},
      {"shutdown_script", to_json(s.shutdown)},
      {"apps", apps},
      {"metadata", metadata},
      {"listening_ports", ports},
      {"stats", to_json(s.stats)},
  };
}

}  // namespace airlock::workspace
