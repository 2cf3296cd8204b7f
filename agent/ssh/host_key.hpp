// The server's Ed25519 host key, kept in the agent's state directory so that clients'
// known_hosts entries survive agent restarts.
#pragma once

#include <string>

#include "agent/ssh/handles.hpp"
#include "common/util/result.hpp"

namespace airlock::agent::ssh {

// Loads the key at `path`, or generates one and writes it there (mode 0600, written to a
// temporary file and renamed so a crash never leaves half a key). A key file readable by others
// is tightened to 0600.
Result<UniqueKey> load_or_create_host_key(const std::string& path);

// "SHA256:<base64>" as `ssh-keygen -lf` and OpenSSH's known-hosts prompts print it.
std::string key_fingerprint(ssh_key key);

}  // namespace airlock::agent::ssh
