// TCP forwarding:
//  - direct-tcpip channels (`ssh -L`, `ssh -W`, VS Code Remote-SSH reaching its server): the
//    agent connects to host:port inside the workspace, under the workspace's port policy;
//  - tcpip-forward global requests (`ssh -R`): the agent listens inside the workspace (loopback
//    unless a numeric address is asked for, like sshd's GatewayPorts=no) and opens a
//    forwarded-tcpip channel back to the client for every connection it accepts.
#pragma once

#include <string>

#include <libssh/libssh.h>

#include "agent/ssh/connection.hpp"
#include "common/net/uv_handle.hpp"
#include "common/util/unique_fd.hpp"

namespace airlock::agent::ssh {

// ssh_message handlers; return 0 when they replied, 1 to let libssh send its default refusal.
int open_direct_tcpip(Connection& connection, ssh_message message);
int handle_global_request(Connection& connection, ssh_message message);

// One `ssh -R` listener.
class RemoteForward {
 public:
  RemoteForward(Connection& connection, std::string address, int port);
  ~RemoteForward();
  RemoteForward(const RemoteForward&) = delete;
  RemoteForward& operator=(const RemoteForward&) = delete;

  Status listen();  // binds and starts accepting; port() is then the bound port
  void update() {}
  const std::string& address() const { return address_; }
  int port() const { return port_; }

 private:
  void accept_one();

  Connection& connection_;
  std::string address_;  // as the client asked (echoed back in forwarded-tcpip opens)
  int port_;
  UniqueFd fd_;
  net::UvHandle<uv_poll_t> poll_;
};

}  // namespace airlock::agent::ssh
