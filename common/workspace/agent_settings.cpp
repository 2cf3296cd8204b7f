#include "common/workspace/agent_settings.hpp"

#include <cctype>
#include <optional>

#include "common/crypto/crypto.hpp"
#include "common/util/duration.hpp"

namespace airlock::workspace {

const std::vector<SettingSpec>& agent_setting_specs() {
  static const std::vector<SettingSpec> specs = {
      {"relay-url", "AIRLOCK_RELAY_URL", "Relay to dial out to: wss://host[:port] (ws:// only to a loopback relay)"},
      {"token", "AIRLOCK_AGENT_TOKEN", "The agent's control-plane token (prefer the variable: flags show in ps)"},
      {"issuer-public-key", "AIRLOCK_ISSUER_PUBLIC_KEY",
       "The control plane's token issuer public key (base64): the agent checks every user's token with it"},
      {"manifest", "AIRLOCK_AGENT_MANIFEST", "Workspace manifest (JSON): scripts, apps, metadata, policy"},
      {"state-dir", "AIRLOCK_AGENT_STATE_DIR",
       "Directory for logs and state (default /var/lib/airlock-agent as root, else ~/.local/state/airlock-agent)"},
      {"ca", "AIRLOCK_CA", "PEM file of CA certificates to trust for the relay (default: the system's)"},
      {"log-level", "AIRLOCK_LOG_LEVEL", "debug, info, warn or error (default info)"},
      {"status-file", "AIRLOCK_AGENT_STATUS_FILE",
       "Where the status document (JSON) is rewritten atomically on every change (default STATE_DIR/status.json)"},
      {"stop-grace", "AIRLOCK_AGENT_STOP_GRACE",
       "At shutdown, how long leftover processes get after SIGTERM before SIGKILL (default 5s)"},
      {"ports-interval", "AIRLOCK_AGENT_PORTS_INTERVAL", "How often listening TCP ports are scanned (default 5s)"},
  };
  return specs;
}

namespace {

// A setting's value and the name it came from, so errors name what the person actually typed.
struct Source {
  std::string value;
  std::string origin;  // "--relay-url" or "AIRLOCK_RELAY_URL"
  bool set = false;
};

Source lookup(const SettingsInput& in, const char* key) {
  for (const auto& spec : agent_setting_specs()) {
    if (std::string(spec.key) != key) continue;
    if (auto f = in.flags.find(key); f != in.flags.end()) return {f->second, std::string("--") + key, true};
    if (auto e = in.env.find(spec.env); e != in.env.end()) return {e->second, spec.env, true};
    return {"", std::string(spec.env) + " (or --" + key + ")", false};
  }
  return {"", key, false};
}

Error bad(const Source& s, const std::string& what) { return make_error("configuration: " + s.origin + ": " + what); }

bool loopback_host(const std::string& authority) {
  std::string host = authority;
  if (auto at = host.rfind('@'); at != std::string::npos) host = host.substr(at + 1);
  if (!host.empty() && host[0] == '[') host = host.substr(1, host.find(']') - 1);
  else if (auto colon = host.find(':'); colon != std::string::npos) host = host.substr(0, colon);
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

bool base64url_part(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  return true;
}

}  // namespace

Result<AgentSettings> resolve_agent_settings(const SettingsInput& in) {
  AgentSettings out;

  Source url = lookup(in, "relay-url");
  Source token = lookup(in, "token");
  if (url.set && !url.value.empty()) {
    const std::string& u = url.value;
    std::string rest;
    if (u.rfind("wss://", 0) == 0) rest = u.substr(6);
    else if (u.rfind("ws://", 0) == 0) rest = u.substr(5);
    else return bad(url, "\"" + u + "\" must be a wss:// URL, like wss://relay.example.com");
    std::string authority = rest.substr(0, rest.find('/'));
    if (authority.empty()) return bad(url, "\"" + u + "\" has no host");
    if (u.rfind("ws://", 0) == 0 && !loopback_host(authority))
      return bad(url, "\"" + u + "\" is plain ws:// to a host that is not loopback: use wss:// so the link is encrypted");
    out.relay_url = u;
    if (!token.set || token.value.empty())
      return bad(token, "is required when " + url.origin + " is set (the agent's token from the control plane)");
  }
  if (token.set && !token.value.empty()) {
    if (out.relay_url.empty())
      return bad(url, "is required when " + token.origin + " is set (the relay the token is for)");
    auto dot = token.value.find('.');
    if (dot == std::string::npos || !base64url_part(token.value.substr(0, dot)) ||
        !base64url_part(token.value.substr(dot + 1)))
      return bad(token, "is not a token (expected two base64url parts joined by \".\", as `airlock token mint` prints)");
    out.token = token.value;
  }

  Source issuer = lookup(in, "issuer-public-key");
  if (issuer.set && !issuer.value.empty()) {
    auto key = crypto::key_from_base64(issuer.value);
    if (!key)
      return bad(issuer, "is not a public key (" + key.error().message +
                             "): give the 44-character base64 key that `airlock token keygen` printed");
    out.issuer_public_key = issuer.value;
  } else if (!out.relay_url.empty()) {
    return bad(issuer, "is required when " + url.origin +
                           " is set: the agent verifies users' tokens itself rather than trusting the relay");
  }

  Source manifest = lookup(in, "manifest");
  if (manifest.set) {
    if (manifest.value.empty()) return bad(manifest, "is empty: give the manifest's path, or unset it to run without one");
    out.manifest_path = manifest.value;
  }

  Source state = lookup(in, "state-dir");
  if (state.set && !state.value.empty()) {
    if (state.value[0] != '/') return bad(state, "\"" + state.value + "\" must be an absolute path");
    out.state_dir = state.value;
  } else if (in.running_as_root) {
    out.state_dir = "/var/lib/airlock-agent";
  } else {
    if (in.home.empty() || in.home[0] != '/')
      return bad(state, "is not set and $HOME is not an absolute path: set it to a writable directory");
    out.state_dir = in.home + "/.local/state/airlock-agent";
  }
  while (out.state_dir.size() > 1 && out.state_dir.back() == '/') out.state_dir.pop_back();

  Source ca = lookup(in, "ca");
  if (ca.set && !ca.value.empty()) {
    if (ca.value[0] != '/') return bad(ca, "\"" + ca.value + "\" must be an absolute path to a PEM file");
    out.ca_file = ca.value;
  }

  Source level = lookup(in, "log-level");
  if (level.set && !level.value.empty()) {
    if (level.value != "debug" && level.value != "info" && level.value != "warn" && level.value != "error")
      return bad(level, "\"" + level.value + "\" is not a level: use debug, info, warn or error");
    out.log_level = level.value;
  }

  Source status = lookup(in, "status-file");
  if (status.set && !status.value.empty()) {
    if (status.value[0] != '/') return bad(status, "\"" + status.value + "\" must be an absolute path");
    out.status_file = status.value;
  } else {
    out.status_file = out.state_dir + "/status.json";
  }

  auto read_duration = [&](const char* key, std::chrono::milliseconds min, std::chrono::milliseconds& into)
      -> std::optional<Error> {
    Source s = lookup(in, key);
    if (!s.set || s.value.empty()) return std::nullopt;
    auto d = parse_duration(s.value);
    if (!d) return bad(s, d.error().message);
    if (*d < min) return bad(s, "\"" + s.value + "\" is too short (at least " + format_duration(min) + ")");
    into = *d;
    return std::nullopt;
  };
  if (auto e = read_duration("stop-grace", std::chrono::milliseconds(0), out.stop_grace)) return *e;
  if (auto e = read_duration("ports-interval", std::chrono::milliseconds(100), out.ports_interval)) return *e;
  return out;
}

}  // namespace airlock::workspace
