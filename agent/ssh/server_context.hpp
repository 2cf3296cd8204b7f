// What every connection shares with the server that accepted it.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <uv.h>

#include "agent/ssh/handles.hpp"
#include "agent/ssh/ssh_server.hpp"

namespace airlock::agent::ssh {

class ChildProcess;

// The OS account sessions run as: the agent's own (the workspace user), from its passwd entry.
struct LoginUser {
  std::string name;
  std::string home;
  std::string shell;  // absolute path of the login shell
};

class ServerContext {
 public:
  virtual ~ServerContext() = default;
  virtual uv_loop_t* loop() const = 0;
  virtual const SshConfig& config() const = 0;
  virtual const LoginUser& login_user() const = 0;
  virtual const std::string& sftp_server() const = 0;  // empty: none found
  virtual ssh_bind bind() const = 0;
  // A child whose session went away: kept until it exits so that its status is collected.
  virtual void adopt(std::unique_ptr<ChildProcess> child) = 0;
  // A connection finished: destroy it once the current loop callback has returned.
  virtual void schedule_sweep() = 0;
};

}  // namespace airlock::agent::ssh
