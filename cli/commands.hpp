// Each `airlock` subcommand registers itself on the CLI11 app; main() only dispatches.
#pragma once

#include <CLI/CLI.hpp>

namespace airlock::cli {

// Options every command that talks to a relay shares: where the relay is and who we are.
struct ClientOptions {
  std::string url;      // --url, AIRLOCK_URL, or the config written by `airlock login`
  std::string token;    // --token, AIRLOCK_TOKEN, or the config
  std::string ca_file;  // --ca: trust this certificate for wss:// (the relay's dev certificate)
};

void add_login_command(CLI::App& app);
void add_token_command(CLI::App& app);

}  // namespace airlock::cli
