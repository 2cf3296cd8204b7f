// Stock OpenSSH through the whole path a user takes: ssh -> `airlock proxy` (the ProxyCommand) ->
// airlock-relay --dev -> the tunnel -> airlock-agent -> its ssh service, all real processes on
// loopback. The same client usage as ssh_service_test.cpp (which runs the server in process);
// here what is checked is that nothing on the way breaks it: exit status, env, Ctrl-C, an
// interactive session with resize, bulk transfers both ways, forwards, the file-transfer policy,
// and `airlock config-ssh` writing the config that a plain `ssh airlock.demo` then uses.
//
// One relay serves the whole file: workspace "demo" (everything on) and "locked" (the manifest
// blocks file transfer). "Inside the workspace" is this machine: files are checked in place.
#include <doctest/doctest.h>

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "tests/support/deployment.hpp"
#include "tests/support/ssh_client.hpp"

namespace fs = std::filesystem;
using namespace airlock;
using namespace airlock::test;
using namespace std::chrono_literals;

namespace {

constexpr const char* kBlockedMessage = "file transfer is disabled in this workspace by policy";

#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kBulkBytes = 16 << 20;  // the agent and the CLI run 3-5x slower under ASan
#else
constexpr size_t kBulkBytes = 100 << 20;
#endif

struct Workspaces {
  Deployment deployment;
  TempDir dir{"airlock-ssh-relay"};
  fs::path work;  // the manifest's directory: where sessions start

  Workspaces() {
    work = dir.path() / "work";
    fs::create_directories(work);
    deployment.start_agent("demo", {.manifest_json = R"({"directory": ")" + work.string() +
                                                     R"(", "env": {"AIRLOCK_MANIFEST_VAR": "from-manifest"}})"});
    deployment.start_agent("locked", {.manifest_json = R"({"policy": {"block_file_transfer": true}})"});
    if (!deployment.wait_connected("demo") || !deployment.wait_connected("locked"))
      throw std::runtime_error("agents did not connect:\n" + deployment.agent("demo")->output() +
                               deployment.agent("locked")->output());
    // ssh runs the ProxyCommand with its own environment: the relay and the token go there.
    for (const auto& [name, value] : deployment.cli_env()) ::setenv(name.c_str(), value.c_str(), 1);
  }

  // An ssh_config in its own directory: Host ws -> airlock.<workspace> through `airlock proxy %h`.
  SshClient client(const std::string& workspace, const std::string& extra = "") {
    fs::path d = dir.path() / ("client-" + workspace);
    fs::create_directories(d);
    return SshClient(d, shell_quote(cli_binary()) + " proxy %h", extra, "accept-new", "airlock." + workspace);
  }
};

// One deployment for every case here: starting a relay and two agents costs more than most cases.
Workspaces& workspaces() {
  static std::unique_ptr<Workspaces> shared;
  if (!shared) shared = std::make_unique<Workspaces>();
  return *shared;
}

}  // namespace

TEST_CASE("ssh airlock.demo: output, stderr, stdin EOF and the exit status come back through the relay") {
  Workspaces& w = workspaces();
  SshClient client = w.client("demo");

  RunResult r = run(client.ssh + " ws 'echo hi; echo oops >&2; exit 3'", 60s);
  CHECK_MESSAGE(r.exit_code == 3, r.err);
  CHECK(r.out == "hi\n");
  CHECK(r.err == "oops\n");

  write_file(w.dir / "lines", "one\ntwo\n");
  r = run(client.ssh + " ws 'wc -l' < " + (w.dir / "lines").string(), 60s);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find('2') != std::string::npos);

  // %h may also be the bare workspace name.
  r = run("ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
          "-o LogLevel=ERROR -o ProxyCommand=" + shell_quote(shell_quote(cli_binary()) + " proxy demo") +
              " anything 'echo bare'", 60s);
  CHECK_MESSAGE(r.out == "bare\n", r.err);
}

TEST_CASE("airlock proxy ends cleanly when killed with a session open (ssh -L and ControlMaster kill it so)") {
  Workspaces& w = workspaces();
  // The stream is still open when SIGTERM ends the command; its teardown must not call back into
  // the finished command (it did: a use-after-free ASan reports, exit status 1 instead of 143).
  // stdin stays open (a FIFO whose writer sleeps), as under ssh; `wait` is for the proxy alone.
  // The stream is open once the ssh service's banner has come out of the proxy.
  const std::string fifo = shell_quote((w.dir / "proxy-stdin").string());
  const std::string out = shell_quote((w.dir / "proxy-stdout").string());
  RunResult r = run("mkfifo " + fifo + "; sleep 20 > " + fifo + " & s=$!; " + shell_quote(cli_binary()) +
                        " proxy airlock.demo < " + fifo + " > " + out + " & p=$!; i=0; while ! grep -q ^SSH- " + out +
                        " 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; "
                        "kill -TERM $p; wait $p; echo rc=$?; kill $s",
                    60s);
  CHECK_MESSAGE(read_file(w.dir / "proxy-stdout").rfind("SSH-2.0-", 0) == 0, "the stream was not open");
  CHECK_MESSAGE(r.out == "rc=143\n", r.out << r.err);
  CHECK(r.seconds < 10);  // SIGTERM ends it at once
  CHECK(r.err.find("Sanitizer") == std::string::npos);
}

TEST_CASE("env through the relay: SetEnv, SendEnv, the manifest's env and directory") {
  Workspaces& w = workspaces();
  SshClient client = w.client("demo");
  RunResult r = run("AIRLOCK_SENT=sent " + client.ssh +
                        " -o SetEnv=AIRLOCK_SET=set -o SendEnv=AIRLOCK_SENT ws "
                        "'echo $AIRLOCK_SET $AIRLOCK_SENT $AIRLOCK_MANIFEST_VAR; pwd; echo token=${AIRLOCK_AGENT_TOKEN:-none} url=${AIRLOCK_RELAY_URL:-none}'",
                    60s);
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  // The agent's own environment (its token, the relay URL) never reaches a session.
  CHECK(r.out == "set sent from-manifest\n" + w.work.string() + "\ntoken=none url=none\n");
}

TEST_CASE("Ctrl-C through the relay interrupts the remote process") {
  Workspaces& w = workspaces();
  SshClient client = w.client("demo");
  RunResult r = interrupt_when_ready(client.ssh + " -tt ws",
                                     "trap 'echo got-INT; exit 7' INT; echo ready; while :; do sleep 0.1; done",
                                     w.dir / "ctrl-c.out", 90s);
  INFO("exit ", r.exit_code, " after ", r.seconds, " s; stdout: ", r.out, "; stderr: ", r.err);
  CHECK(r.out.find("got-INT") != std::string::npos);
  CHECK(r.out.find("ssh_rc=7") != std::string::npos);
}

TEST_CASE("an interactive ssh -tt session through the relay under tmux: typing, resize, exit") {
  Workspaces& w = workspaces();
  SshClient client = w.client("demo");
  Tmux tmux(w.dir.path());

  REQUIRE(tmux.start(client.ssh + " -tt ws", 100, 30));
  tmux.type_line("echo hello-$((6*7))");
  CHECK(tmux.wait_for("hello-42"));
  CHECK(tmux.wait_for_size(100, 30));
  tmux.resize(120, 40);
  CHECK(tmux.wait_for_size(120, 40));
  tmux.type_line("exit");
  CHECK(wait_until([&] { return !tmux.has_session(); }, 15s));
}

TEST_CASE("scp and sftp move a large file both ways through the relay, rsync too, intact") {
  Workspaces& w = workspaces();
  SshClient client = w.client("demo");
  const fs::path source = w.dir / "source.bin";
  REQUIRE(make_random_file(source, kBulkBytes));
  const std::string expected = sha256_of(source);
  REQUIRE(expected.size() > 60);
  const double megabytes = static_cast<double>(kBulkBytes) / (1 << 20);
  const fs::path remote = w.work / "remote.bin";
  const fs::path back = w.dir / "back.bin";

  auto transfer = [&](const std::string& name, const std::string& command, const fs::path& result) {
    RunResult r = run(command, 300s);
    CHECK_MESSAGE(r.exit_code == 0, name << ": " << r.err);
    CHECK_MESSAGE(sha256_of(result) == expected, name);
    MESSAGE(name << ": " << megabytes / r.seconds << " MB/s (" << r.seconds << " s)");
    fs::remove(result);
  };
  transfer("scp upload", client.scp() + " " + source.string() + " ws:" + remote.string(), remote);
  fs::copy_file(source, remote);
  transfer("scp download", client.scp() + " ws:" + remote.string() + " " + back.string(), back);

  write_file(w.dir / "put.batch", "put " + source.string() + " " + remote.string() + "\n");
  transfer("sftp put", client.sftp() + " -b " + (w.dir / "put.batch").string() + " ws", remote);
  fs::copy_file(source, remote);
  write_file(w.dir / "get.batch", "get " + remote.string() + " " + back.string() + "\n");
  transfer("sftp get", client.sftp() + " -b " + (w.dir / "get.batch").string() + " ws", back);
  fs::remove(remote);

  // rsync -a of a tree (the large file and small ones), then a second run that sends nothing new.
  const fs::path tree = w.dir / "tree";
  fs::create_directories(tree / "sub");
  fs::copy_file(source, tree / "big.bin");
  for (int i = 0; i < 20; ++i) write_file(tree / "sub" / ("f" + std::to_string(i)), std::string(i * 100, 'x'));
  const fs::path remote_tree = w.work / "tree";
  RunResult r = run(client.rsync() + " -a " + tree.string() + "/ ws:" + remote_tree.string() + "/", 300s);
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  MESSAGE("rsync -a upload: " << megabytes / r.seconds << " MB/s (" << r.seconds << " s)");
  CHECK(sha256_of(remote_tree / "big.bin") == expected);
  CHECK(read_file(remote_tree / "sub" / "f19") == std::string(1900, 'x'));
  r = run(client.rsync() + " -a --stats " + tree.string() + "/ ws:" + remote_tree.string() + "/", 120s);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("Number of regular files transferred: 0") != std::string::npos);
  fs::remove_all(remote_tree);
  fs::remove_all(tree);
  fs::remove(source);
}

TEST_CASE("ssh -L through the relay reaches a port inside the workspace") {
  Workspaces& w = workspaces();
  SshClient client = w.client("demo");
  EchoServer echo;
  REQUIRE(echo.port() != 0);
  int local = free_tcp_port();
  Background forward(client.ssh + " -N -o ExitOnForwardFailure=yes -L " + std::to_string(local) + ":127.0.0.1:" +
                     std::to_string(echo.port()) + " ws");
  CHECK(echo_through(local, "hello-L") == "hello-L");
  std::string big(1 << 20, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  CHECK(echo_through(local, big) == big);
}

TEST_CASE("with file transfer blocked by the manifest, scp, sftp and rsync are refused and say why") {
  Workspaces& w = workspaces();
  SshClient client = w.client("locked");
  const fs::path source = w.dir / "secret.txt";
  write_file(source, "secret\n");
  const fs::path copy = w.dir / "copy.txt";
  write_file(w.dir / "locked-put.batch", "put " + source.string() + " " + copy.string() + "\n");
  struct Attempt {
    std::string name;
    std::string command;
  };
  const std::vector<Attempt> attempts = {
      {"scp", client.scp() + " " + source.string() + " ws:" + copy.string()},
      {"scp -O", client.scp() + " -O " + source.string() + " ws:" + copy.string()},
      {"scp download", client.scp() + " ws:" + source.string() + " " + copy.string()},
      {"sftp", client.sftp() + " -b " + (w.dir / "locked-put.batch").string() + " ws"},
      {"rsync", client.rsync() + " " + source.string() + " ws:" + copy.string()},
  };
  for (const Attempt& attempt : attempts) {
    RunResult r = run(attempt.command, 60s);
    CHECK_MESSAGE(r.exit_code > 0, attempt.name);  // refused, not killed by the timeout (-1)
    CHECK_MESSAGE(r.err.find(kBlockedMessage) != std::string::npos, attempt.name << " stderr: " << r.err);
  }
  CHECK_FALSE(fs::exists(copy));
  // A shell still works there.
  RunResult r = run(client.ssh + " ws 'echo still-ok'", 60s);
  CHECK(r.out == "still-ok\n");
  CHECK(w.deployment.agent("locked")->output().find("file_transfer_blocked") != std::string::npos);
}

TEST_CASE("airlock config-ssh writes a managed block once, --dry-run shows it, and ssh airlock.demo uses it") {
  Workspaces& w = workspaces();
  // A HOME of our own: the user's ~/.ssh is never touched. OpenSSH itself takes ~ from the passwd
  // entry, not $HOME, so it is pointed at this config with -F and at its own known_hosts.
  const fs::path home = w.dir / "home";
  fs::create_directories(home / ".ssh");
  const fs::path config = home / ".ssh" / "config";
  const std::string mine = "Host other\n  User someone\n";
  write_file(config, mine);
  const std::string cli = "HOME=" + shell_quote(home.string()) + " " + shell_quote(cli_binary()) + " config-ssh";

  RunResult r = run(cli + " --dry-run", 30s);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("+Host airlock.*") != std::string::npos);
  CHECK(r.out.find("+  ProxyCommand") != std::string::npos);
  CHECK(r.out.find("-Host other") == std::string::npos);  // the user's lines are kept
  CHECK(read_file(config) == mine);                       // and nothing is written

  r = run(cli, 30s);
  CHECK(r.exit_code == 0);
  const std::string written = read_file(config);
  CHECK(written.rfind(mine, 0) == 0);
  CHECK(written.find("Host airlock.*") != std::string::npos);
  CHECK(written.find(cli_binary()) != std::string::npos);

  r = run(cli, 30s);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("up to date") != std::string::npos);
  CHECK(read_file(config) == written);
  r = run(cli + " --dry-run", 30s);
  CHECK(r.out.find("up to date") != std::string::npos);

  // An out-of-date block (an older path to airlock) is replaced in place; text after it stays.
  std::string stale = written;
  stale.replace(stale.find(cli_binary()), cli_binary().size(), "/old/airlock");
  write_file(config, stale + "Host after\n  User later\n");
  r = run(cli, 30s);
  CHECK(r.exit_code == 0);
  CHECK(read_file(config) == written + "Host after\n  User later\n");

  // A block with its start but not its end: refused, file unchanged (appending a second block
  // would have the next run swallow the user's lines between the two).
  const std::string broken = "# ------------START-AIRLOCK-----------\nHost mine\n  User me\n";
  write_file(config, broken);
  r = run(cli, 30s);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("by hand") != std::string::npos);
  CHECK(read_file(config) == broken);

  // A config that is a link to a dotfiles checkout is updated there; the link stays a link.
  const fs::path dotfile = w.dir / "dotfiles-ssh-config";
  write_file(dotfile, mine);
  fs::remove(config);
  fs::create_symlink(dotfile, config);
  r = run(cli, 30s);
  CHECK(r.exit_code == 0);
  CHECK(fs::is_symlink(config));
  CHECK(read_file(dotfile) == written);

  r = run("ssh -F " + shell_quote(config.string()) + " -o UserKnownHostsFile=" + shell_quote((w.dir / "kh").string()) +
              " -o BatchMode=yes airlock.demo 'echo hi; exit 3'",
          60s);
  CHECK_MESSAGE(r.exit_code == 3, r.err);
  CHECK(r.out == "hi\n");
}

// Last (cases run in file order): an ASan or UBSan report from the relay or an agent ends up in
// their output, which nothing above reads.
TEST_CASE("the relay and the agents reported no sanitizer error") {
  Workspaces& w = workspaces();
  CHECK(w.deployment.relay().output().find("Sanitizer") == std::string::npos);
  for (const char* name : {"demo", "locked"}) {
    CAPTURE(name);
    if (Process* agent = w.deployment.agent(name)) CHECK(agent->output().find("Sanitizer") == std::string::npos);
  }
}
