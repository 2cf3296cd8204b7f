// airlock — the user's and the control plane's client.
#include <iostream>

#include "cli/commands.hpp"
#include "common/util/log.hpp"

int main(int argc, char** argv) {
  CLI::App app{"airlock — reach Airlock workspaces: ssh, terminals, port-forwards, and tokens for the control plane",
               "airlock"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "airlock 0.1.0");
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str();
  app.parse_complete_callback([&] {
    if (!airlock::log::set_level(log_level)) {
      std::cerr << "airlock: --log-level: \"" << log_level << "\" is not one of debug, info, warn, error\n";
      std::exit(2);
    }
  });

  airlock::cli::add_login_command(app);
  airlock::cli::add_token_command(app);
  airlock::cli::add_ping_command(app);
  airlock::cli::add_port_forward_command(app);
  airlock::cli::add_pty_command(app);
  airlock::cli::add_speedtest_command(app);
  airlock::cli::add_ssh_commands(app);
  airlock::cli::add_status_commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}
