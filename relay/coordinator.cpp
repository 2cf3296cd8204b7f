// The coordinator: which workspaces are connected (from agent tokens), who may reach them (the
// role rules in common/relay/access.hpp), and the dial grants that let a pair of keys exchange
// packets. Control messages (JSON objects in control frames):
//
//   peer -> relay  {"type":"dial","id":N,"workspace":"<name, owner/name or id>"}
//   relay -> peer  {"type":"dial_ok","id":N,"agent_key":"<b64>","workspace":{"id","name","owner"}}
//                  {"type":"dial_error","id":N,"reason":"..."}
//   relay -> agent {"type":"peer_incoming","peer_key":"<b64>","user":{"sub","email","role"},"source":"ip:port"}
//   relay -> peer  {"type":"error","id":N,"reason":"..."}   (an unknown or malformed message)
//   agent -> relay {"type":"status","status":{...}}  the workspace's status document, on every
//                  change; served by GET /api/v2/workspaces/{name}
//
// A grant outlives a disconnect of either side for --pair-linger: when that key comes back (with a
// token that still passes the rules) the other side gets peer_present and packets flow again.
#include "common/util/log.hpp"
#include "relay/relay.hpp"

namespace airlock::relayd {

using nlohmann::json;

void Relay::send_control(Peer& p, const json& msg) {
  std::string text = msg.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > relay::kMaxControlSize) {
    LOG_WARN("relay", "control message for %s too large (%zu bytes); not sent", p.name().c_str(), text.size());
    return;
  }
  queue_frame(p, relay::Control{text});
}

void Relay::on_control(Peer& p, std::string_view text) {
  json msg = json::parse(text, nullptr, false);
  json id = msg.is_object() && msg.contains("id") ? msg["id"] : json(nullptr);
  if (!msg.is_object() || !msg.contains("type") || !msg["type"].is_string()) {
    send_control(p, {{"type", "error"}, {"id", id}, {"reason", "control message needs a string \"type\""}});
    return;
  }
  const std::string type = msg["type"].get<std::string>();
  if (type == "dial") {
    on_dial(p, msg);
    return;
  }
  if (type == "status") {
    on_status(p, msg);
    return;
  }
  send_control(p, {{"type", "error"}, {"id", id}, {"reason", "unknown control message type \"" + type + "\""}});
}

Workspace* Relay::find_workspace(const std::string& wanted, const token::Claims& who, std::string& error) {
  if (auto it = workspaces_.find(wanted); it != workspaces_.end()) return &it->second;
  std::vector<Workspace*> named;
  for (auto& [id, ws] : workspaces_) {
    if (ws.ref.name == wanted || ws.ref.owner + "/" + ws.ref.name == wanted) named.push_back(&ws);
  }
  if (named.size() == 1) return named.front();
  if (named.empty()) {
    error = "workspace " + wanted + " is not connected";
    return nullptr;
  }
  // The same name under several owners: the dialer's own one, if any, else ask for owner/name.
  for (Workspace* ws : named) {
    if (ws->ref.owner == who.sub) return ws;
  }
  error = "workspace name " + wanted + " is ambiguous: dial owner/name or the workspace id";
  return nullptr;
}

void Relay::on_dial(Peer& p, const json& msg) {
  json id = msg.contains("id") ? msg["id"] : json(nullptr);
  auto refuse = [&](const std::string& reason) {
    metrics_.dials_refused.inc();
    LOG_INFO("relay", "dial from %s refused: %s", p.name().c_str(), reason.c_str());
    send_control(p, {{"type", "dial_error"}, {"id", id}, {"reason", reason}});
  };
  if (!msg.contains("workspace") || !msg["workspace"].is_string() || msg["workspace"].get<std::string>().empty()) {
    refuse("dial needs a \"workspace\": its name, owner/name or id");
    return;
  }
  const std::string wanted = msg["workspace"].get<std::string>();
  // Roles that reach no workspace are told so before anything about the workspace is revealed.
  if (p.claims.role != token::Role::owner && p.claims.role != token::Role::member) {
    refuse(relay::may_reach(p.claims, {}).error().message);
    return;
  }
  std::string error;
  Workspace* ws = find_workspace(wanted, p.claims, error);
  if (!ws) {
    refuse(error);
    return;
  }
  if (auto allowed = relay::may_reach(p.claims, ws->ref); !allowed) {
    refuse(allowed.error().message);
    return;
  }
  Peer* agent = ws->agents.empty() ? nullptr : find(ws->agents.back());
  if (!agent || agent->closing) {
    refuse("workspace " + wanted + " is not connected");
    return;
  }
  Pair& pair = pairs_[{p.key, agent->key}];
  pair.dialer = p.key;
  pair.agent = agent->key;
  pair.workspace_id = ws->ref.id;
  pair.gone_since.reset();
  metrics_.dials_ok.inc();
  LOG_INFO("relay", "dial: %s reaches workspace %s (agent %s)", p.name().c_str(), ws->ref.name.c_str(),
           log::short_key(agent->key_b64).c_str());
  send_control(p, {{"type", "dial_ok"},
                   {"id", id},
                   {"agent_key", agent->key_b64},
                   {"workspace", {{"id", ws->ref.id}, {"name", ws->ref.name}, {"owner", ws->ref.owner}}}});
  send_control(*agent, peer_incoming(p));
}

json Relay::peer_incoming(const Peer& dialer) const {
  return {{"type", "peer_incoming"},
          {"peer_key", dialer.key_b64},
          {"user", {{"sub", dialer.claims.sub}, {"email", dialer.claims.email}, {"role", token::role_name(dialer.claims.role)}}},
          {"source", dialer.source}};
}

void Relay::register_agent(Peer& p) {
  Workspace& ws = workspaces_[p.claims.workspace_id];
  if (ws.agents.empty()) {
    ws.ref = {p.claims.workspace_id, p.claims.workspace_name, p.claims.owner};
  } else if (ws.ref.name != p.claims.workspace_name || ws.ref.owner != p.claims.owner) {
    LOG_WARN("relay", "agent %s describes workspace %s as %s (owner %s); keeping the newest description",
             p.name().c_str(), ws.ref.id.c_str(), p.claims.workspace_name.c_str(), p.claims.owner.c_str());
    ws.ref = {p.claims.workspace_id, p.claims.workspace_name, p.claims.owner};
  }
  std::erase(ws.agents, p.key);
  ws.agents.push_back(p.key);
  metrics_.workspaces.set(static_cast<double>(workspaces_.size()));
}

void Relay::on_status(Peer& p, json& msg) {
  if (p.claims.role != token::Role::agent) {
    send_control(p, {{"type", "error"}, {"reason", "only a workspace agent sends status"}});
    return;
  }
  auto it = workspaces_.find(p.claims.workspace_id);
  if (it == workspaces_.end() || it->second.agents.empty() || it->second.agents.back() != p.key) return;  // not the newest agent
  if (!msg.contains("status") || !msg["status"].is_object()) {
    send_control(p, {{"type", "error"}, {"reason", "status message needs a \"status\" object"}});
    return;
  }
  it->second.status = std::move(msg["status"]);
  it->second.status_at = std::chrono::system_clock::now();
}

void Relay::unregister_agent(Peer& p) {
  auto it = workspaces_.find(p.claims.workspace_id);
  if (it == workspaces_.end()) return;
  std::erase(it->second.agents, p.key);
  if (it->second.agents.empty()) workspaces_.erase(it);
  metrics_.workspaces.set(static_cast<double>(workspaces_.size()));
}

bool Relay::paired(const relay::PeerKey& a, const relay::PeerKey& b) const {
  auto it = pairs_.find({a, b});
  if (it == pairs_.end()) it = pairs_.find({b, a});
  return it != pairs_.end() && !it->second.gone_since;
}

Status Relay::check_pair(const Pair& pair) const {
  Peer* dialer = find(pair.dialer);
  Peer* agent = find(pair.agent);
  if (!dialer || !agent) return make_error("not connected");
  if (!agent->is_agent() || agent->claims.workspace_id != pair.workspace_id)
    return make_error("that key no longer serves workspace " + pair.workspace_id);
  relay::WorkspaceRef ref{agent->claims.workspace_id, agent->claims.workspace_name, agent->claims.owner};
  return relay::may_reach(dialer->claims, ref);
}

void Relay::pairs_on_arrival(Peer& p) {
  for (auto it = pairs_.begin(); it != pairs_.end();) {
    Pair& pair = it->second;
    const bool is_dialer = pair.dialer == p.key;
    if (!is_dialer && pair.agent != p.key) {
      ++it;
      continue;
    }
    Peer* other = find(is_dialer ? pair.agent : pair.dialer);
    if (!other || other->closing) {  // still waiting for the other side; its arrival decides
      ++it;
      continue;
    }
    if (auto ok = check_pair(pair); !ok) {
      LOG_INFO("relay", "dial grant %s <-> %s dropped: %s", log::short_key(key_b64(pair.dialer)).c_str(),
               log::short_key(key_b64(pair.agent)).c_str(), ok.error().message.c_str());
      it = pairs_.erase(it);
      continue;
    }
    pair.gone_since.reset();
    queue_frame(*other, relay::PeerPresent{p.key});
    if (is_dialer) {
      queue_frame(p, relay::PeerPresent{other->key});
      send_control(*other, peer_incoming(p));
    } else {
      send_control(p, peer_incoming(*other));
    }
    ++it;
  }
}

void Relay::pairs_on_departure(Peer& p) {
  auto now = Clock::now();
  for (auto& [keys, pair] : pairs_) {
    if (pair.dialer != p.key && pair.agent != p.key) continue;
    if (!pair.gone_since) pair.gone_since = now;
    Peer* other = find(pair.dialer == p.key ? pair.agent : pair.dialer);
    if (other && !other->closing)
      send_peer_gone(*other, p.key, relay::PeerGoneReason::disconnected, "peer disconnected");
  }
}

void Relay::expire_pairs(Clock::time_point now) {
  std::erase_if(pairs_, [&](const auto& entry) {
    const Pair& pair = entry.second;
    if (!pair.gone_since || now - *pair.gone_since < config_.pair_linger) return false;
    // Expire only if a side is still away (both may have come back without re-pairing yet).
    return !find(pair.dialer) || !find(pair.agent);
  });
}

}  // namespace airlock::relayd
