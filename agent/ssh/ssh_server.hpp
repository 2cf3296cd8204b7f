// The agent's `ssh` service: a libssh server speaking SSH over a stream the agent hands it (one
// end of a socketpair bridged to a tunnel stream), driven non-blocking from the agent's libuv
// loop. Stock OpenSSH reaches it through `ProxyCommand`; see docs/SSH.md for how SSH features
// map onto the workspace.
//
//   auto server = SshServer::create(loop, config);   // loads or creates the Ed25519 host key
//   server->serve(fd, identity);                      // one call per accepted stream
//
// Everything runs on the loop's thread: create, serve and destruction included.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <uv.h>

#include "agent/service.hpp"
#include "common/config/manifest.hpp"
#include "common/util/result.hpp"

namespace airlock::agent::ssh {

struct SshConfig {
  // The Ed25519 host key (OpenSSH private key format): created with mode 0600 on the first start
  // and reused afterwards, so clients' known_hosts entries stay valid across agent restarts.
  std::string host_key_path;
  std::map<std::string, std::string> env;  // the manifest's env, added to every session
  std::string directory;                   // the manifest's working directory (empty: $HOME)
  config::Policy policy;
  AuditCallback audit;
  // The sftp subsystem's server; empty: the first of Debian's, Fedora's and Alpine's paths.
  std::string sftp_server_path;
  // How often the server sends keepalive@openssh.com to each client (0: never).
  std::chrono::seconds keepalive_interval{30};
  // Called on the loop right after a pty child is forked, before control returns to the loop,
  // so that the agent's reaper keeps its hands off it (ChildRegistry::claim); the returned token
  // is dropped once the service has collected the child's exit status with waitpid(pid).
  // Children started with uv_spawn (exec without a pty, sftp) need nothing: they are libuv's.
  std::function<std::shared_ptr<void>(int pid)> claim_child;
};

class SshServer {
 public:
  static Result<std::unique_ptr<SshServer>> create(uv_loop_t* loop, SshConfig config);
  ~SshServer();
  SshServer(const SshServer&) = delete;
  SshServer& operator=(const SshServer&) = delete;

  // Speaks SSH on `fd`, a connected stream socket that the server now owns (it is made
  // non-blocking and close-on-exec). Returns an error, and closes fd, when the session cannot
  // even start; later failures close that one session with a logged reason.
  Status serve(int fd, Identity identity);

  // SSH connections currently open (handshake, authenticated or closing).
  size_t active_sessions() const;

  // "SHA256:..." as OpenSSH prints it, for logs and for users checking known_hosts.
  const std::string& host_key_fingerprint() const;

  class Impl;

 private:
  explicit SshServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace airlock::agent::ssh
