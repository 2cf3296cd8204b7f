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

// --url, --token and --ca on a command that reaches a workspace.
void add_client_options(CLI::App* cmd, ClientOptions& options);

void add_login_command(CLI::App& app);
void add_token_command(CLI::App& app);
void add_ping_command(CLI::App& app);
void add_port_forward_command(CLI::App& app);
void add_pty_command(CLI::App& app);
void add_speedtest_command(CLI::App& app);
void add_ssh_commands(CLI::App& app);  // proxy, ssh, config-ssh
void add_status_commands(CLI::App& app);  // status, logs

}  // namespace airlock::cli
