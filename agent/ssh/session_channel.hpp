// "session" channels: pty-req, env, window-change, shell, exec, the sftp subsystem, signals, and
// exit-status / exit-signal when the process ends. The workspace's block_file_transfer policy
// is applied here (see common/ssh/command_policy.hpp).
#pragma once

#include <memory>

#include "agent/ssh/connection.hpp"

namespace airlock::agent::ssh {

// The text a refused file transfer shows on the client's stderr (exit status 1).
constexpr const char* kFileTransferBlockedMessage = "airlock: file transfer is disabled in this workspace by policy\n";

// A new session channel with its callbacks set; *channel receives the libssh channel, which
// libssh then confirms to the client.
std::unique_ptr<Channel> make_session_channel(Connection& connection, ssh_channel* channel);

}  // namespace airlock::agent::ssh
