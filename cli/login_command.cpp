// `airlock login URL --token TOKEN` — remember the relay and the token for later commands.
#include <iostream>

#include "cli/client_config.hpp"
#include "cli/commands.hpp"

namespace airlock::cli {

void add_login_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("login", "Save the relay URL and your token for later commands");
  auto o = std::make_shared<ClientOptions>();
  cmd->add_option("url", o->url, "Relay URL: wss://relay.example.com (ws:// only on loopback)")->required();
  cmd->add_option("--token", o->token, "Your token from the control plane")->required();
  cmd->add_option("--ca", o->ca_file, "Trust this certificate for wss:// (a relay's --dev certificate)");
  cmd->callback([o] {
    if (o->url.rfind("ws://", 0) != 0 && o->url.rfind("wss://", 0) != 0) {
      std::cerr << "airlock login: URL must start with wss:// (or ws:// for a relay on loopback), got \"" << o->url
                << "\"\n";
      throw CLI::RuntimeError(2);
    }
    if (auto s = save_client_config(*o); !s) {
      std::cerr << "airlock login: " << s.error().message << "\n";
      throw CLI::RuntimeError(1);
    }
    std::cout << "Saved relay " << o->url << " and token to " << config_path() << "\n";
  });
}

}  // namespace airlock::cli
