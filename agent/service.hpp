// What every agent service (pty, ssh, tcp, ...) is given when a tunnel stream opens for it.
//
// The agent bridges each accepted stream to a connected socket (one end of a socketpair) with
// flow control in both directions, so a service is written against an ordinary non-blocking fd
// on the agent's libuv loop and never sees tunnel or stream frames.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

namespace airlock::agent {

// Who is on the other end, as proven by the tunnel's `hello` (token verified by the agent).
struct Identity {
  std::string user_id;     // token `sub`
  std::string user_email;  // token `email`
  std::string role;        // token `role`
  std::string source_ip;   // the client's address as the relay saw it
  std::string peer_key;    // the client's tunnel public key (base64)
};

// A session-level happening that the audit trail records (start, end, command, refusal, ...).
// Services report them through this callback; the audit layer fills in ids and time.
struct AuditNote {
  std::string event_type;   // "session_start", "session_end", "exec", "file_transfer_blocked", ...
  std::string session_id;   // the service's own session id
  nlohmann::json details;   // service-specific: {"service":"ssh","command":"scp -t /tmp"} ...
};
using AuditCallback = std::function<void(const Identity&, AuditNote)>;

}  // namespace airlock::agent
