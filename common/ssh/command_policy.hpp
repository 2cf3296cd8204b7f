// Vetting what an SSH client asks the agent to run: which exec commands are file transfers (for
// the workspace's block_file_transfer policy), which environment names a client may set, and the
// signal names of RFC 4254 section 6.9/6.10. Pure functions over untrusted strings; fuzzed.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace airlock::ssh {

enum class TransferTool { none, scp, rsync, sftp };

// What the server side of a file-transfer tool looks like in an exec request:
//   scp -t / scp -f ...        legacy scp (OpenSSH `scp -O`, old clients)
//   rsync --server ...         rsync over ssh (`rsync -e ssh`)
//   .../sftp-server, internal-sftp   an sftp server started through exec instead of the subsystem
// Each shell-separated segment (; && || | newline) is checked, after leading VAR=value
// assignments and the `exec`, `command`, `env`, `nice`, `nohup`, `sudo` prefixes, so
// `cd /tmp && scp -t .` is caught too. This is a policy against the standard tools, not a
// sandbox: a user with a shell can always `cat` a file.
TransferTool classify_command(std::string_view command);
const char* transfer_tool_name(TransferTool tool);

// POSIX-ish environment names: [A-Za-z_][A-Za-z0-9_]*, at most kMaxEnvNameLength.
constexpr size_t kMaxEnvNameLength = 256;
constexpr size_t kMaxEnvValueLength = 32 * 1024;
bool is_valid_env_name(std::string_view name);

// "INT" -> SIGINT (the SSH wire form has no SIG prefix); nullopt for names SSH does not define.
std::optional<int> signal_from_name(std::string_view name);
// SIGTERM -> "TERM"; signals SSH has no name for map to "USR2"-style names where POSIX has them,
// and to nullopt otherwise.
std::optional<std::string> signal_name(int signal);

}  // namespace airlock::ssh
