// airlock-agent: the ENTRYPOINT of every workspace image.
//
// Order matters: every flag, variable and the manifest are checked before anything starts, so a
// bad configuration exits with status 2 and a message naming the field, having run nothing.
// Then the agent becomes the workspace's reaper (PID 1, or a child subreaper under a process
// manager), starts its lifecycle and runs the loop until the lifecycle ends.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "agent/agent.hpp"
#include "agent/tunnel_server.hpp"
#include "common/crypto/crypto.hpp"
#include "common/config/manifest.hpp"
#include "common/util/log.hpp"
#include "common/workspace/agent_settings.hpp"

#ifndef AIRLOCK_VERSION
#define AIRLOCK_VERSION "dev"
#endif

namespace {

using namespace airlock;

int refuse(const std::string& message) {
  std::fprintf(stderr, "airlock-agent: %s\n", message.c_str());
  return agent::kExitConfiguration;
}

// mkdir -p with a mode for what it creates.
bool make_directories(const std::string& path, mode_t mode, std::string& error) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    if (::mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
      error = "cannot create " + prefix + ": " + std::strerror(errno);
      return false;
    }
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    error = path + " is not a directory";
    return false;
  }
  if (::access(path.c_str(), W_OK | X_OK) != 0) {
    error = "cannot write to " + path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

std::string parent_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

int main(int argc, char** argv) {
  // A relay or probe socket closed under a write must be an error value, not a dead agent.
  ::signal(SIGPIPE, SIG_IGN);

  // ---- flags and environment ----
  CLI::App app{"airlock-agent: the workspace's entrypoint. Runs the startup script, watches apps, metadata and\n"
               "listening ports, reaps orphans, and on SIGTERM runs the shutdown script and stops what is left.\n"
               "Every flag has an environment variable (shown in brackets); a flag wins over its variable.\n"
               "Exit status: 0 shut down cleanly, 1 shutdown script failed or timed out, 2 bad configuration\n"
               "(nothing started), 70 the agent could not set itself up.",
               "airlock-agent"};
  app.set_version_flag("--version", AIRLOCK_VERSION);
  std::map<std::string, std::string> values;
  std::map<std::string, CLI::Option*> options;
  for (const auto& spec : workspace::agent_setting_specs()) {
    std::string help = std::string(spec.help) + " [" + spec.env + "]";
    options[spec.key] = app.add_option(std::string("--") + spec.key, values[spec.key], help);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    return refuse(std::string(e.what()) + " (run airlock-agent --help for the flags)");
  }

  workspace::SettingsInput input;
  for (const auto& spec : workspace::agent_setting_specs()) {
    if (options[spec.key]->count() > 0) input.flags[spec.key] = values[spec.key];
    if (const char* v = std::getenv(spec.env)) input.env[spec.env] = v;
  }
  input.running_as_root = ::geteuid() == 0;
  if (const char* home = std::getenv("HOME")) input.home = home;
  auto settings = workspace::resolve_agent_settings(input);
  if (!settings) return refuse(settings.error().message);
  log::set_level(settings->log_level);

  // ---- files: manifest, CA, state directory ----
  config::Manifest manifest;
  if (settings->manifest_path.empty()) {
    LOG_INFO("agent", "no manifest (AIRLOCK_AGENT_MANIFEST is unset): no scripts, apps or metadata");
  } else {
    auto loaded = config::load_manifest(settings->manifest_path);
    if (!loaded) return refuse(loaded.error().message);
    manifest = std::move(*loaded);
  }
  if (!settings->ca_file.empty() && ::access(settings->ca_file.c_str(), R_OK) != 0)
    return refuse("configuration: AIRLOCK_CA (or --ca): cannot read " + settings->ca_file + ": " +
                  std::strerror(errno) + "; give a readable PEM file or unset it to use the system's CAs");
  std::string error;
  if (!make_directories(settings->state_dir, 0750, error))
    return refuse("configuration: AIRLOCK_AGENT_STATE_DIR (or --state-dir): " + error +
                  "; set it to a directory the agent can write");
  if (!make_directories(parent_of(settings->status_file), 0755, error))
    return refuse("configuration: AIRLOCK_AGENT_STATUS_FILE (or --status-file): " + error);

  // ---- reaper role ----
  agent::Agent::Options opts;
  opts.pid1 = ::getpid() == 1;
  if (!opts.pid1) {
    // Under a process manager the agent is not init, but orphans of its scripts (a daemon that
    // double-forked) must still come back to it to be reaped.
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0) opts.subreaper = true;
    else LOG_WARN("agent", "cannot become a child subreaper (%s): orphans of scripts go to init", std::strerror(errno));
  }
  opts.settings = *settings;
  opts.manifest = std::move(manifest);
  opts.version = AIRLOCK_VERSION;

  // ---- run ----
  uv_loop_t loop;
  if (int rc = uv_loop_init(&loop); rc != 0) {
    LOG_ERROR("agent", "cannot create the event loop: %s", uv_strerror(rc));
    return agent::kExitInternal;
  }
  int exit_code = agent::kExitInternal;
  {
    agent::Agent agent(&loop, std::move(opts));
    agent.set_on_finished([&](int code) {
      exit_code = code;
      uv_stop(&loop);
    });
    LOG_INFO("agent", "airlock-agent %s starting as %s (pid %d); state in %s; status in %s", AIRLOCK_VERSION,
             ::getpid() == 1 ? "PID 1" : "a child subreaper", static_cast<int>(::getpid()),
             settings->state_dir.c_str(), settings->status_file.c_str());
    if (auto started = agent.start(); !started) {
      LOG_ERROR("agent", "cannot start: %s", started.error().message.c_str());
      return agent::kExitInternal;
    }

    // The relay link and the tunnel: users reach the workspace's services through them.
    std::unique_ptr<agent::TunnelServer> tunnel;
    if (settings->relay_url.empty()) {
      LOG_INFO("agent", "no relay configured (AIRLOCK_RELAY_URL is unset): not connected; the workspace "
                        "lifecycle runs on its own");
    } else {
      tunnel = std::make_unique<agent::TunnelServer>(&loop, agent);
      if (auto s = tunnel->start(); !s) {
        LOG_ERROR("agent", "cannot start the relay connection: %s", s.error().message.c_str());
        std::fprintf(stderr, "airlock-agent: %s\n", s.error().message.c_str());
        return agent::kExitConfiguration;
      }
      LOG_INFO("agent", "tunnel key %s; dialing %s", crypto::key_to_base64(tunnel->public_key()).c_str(),
               settings->relay_url.c_str());
    }

    uv_run(&loop, UV_RUN_DEFAULT);
  }
  // The agent's destructor closed its handles; let their close callbacks (and cancelled
  // requests) run. Bounded: an exiting PID 1 must never hang on a forgotten handle.
  for (int i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT) != 0; ++i) {
  }
  uv_loop_close(&loop);
  return exit_code;
}
