// Where `airlock` finds its relay and token: flags, then the environment (AIRLOCK_URL,
// AIRLOCK_TOKEN, AIRLOCK_CA), then the file `airlock login` writes
// ($XDG_CONFIG_HOME/airlock/config.json, else ~/.config/airlock/config.json).
#pragma once

#include <string>

#include "cli/commands.hpp"
#include "common/util/result.hpp"

namespace airlock::cli {

std::string config_path();
Result<ClientOptions> load_client_config();
Status save_client_config(const ClientOptions& options);

// Fills what the flags left empty from the environment and the config file; errors say what is
// missing and how to provide it.
Result<ClientOptions> resolve_client_options(ClientOptions from_flags);

}  // namespace airlock::cli
