// `airlock proxy WS`, `airlock ssh WS [-- command]` and `airlock config-ssh`: stock OpenSSH to a
// workspace, with airlock as the ProxyCommand.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/client_config.hpp"
#include "cli/commands.hpp"
#include "cli/workspace_connection.hpp"
#include "common/net/stream_bridge.hpp"

namespace airlock::cli {

namespace {

constexpr const char* kHostPrefix = "airlock.";
constexpr const char* kBlockStart = "# ------------START-AIRLOCK-----------";
constexpr const char* kBlockEnd = "# ------------END-AIRLOCK-------------";

// "airlock.myws" (what ssh passes as %h) or "myws".
std::string workspace_from_host(const std::string& host) {
  if (host.rfind(kHostPrefix, 0) == 0) return host.substr(std::strlen(kHostPrefix));
  return host;
}

std::string self_path() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "airlock" : p.string();
}

int run_proxy(const ClientOptions& flags, const std::string& host) {
  std::string ws = workspace_from_host(host);
  return run_workspace_command(flags, ws, true, [](CommandContext& ctx, net::PeerLink& link, const nlohmann::json&) {
    std::string error;
    uv_stream_t* in = net::StreamBridge::wrap_fd(ctx.loop, STDIN_FILENO, &error);
    uv_stream_t* out = in ? net::StreamBridge::wrap_fd(ctx.loop, STDOUT_FILENO, &error) : nullptr;
    if (!in || !out) {
      std::cerr << "airlock proxy: cannot use stdin/stdout: " << error << "\n";
      ctx.finish(1);
      return;
    }
    // After a SIGTERM or a failed connection the command ends with the bridge still open, and the
    // connection's teardown closes it. `ended` (owned: it outlives the connection) keeps that
    // close quiet: the command has its exit status, and the bridge's reason is not news.
    bool* ended = ctx.own(std::make_unique<bool>(false));
    ctx.finish = [ended, finish = std::move(ctx.finish)](int code) {
      *ended = true;
      finish(code);
    };
    auto* bridge = new net::StreamBridge(link, in, out, [&ctx, ended](const std::string& reason) {
      if (*ended) return;
      if (!reason.empty() && reason != "stream closed") std::cerr << "airlock proxy: " << reason << "\n";
      ctx.finish(reason.empty() || reason == "stream closed" ? 0 : 1);
    });
    auto id = link.open("ssh", nlohmann::json::object(), stream::Priority::interactive, bridge);
    bridge->start(id);
  });
}

std::string managed_block() {
  std::ostringstream b;
  b << kBlockStart << "\n"
    << "# Written by `airlock config-ssh`; run it again to update. Edits inside this block are replaced.\n"
    << "Host " << kHostPrefix << "*\n"
    << "  ProxyCommand \"" << self_path() << "\" proxy %h\n"
    << "  UserKnownHostsFile ~/.ssh/airlock_known_hosts\n"
    << "  StrictHostKeyChecking accept-new\n"
    << "  ServerAliveInterval 30\n"
    << "  LogLevel ERROR\n"
    << kBlockEnd << "\n";
  return b.str();
}

// The config with our block replaced (or appended), everything else as it was.
Result<std::string> with_block(const std::string& current) {
  std::string block = managed_block();
  auto start = current.find(kBlockStart);
  if (start != std::string::npos) {
    auto end = current.find(kBlockEnd, start);
    // Appending a second block would make the next run replace everything from this start to
    // that end, the user's lines between them included.
    if (end == std::string::npos)
      return make_error("it has the line \"" + std::string(kBlockStart) + "\" but not \"" + kBlockEnd +
                        "\" after it: remove or complete the block by hand, then run this again");
    end += std::strlen(kBlockEnd);
    if (end < current.size() && current[end] == '\n') ++end;
    return current.substr(0, start) + block + current.substr(end);
  }
  std::string out = current;
  if (!out.empty() && out.back() != '\n') out += "\n";
  if (!out.empty()) out += "\n";
  return out + block;
}

int run_config_ssh(std::string path, bool dry_run) {
  // A config kept elsewhere and linked here (dotfiles) is updated where it lives, link kept.
  std::error_code ec;
  if (std::filesystem::is_symlink(path, ec)) {
    auto target = std::filesystem::weakly_canonical(path, ec);
    if (!ec) path = target.string();
  }
  std::string current;
  if (std::ifstream in(path); in) {
    std::stringstream ss;
    ss << in.rdbuf();
    current = ss.str();
  }
  auto updated = with_block(current);
  if (!updated) {
    std::cerr << "airlock config-ssh: " << path << ": " << updated.error().message << "\n";
    return 1;
  }
  std::string next = *updated;
  if (next == current) {
    std::cout << path << " is up to date\n";
    return 0;
  }
  if (dry_run) {
    // A line diff is enough here: the block is small and the rest of the file is kept as is.
    std::istringstream a(current), b(next);
    std::vector<std::string> old_lines, new_lines;
    for (std::string l; std::getline(a, l);) old_lines.push_back(l);
    for (std::string l; std::getline(b, l);) new_lines.push_back(l);
    std::cout << "--- " << path << "\n+++ " << path << " (after airlock config-ssh)\n";
    size_t i = 0;
    while (i < old_lines.size() && i < new_lines.size() && old_lines[i] == new_lines[i]) ++i;
    size_t je = old_lines.size(), ke = new_lines.size();
    while (je > i && ke > i && old_lines[je - 1] == new_lines[ke - 1]) --je, --ke;
    for (size_t j = i; j < je; ++j) std::cout << "-" << old_lines[j] << "\n";
    for (size_t k = i; k < ke; ++k) std::cout << "+" << new_lines[k] << "\n";
    return 0;
  }
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  std::string tmp = path + ".airlock.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << next;
    if (!out) {
      std::cerr << "airlock config-ssh: cannot write " << tmp << "\n";
      return 1;
    }
  }
  std::filesystem::permissions(tmp, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::cerr << "airlock config-ssh: cannot replace " << path << ": " << std::strerror(errno) << "\n";
    return 1;
  }
  std::cout << "Updated " << path << ": `ssh " << kHostPrefix << "WORKSPACE` now goes through airlock\n";
  return 0;
}

}  // namespace

void add_ssh_commands(CLI::App& app) {
  {
    auto* cmd = app.add_subcommand("proxy", "Join stdin/stdout to a workspace's SSH service (an OpenSSH ProxyCommand)");
    auto o = std::make_shared<ClientOptions>();
    auto host = std::make_shared<std::string>();
    cmd->add_option("workspace", *host, "Workspace name, or airlock.NAME as ssh's %h")->required();
    add_client_options(cmd, *o);
    cmd->callback([o, host] { throw CLI::RuntimeError(run_proxy(*o, *host)); });
  }
  {
    auto* cmd = app.add_subcommand("ssh", "Run OpenSSH to a workspace through airlock");
    auto o = std::make_shared<ClientOptions>();
    auto ws = std::make_shared<std::string>();
    auto args = std::make_shared<std::vector<std::string>>();
    cmd->add_option("workspace", *ws, "Workspace name")->required();
    cmd->add_option("command", *args, "Command to run instead of a shell (after --)");
    add_client_options(cmd, *o);
    cmd->callback([o, ws, args] {
      // The proxy reads the relay and token from the environment, so the token never shows in ps.
      auto resolved = resolve_client_options(*o);
      if (!resolved) {
        std::cerr << "airlock ssh: " << resolved.error().message << "\n";
        throw CLI::RuntimeError(2);
      }
      ::setenv("AIRLOCK_URL", resolved->url.c_str(), 1);
      ::setenv("AIRLOCK_TOKEN", resolved->token.c_str(), 1);
      if (!resolved->ca_file.empty()) ::setenv("AIRLOCK_CA", resolved->ca_file.c_str(), 1);
      std::string proxy = "ProxyCommand=\"" + self_path() + "\" proxy %h";
      std::string host = kHostPrefix + *ws;
      std::vector<std::string> argv = {"ssh",
                                       "-o", proxy,
                                       "-o", "UserKnownHostsFile=~/.ssh/airlock_known_hosts",
                                       "-o", "StrictHostKeyChecking=accept-new",
                                       "-o", "LogLevel=ERROR",
                                       host};
      argv.insert(argv.end(), args->begin(), args->end());
      std::vector<char*> cargv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      ::execvp("ssh", cargv.data());
      std::cerr << "airlock ssh: cannot run ssh: " << std::strerror(errno) << " (install openssh-client)\n";
      throw CLI::RuntimeError(127);
    });
  }
  {
    auto* cmd = app.add_subcommand("config-ssh", "Add a managed `Host airlock.*` block to ~/.ssh/config");
    auto path = std::make_shared<std::string>();
    const char* home = std::getenv("HOME");
    *path = std::string(home ? home : ".") + "/.ssh/config";
    auto dry = std::make_shared<bool>(false);
    cmd->add_option("--ssh-config-file", *path, "The OpenSSH config to update")->capture_default_str();
    cmd->add_flag("--dry-run", *dry, "Show the change without writing it");
    cmd->callback([path, dry] { throw CLI::RuntimeError(run_config_ssh(*path, *dry)); });
  }
}

}  // namespace airlock::cli
