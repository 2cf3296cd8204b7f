// A whole Airlock deployment on loopback for end-to-end tests: the real airlock-relay (--dev, its
// own state directory, a free port), real airlock-agent processes for named workspaces, and the
// real `airlock` CLI run as a child with the right URL and token. No mocks: what a test sees is
// what a user of the three programs would see.
//
//   test::Deployment d;                                  // relay --dev on 127.0.0.1:<free port>
//   auto& agent = d.start_agent("demo");                 // workspace "demo", owner "admin"
//   REQUIRE(d.wait_connected("demo"));
//   auto r = d.cli({"ping", "demo", "-c", "3"});         // runs `airlock ping demo -c 3`
//   CHECK(r.code == 0);
//
// Tokens: d.owner_token() (user admin, role owner), d.mint_user(sub, role), d.mint_agent(...).
// Set AIRLOCK_TEST_ECHO=1 to see every child's output as it arrives.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/token/token.hpp"
#include "tests/support/process.hpp"

namespace airlock::test {

std::string relay_binary();
std::string agent_binary();
std::string cli_binary();

// A fresh directory under the system temp dir, removed (recursively) by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "airlock-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct CliResult {
  int code = -1;     // exit code, 128+signal, or -1 if it did not end in time (it is then killed)
  std::string out;   // stdout lines, each ending in \n
  std::string err;   // stderr lines
  std::string all() const { return "stdout:\n" + out + "stderr:\n" + err; }
};

class Deployment {
 public:
  struct Options {
    bool tls = false;                        // clients and agents use wss:// (the --dev certificate)
    std::vector<std::string> relay_args;     // extra airlock-relay flags
    int port = 0;                            // 0: a free port (restart_relay() keeps the chosen one)
  };
  Deployment();
  explicit Deployment(Options options);
  ~Deployment();
  Deployment(const Deployment&) = delete;
  Deployment& operator=(const Deployment&) = delete;

  // ---- relay ----
  std::string url() const;  // ws:// or wss://, per options
  int port() const { return port_; }
  const std::filesystem::path& relay_dir() const { return relay_dir_; }
  std::string ca_file() const { return (relay_dir_ / "tls-cert.pem").string(); }
  Process& relay() { return *relay_; }
  // SIGTERM (graceful: peers are told to come back), wait for the exit, start again on the same
  // port with the same keys.
  void restart_relay();
  void stop_relay();
  void start_relay();
  // GET path on the relay's HTTP port with an optional bearer token: {status code, body}.
  std::pair<int, std::string> http_get(const std::string& path, const std::string& bearer = "") const;

  // ---- tokens ----
  const token::IssuerKey& issuer() const { return issuer_; }
  std::string issuer_public_key() const;
  std::string owner_token() const { return owner_token_; }
  std::string mint_user(const std::string& sub, token::Role role, int64_t ttl_seconds = 3600,
                        int64_t issued_seconds_ago = 0) const;
  std::string mint_agent(const std::string& workspace, const std::string& owner) const;

  // ---- agents ----
  struct AgentOptions {
    std::string owner = "admin";
    std::string manifest_json;  // written to a file and passed as AIRLOCK_AGENT_MANIFEST; empty: none
    std::vector<std::pair<std::string, std::string>> env;  // extra environment
    std::vector<std::string> args;                         // extra flags
  };
  // Starts airlock-agent for `workspace` (state in its own directory under the deployment's).
  Process& start_agent(const std::string& workspace, AgentOptions options);
  Process& start_agent(const std::string& workspace) { return start_agent(workspace, AgentOptions{}); }
  Process* agent(const std::string& workspace);
  std::filesystem::path agent_dir(const std::string& workspace) const;
  // Waits until the agent of `workspace` logs that it is connected to the relay (from the given
  // line of its output on, so a reconnect can be awaited).
  bool wait_connected(const std::string& workspace, std::chrono::milliseconds timeout = std::chrono::seconds(20),
                      size_t from_line = 0);

  // ---- the CLI ----
  // Runs `airlock args...` with AIRLOCK_URL / AIRLOCK_TOKEN (the owner's unless `token` is given)
  // / AIRLOCK_CA set, and waits for it to end.
  CliResult cli(const std::vector<std::string>& args, const std::string& token = "",
                std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;
  // Starts `airlock args...` in the background (port-forward, logs -f, ...).
  std::unique_ptr<Process> cli_start(const std::vector<std::string>& args, const std::string& token = "") const;
  // The environment cli() gives the CLI: for ssh's ProxyCommand and other children.
  std::vector<std::pair<std::string, std::string>> cli_env(const std::string& token = "") const;
  const std::filesystem::path& dir() const { return dir_.path(); }

 private:
  Options options_;
  TempDir dir_;
  std::filesystem::path relay_dir_;
  int port_ = 0;
  std::unique_ptr<Process> relay_;
  token::IssuerKey issuer_{};
  std::string owner_token_;
  std::map<std::string, std::unique_ptr<Process>> agents_;
};

// A free TCP port on 127.0.0.1 (bound and released: good enough for tests run one at a time).
int free_port();

}  // namespace airlock::test
