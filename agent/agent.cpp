#include "agent/agent.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "agent/lifecycle/status_file.hpp"
#include "common/util/log.hpp"

extern char** environ;

namespace airlock::agent {

using workspace::LifecycleState;
using workspace::ScriptState;

namespace {

// Lines of each script's output carried in the status document; `airlock logs` gets more.
constexpr size_t kStatusLogTail = 20;
// Lines of each script's output kept in memory.
constexpr size_t kMemoryLogTail = 1000;
// Status file rewrites are coalesced: many changes in a burst make one write.
constexpr uint64_t kStatusWriteDelayMs = 20;
// Stats change with every packet; they are pushed at most this often.
constexpr uint64_t kStatsPushMs = 1000;
// How often leftover processes are looked for while the agent waits for them to exit.
constexpr uint64_t kLeftoverPollMs = 50;
// After SIGKILL, how long to wait for the kernel to take the processes down.
constexpr auto kAfterKillWait = std::chrono::seconds(2);

bool is_directory(const std::string& path) {
  struct stat st;
  return !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

const char* script_kind_name(ScriptKind kind) { return kind == ScriptKind::startup ? "startup" : "shutdown"; }

const char* status_change_name(StatusChange c) {
  switch (c) {
    case StatusChange::lifecycle: return "lifecycle";
    case StatusChange::startup_script: return "startup_script";
    case StatusChange::shutdown_script: return "shutdown_script";
    case StatusChange::apps: return "apps";
    case StatusChange::metadata: return "metadata";
    case StatusChange::listening_ports: return "listening_ports";
    case StatusChange::stats: return "stats";
    case StatusChange::connection: return "connection";
  }
  return "unknown";
}

Agent::Agent(uv_loop_t* loop, Options options)
    : loop_(loop), options_(std::move(options)), registry_(loop) {
  startup_log_.tail = workspace::LogTail(kMemoryLogTail);
  shutdown_log_.tail = workspace::LogTail(kMemoryLogTail);
  auto now = std::chrono::system_clock::now();
  info_.version = options_.version;
  info_.pid = static_cast<int>(getpid());
  info_.pid1 = options_.pid1;
  info_.subreaper = options_.subreaper;
  info_.started_at = now;
  info_.relay_configured = !options_.settings.relay_url.empty();
  info_.relay_url = options_.settings.relay_url;
  lifecycle_.state = LifecycleState::created;
  lifecycle_.changed_at = now;

  // Scripts run in the manifest's directory, or the home directory while that does not exist
  // yet (a startup script may be what creates it).
  const char* home = std::getenv("HOME");
  script_directory_ = options_.manifest.directory;
  if (!is_directory(script_directory_)) {
    std::string fallback = home && is_directory(home) ? home : "/";
    if (!script_directory_.empty())
      LOG_WARN("agent", "manifest directory %s does not exist: scripts run in %s", script_directory_.c_str(),
               fallback.c_str());
    script_directory_ = fallback;
  }
  // The environment of scripts: the agent's own, without its secrets, plus the manifest's.
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    env[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  env.erase("AIRLOCK_AGENT_TOKEN");
  for (const auto& [k, v] : options_.manifest.env) env[k] = v;
  for (const auto& [k, v] : env) script_env_.push_back(k + "=" + v);

  auto set_script = [](workspace::ScriptResult& r, const std::optional<config::Script>& s) {
    r.state = s ? ScriptState::pending : ScriptState::none;
    if (s) {
      r.timeout = s->timeout;
      r.blocks_login = s->blocks_login;
    }
  };
  set_script(startup_, options_.manifest.startup);
  set_script(shutdown_, options_.manifest.shutdown);

  health_ = std::make_unique<HealthMonitor>(loop_, options_.manifest.apps,
                                            [this](const workspace::AppStatus&) { notify(StatusChange::apps); });
  metadata_ = std::make_unique<MetadataCollector>(loop_, options_.manifest.metadata, script_directory_, script_env_,
                                                  [this](const workspace::MetadataStatus&) { notify(StatusChange::metadata); });
  ports_ = std::make_unique<ListeningPortScanner>(
      loop_, options_.settings.ports_interval,
      [this](const std::vector<workspace::ListeningPort>&) { notify(StatusChange::listening_ports); });
  registry_.set_on_orphan_reaped([this](const ChildExit&) { schedule_status_write(); });
}

Agent::~Agent() {
  // Runs still going are killed by their own destructors; the rest are handles to close.
  startup_run_.reset();
  shutdown_run_.reset();
  if (health_) health_->stop();
  if (metadata_) metadata_->stop();
  if (ports_) ports_->stop();
}

Status Agent::start() {
  const auto& s = options_.settings;
  std::string logs = s.state_dir + "/logs";
  if (::mkdir(logs.c_str(), 0750) != 0 && errno != EEXIST)
    return make_error("cannot create " + logs + ": " + std::strerror(errno));
  startup_log_.file = std::make_unique<RotatingLog>(logs + "/startup.log", s.log_file_bytes, s.log_files);
  shutdown_log_.file = std::make_unique<RotatingLog>(logs + "/shutdown.log", s.log_file_bytes, s.log_files);
  for (auto* log : {&startup_log_, &shutdown_log_})
    if (auto r = log->file->open(); !r) return r;
  startup_.log_path = startup_log_.file->path();
  shutdown_.log_path = shutdown_log_.file->path();

  if (auto r = registry_.start(); !r) return r;

  auto on_signal = [](uv_signal_t* h, int signum) {
    auto* self = static_cast<Agent*>(h->data);
    LOG_INFO("agent", "received %s", signum == SIGINT ? "SIGINT" : "SIGTERM");
    self->shutdown(signum);
  };
  for (auto [handle, signum] : {std::pair{&sigterm_, SIGTERM}, std::pair{&sigint_, SIGINT}}) {
    int rc = handle->init([&](uv_signal_t* h) { return uv_signal_init(loop_, h); });
    if (rc == 0) {
      (*handle)->data = this;
      rc = uv_signal_start(handle->get(), on_signal, signum);
    }
    if (rc != 0) return make_error(std::string("cannot handle ") + strsignal(signum) + ": " + uv_strerror(rc));
  }

  set_state(LifecycleState::starting);
  // The startup script is what a user waits for: it is spawned before the monitors' first runs.
  run_startup_script();
  ports_->start();
  health_->start();
  metadata_->start();
  return Ok{};
}

// ---- lifecycle ----

void Agent::set_state(LifecycleState next) {
  if (lifecycle_.state == next) return;
  auto now = std::chrono::system_clock::now();
  LifecycleState before = lifecycle_.state;
  lifecycle_.state = next;
  lifecycle_.changed_at = now;
  switch (next) {
    case LifecycleState::starting: lifecycle_.starting_at = now; break;
    case LifecycleState::ready:
    case LifecycleState::start_error:
    case LifecycleState::start_timeout: lifecycle_.ready_at = now; break;
    case LifecycleState::shutting_down: lifecycle_.shutting_down_at = now; break;
    case LifecycleState::off:
    case LifecycleState::shutdown_error:
    case LifecycleState::shutdown_timeout: lifecycle_.finished_at = now; break;
    case LifecycleState::created: break;
  }
  lifecycle_.login_blocked = login_gate().wait;
  auto level = (next == LifecycleState::start_error || next == LifecycleState::start_timeout ||
                next == LifecycleState::shutdown_error || next == LifecycleState::shutdown_timeout)
                   ? log::Level::warn
                   : log::Level::info;
  AIRLOCK_LOG_AT(level, "agent", "lifecycle: %s -> %s", workspace::lifecycle_state_name(before),
                 workspace::lifecycle_state_name(next));
  notify(StatusChange::lifecycle);
  // Lifecycle changes are few and what readers wait for: no coalescing delay for them.
  write_status_now();
}

ScriptSpec Agent::script_spec(ScriptKind kind, const config::Script& script) const {
  ScriptSpec spec;
  spec.label = script_kind_name(kind);
  spec.command = script.script;
  spec.directory = script_directory_;
  spec.env = script_env_;
  spec.timeout = script.timeout;
  // Daemons started in the background keep printing into the script's log.
  spec.keep_reading = true;
  return spec;
}

void Agent::record_outcome(workspace::ScriptResult& r, const ScriptOutcome& o) {
  r.finished_at = std::chrono::system_clock::now();
  r.exit_code = o.exit_code;
  r.signal = o.signal;
  if (o.timed_out) {
    r.state = ScriptState::timed_out;
    r.error = "ran past its timeout of " + std::to_string(r.timeout.count()) + " s and was killed";
  } else if (o.exit_code && *o.exit_code == 0) {
    r.state = ScriptState::succeeded;
    r.error.clear();
  } else if (o.signal) {
    r.state = ScriptState::failed;
    r.error = std::string("killed by signal ") + std::to_string(*o.signal) + " (" + strsignal(*o.signal) + ")";
  } else {
    r.state = ScriptState::failed;
    r.error = "exited with status " + std::to_string(o.exit_code.value_or(-1));
  }
}

void Agent::run_startup_script() {
  if (!options_.manifest.startup) {
    LOG_INFO("agent", "no startup script in the manifest");
    set_state(LifecycleState::ready);
    return;
  }
  const auto& script = *options_.manifest.startup;
  startup_run_ = std::make_unique<ScriptProcess>(
      loop_, script_spec(ScriptKind::startup, script),
      [this](std::string_view bytes) { on_script_output(ScriptKind::startup, bytes); },
      [this](const ScriptOutcome& o) { startup_done(o); });
  startup_.started_at = std::chrono::system_clock::now();
  if (auto r = startup_run_->start(); !r) {
    startup_run_.reset();
    startup_.state = ScriptState::failed;
    startup_.finished_at = startup_.started_at;
    startup_.error = r.error().message;
    LOG_WARN("agent", "startup script: %s", r.error().message.c_str());
    notify(StatusChange::startup_script);
    set_state(LifecycleState::start_error);
    return;
  }
  startup_.state = ScriptState::running;
  LOG_INFO("agent", "startup script started (pid %d, in %s, timeout %s); output in %s", startup_run_->pid(),
           script_directory_.c_str(), script.timeout.count() ? (std::to_string(script.timeout.count()) + " s").c_str() : "none",
           startup_.log_path.c_str());
  notify(StatusChange::startup_script);
}

void Agent::startup_done(const ScriptOutcome& o) {
  record_outcome(startup_, o);
  if (startup_.state == ScriptState::succeeded) LOG_INFO("agent", "startup script succeeded");
  else LOG_WARN("agent", "startup script %s: %s", workspace::script_state_name(startup_.state), startup_.error.c_str());
  // The run object stays: daemons it started may still write into its pipe, and the log keeps them.
  notify(StatusChange::startup_script);
  if (lifecycle_.state != LifecycleState::starting) return;  // interrupted by a shutdown
  if (startup_.state == ScriptState::succeeded) set_state(LifecycleState::ready);
  else if (startup_.state == ScriptState::timed_out) set_state(LifecycleState::start_timeout);
  else set_state(LifecycleState::start_error);
}

void Agent::shutdown(int signal) {
  if (finished_) return;
  if (lifecycle_.state == LifecycleState::shutting_down) {
    // Asked again: pass it on to the scripts still running.
    LOG_INFO("agent", "already shutting down; forwarding signal %d to the scripts still running", signal);
    if (startup_run_ && startup_run_->running()) startup_run_->signal_group(signal);
    if (shutdown_run_ && shutdown_run_->running()) shutdown_run_->signal_group(signal);
    return;
  }
  shutdown_signal_ = signal;
  set_state(LifecycleState::shutting_down);
  // Nothing new starts: checks and metadata runs stop (runs in flight are killed).
  health_->stop();
  metadata_->stop();
  ports_->stop();
  if (startup_run_ && startup_run_->running()) {
    LOG_INFO("agent", "forwarding signal %d to the startup script (process group %d)", signal, startup_run_->pid());
    startup_run_->signal_group(signal);
  }
  run_shutdown_script();
}

void Agent::run_shutdown_script() {
  if (!options_.manifest.shutdown) {
    stop_leftovers();
    return;
  }
  const auto& script = *options_.manifest.shutdown;
  auto spec = script_spec(ScriptKind::shutdown, script);
  spec.keep_reading = false;  // nothing may outlive the shutdown
  shutdown_run_ = std::make_unique<ScriptProcess>(
      loop_, std::move(spec), [this](std::string_view bytes) { on_script_output(ScriptKind::shutdown, bytes); },
      [this](const ScriptOutcome& o) { shutdown_script_done(o); });
  shutdown_.started_at = std::chrono::system_clock::now();
  if (auto r = shutdown_run_->start(); !r) {
    shutdown_run_.reset();
    shutdown_.state = ScriptState::failed;
    shutdown_.finished_at = shutdown_.started_at;
    shutdown_.error = r.error().message;
    LOG_WARN("agent", "shutdown script: %s", r.error().message.c_str());
    notify(StatusChange::shutdown_script);
    stop_leftovers();
    return;
  }
  shutdown_.state = ScriptState::running;
  LOG_INFO("agent", "shutdown script started (pid %d)", shutdown_run_->pid());
  notify(StatusChange::shutdown_script);
}

void Agent::shutdown_script_done(const ScriptOutcome& o) {
  record_outcome(shutdown_, o);
  if (shutdown_.state == ScriptState::succeeded) LOG_INFO("agent", "shutdown script succeeded");
  else LOG_WARN("agent", "shutdown script %s: %s", workspace::script_state_name(shutdown_.state), shutdown_.error.c_str());
  notify(StatusChange::shutdown_script);
  stop_leftovers();
}

void Agent::stop_leftovers() {
  // Everything below the agent that is still alive gets the signal the agent got.
  int self = static_cast<int>(getpid());
  int signalled = 0;
  for (const auto& p : descendants_of(self)) {
    if (p.state == 'Z') continue;
    if (::kill(p.pid, shutdown_signal_) == 0) ++signalled;
  }
  if (signalled == 0) {
    finish();
    return;
  }
  LOG_INFO("agent", "sent signal %d to %d leftover process(es); SIGKILL in %lld ms if they stay", shutdown_signal_,
           signalled, static_cast<long long>(options_.settings.stop_grace.count()));
  leftovers_since_ = std::chrono::steady_clock::now();
  leftovers_timer_.init([&](uv_timer_t* h) { return uv_timer_init(loop_, h); });
  leftovers_timer_->data = this;
  uv_timer_start(
      leftovers_timer_.get(), [](uv_timer_t* h) { static_cast<Agent*>(h->data)->check_leftovers(); }, kLeftoverPollMs,
      kLeftoverPollMs);
}

void Agent::check_leftovers() {
  registry_.reap();
  std::vector<int> alive;
  for (const auto& p : descendants_of(static_cast<int>(getpid())))
    if (p.state != 'Z') alive.push_back(p.pid);
  if (alive.empty()) {
    leftovers_timer_.reset();
    finish();
    return;
  }
  auto waited = std::chrono::steady_clock::now() - leftovers_since_;
  if (!leftovers_killed_ && waited >= options_.settings.stop_grace) {
    LOG_WARN("agent", "%zu process(es) still running after the stop grace: sending SIGKILL", alive.size());
    for (int pid : alive) ::kill(pid, SIGKILL);
    leftovers_killed_ = true;
    leftovers_since_ = std::chrono::steady_clock::now();
  } else if (leftovers_killed_ && waited >= kAfterKillWait) {
    LOG_WARN("agent", "%zu process(es) survived SIGKILL (uninterruptible?); exiting anyway", alive.size());
    leftovers_timer_.reset();
    finish();
  }
}

void Agent::finish() {
  if (finished_) return;
  LifecycleState end = LifecycleState::off;
  if (shutdown_.state == ScriptState::timed_out) end = LifecycleState::shutdown_timeout;
  else if (shutdown_.state == ScriptState::failed) end = LifecycleState::shutdown_error;
  set_state(end);
  finished_ = true;
  registry_.reap();
  write_status_now();
  int code = end == LifecycleState::off ? kExitOff : kExitShutdownFailed;
  LOG_INFO("agent", "lifecycle ended: %s (exit status %d)", workspace::lifecycle_state_name(end), code);
  if (on_finished_) on_finished_(code);
}

// ---- script output ----

void Agent::on_script_output(ScriptKind kind, std::string_view bytes) {
  log_of(kind).splitter.feed(bytes, [&](std::string_view line) { on_script_line(kind, line); });
}

void Agent::on_script_line(ScriptKind kind, std::string_view line) {
  auto& log = log_of(kind);
  if (log.file) log.file->write_line(line);
  log.tail.add(line);
  for (auto it = output_subscribers_.begin(); it != output_subscribers_.end();) {
    auto next = std::next(it);
    auto cb = it->second;
    cb(kind, line);
    it = next;
  }
  schedule_status_write();
}

std::vector<std::string> Agent::script_log(ScriptKind kind, size_t max_lines) const {
  return log_of(kind).tail.last(max_lines);
}

// ---- status ----

workspace::WorkspaceStatus Agent::status() const {
  workspace::WorkspaceStatus s;
  s.agent = info_;
  s.agent.reaped_orphans = registry_.reaped_orphans();
  s.lifecycle = lifecycle_;
  s.startup = startup_;
  s.startup.log_lines = startup_log_.tail.total_lines();
  s.startup.log_tail = startup_log_.tail.last(kStatusLogTail);
  s.shutdown = shutdown_;
  s.shutdown.log_lines = shutdown_log_.tail.total_lines();
  s.shutdown.log_tail = shutdown_log_.tail.last(kStatusLogTail);
  s.apps = health_->apps();
  s.metadata = metadata_->items();
  s.listening_ports = ports_->ports();
  s.stats = stats_;
  s.updated_at = std::chrono::system_clock::now();
  return s;
}

nlohmann::ordered_json Agent::status_document() const { return workspace::to_json(status()); }

LoginGate Agent::login_gate() const {
  LoginGate g;
  g.state = lifecycle_.state;
  g.blocks_login = options_.manifest.startup && options_.manifest.startup->blocks_login;
  bool starting = lifecycle_.state == LifecycleState::created || lifecycle_.state == LifecycleState::starting;
  if (starting && options_.manifest.startup) {
    g.wait = g.blocks_login;
    g.message = g.blocks_login ? "The workspace's startup script is still running; your login waits until it finishes."
                               : "The workspace's startup script is still running; some tools may not be ready yet.";
  } else if (lifecycle_.state == LifecycleState::start_error || lifecycle_.state == LifecycleState::start_timeout) {
    g.message = "The workspace's startup script " +
                std::string(lifecycle_.state == LifecycleState::start_timeout ? "timed out" : "failed") + " (" +
                startup_.error + "); see `airlock logs` for its output.";
  } else if (lifecycle_.state == LifecycleState::shutting_down || workspace::lifecycle_final(lifecycle_.state)) {
    g.message = "The workspace is shutting down.";
  }
  return g;
}

Agent::Subscription Agent::subscribe(ChangeCallback cb) {
  uint64_t id = next_subscription_++;
  change_subscribers_.emplace_back(id, std::move(cb));
  return Subscription([this, id] { change_subscribers_.remove_if([id](const auto& p) { return p.first == id; }); });
}

Agent::Subscription Agent::subscribe_output(OutputCallback cb) {
  uint64_t id = next_subscription_++;
  output_subscribers_.emplace_back(id, std::move(cb));
  return Subscription([this, id] { output_subscribers_.remove_if([id](const auto& p) { return p.first == id; }); });
}

void Agent::notify(StatusChange change) {
  // A subscriber may unsubscribe (itself or another) from its callback: walk a snapshot of ids.
  std::vector<uint64_t> ids;
  for (const auto& [id, _] : change_subscribers_) ids.push_back(id);
  for (uint64_t id : ids) {
    auto it = std::find_if(change_subscribers_.begin(), change_subscribers_.end(),
                           [id](const auto& p) { return p.first == id; });
    if (it == change_subscribers_.end()) continue;
    auto cb = it->second;
    cb(change);
  }
  schedule_status_write();
}

void Agent::schedule_status_write() {
  if (finished_) return;
  if (!status_write_timer_) {
    status_write_timer_.init([&](uv_timer_t* h) { return uv_timer_init(loop_, h); });
    status_write_timer_->data = this;
  }
  if (uv_is_active(status_write_timer_.handle())) return;
  uv_timer_start(
      status_write_timer_.get(), [](uv_timer_t* h) { static_cast<Agent*>(h->data)->write_status_now(); },
      kStatusWriteDelayMs, 0);
}

void Agent::write_status_now() {
  if (status_write_timer_) uv_timer_stop(status_write_timer_.get());
  const auto& path = options_.settings.status_file;
  if (path.empty()) return;
  if (auto r = write_file_atomically(path, status_document().dump(2) + "\n"); !r)
    LOG_WARN("agent", "status file: %s", r.error().message.c_str());
}

// ---- stats ----

void Agent::mark_stats_changed() {
  if (!stats_timer_) {
    stats_timer_.init([&](uv_timer_t* h) { return uv_timer_init(loop_, h); });
    stats_timer_->data = this;
  }
  if (uv_is_active(stats_timer_.handle())) return;
  uv_timer_start(
      stats_timer_.get(), [](uv_timer_t* h) { static_cast<Agent*>(h->data)->notify(StatusChange::stats); },
      kStatsPushMs, 0);
}

void Agent::add_bytes_in(uint64_t n) {
  stats_.bytes_in += n;
  mark_stats_changed();
}

void Agent::add_bytes_out(uint64_t n) {
  stats_.bytes_out += n;
  mark_stats_changed();
}

void Agent::session_opened(std::string_view type) {
  std::string t(type);
  ++stats_.sessions_open[t];
  ++stats_.sessions_total[t];
  mark_stats_changed();
}

void Agent::session_closed(std::string_view type) {
  auto it = stats_.sessions_open.find(std::string(type));
  if (it != stats_.sessions_open.end() && it->second > 0) --it->second;
  mark_stats_changed();
}

void Agent::set_peer_latency(std::string_view peer_key, std::chrono::microseconds latency) {
  auto it = std::find_if(stats_.peers.begin(), stats_.peers.end(), [&](const auto& p) { return p.peer == peer_key; });
  if (it == stats_.peers.end()) it = stats_.peers.insert(stats_.peers.end(), workspace::PeerLatency{std::string(peer_key), 0, {}});
  it->latency_ms = static_cast<double>(latency.count()) / 1000.0;
  it->measured_at = std::chrono::system_clock::now();
  mark_stats_changed();
}

void Agent::forget_peer(std::string_view peer_key) {
  std::erase_if(stats_.peers, [&](const auto& p) { return p.peer == peer_key; });
  mark_stats_changed();
}

void Agent::set_connected(bool connected) {
  if (info_.connected == connected) return;
  info_.connected = connected;
  LOG_INFO("agent", "relay %s", connected ? "connected" : "disconnected");
  notify(StatusChange::connection);
}

}  // namespace airlock::agent
