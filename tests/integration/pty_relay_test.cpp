// `airlock pty` through the real relay and agent, in a real terminal (tmux): a command's output
// and exit status, the same screen after the client is killed and started again, reattaching by
// itself across relay restarts, giving up with Ctrl-C, and saying so when the session is gone
// (the agent restarted). The local terminal must be as it was after every one of them.
#include <doctest/doctest.h>

#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <regex>
#include <string>
#include <thread>

#include "tests/support/deployment.hpp"
#include "tests/support/ssh_client.hpp"

namespace fs = std::filesystem;
using namespace airlock;
using namespace airlock::test;
using namespace std::chrono_literals;

namespace {

struct Workspace {
  Deployment deployment;
  TempDir dir{"airlock-pty-relay"};
  std::string manifest;

  Workspace() {
    fs::create_directories(dir / "work");
    manifest = R"({"directory": ")" + (dir / "work").string() + R"("})";
    deployment.start_agent("demo", {.manifest_json = manifest});
    if (!deployment.wait_connected("demo"))
      throw std::runtime_error("the agent did not connect:\n" + deployment.agent("demo")->output());
    // tmux starts its server, and so the panes' programs, with the environment it was started in.
    for (const auto& [name, value] : deployment.cli_env()) ::setenv(name.c_str(), value.c_str(), 1);
  }

  // `airlock pty demo ARGS`, stderr appended to `err` (kept out of the screen that is compared).
  std::string pty(const std::string& args, const fs::path& err) const {
    return shell_quote(cli_binary()) + " pty demo " + args + " 2>>" + shell_quote(err.string());
  }
};

Workspace& workspace() {
  static std::unique_ptr<Workspace> shared;
  if (!shared) shared = std::make_unique<Workspace>();
  return *shared;
}

// Types a command and waits for what it prints: the shell is ready and the path is up.
bool shell_answers(Tmux& tmux, const std::string& tag) {
  tmux.type_line("echo " + tag + "-$((40+2))");
  if (tmux.wait_for(tag + "-42", 20s)) return true;
  MESSAGE("no answer to echo " << tag << "; the screen:\n" << tmux.capture());
  return false;
}

// What a terminal answers to the queries full-screen programs send (DA1/DA2, DSR, DECRQM...):
// seen on a screen, they were replayed to a new terminal and its answers typed into the session.
bool has_query_replies(const std::string& screen) {
  for (const char* garbage : {"^[", "[?1;2c", "1;2c", "[>", "0;276;0c", "[?6c", "\x1b"})
    if (screen.find(garbage) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("airlock pty --command: output and exit status, with or without a terminal, and the terminal restored") {
  Workspace& w = workspace();

  // Pipes, not a terminal: the output arrives and the exit status is the command's.
  RunResult r = run(shell_quote(cli_binary()) + " pty demo --command 'echo hi-from-pty; exit 7'", 60s);
  CHECK_MESSAGE(r.exit_code == 7, r.err);
  CHECK(r.out.find("hi-from-pty") != std::string::npos);

  // A slow reader: the shell's last output still arrives before the command exits with its status
  // (closing a libuv stream cancels the writes still queued on it).
  write_file(w.dir / "slow_reader.py",
             "import os, time\n"
             "data = b''\n"
             "while True:\n"
             "    chunk = os.read(0, 8192)\n"
             "    if not chunk: break\n"
             "    data += chunk\n"
             "    time.sleep(0.005)\n"
             "print(len(data), data.replace(b'\\r', b'').split(b'\\n')[-2].decode())\n");
  r = run(shell_quote(cli_binary()) + " pty demo --command 'seq 1 150000; echo END-OF-OUTPUT' | python3 " +
              shell_quote((w.dir / "slow_reader.py").string()),
          60s);
  CHECK_MESSAGE(r.out.find(" END-OF-OUTPUT\n") != std::string::npos, r.out << r.err);

  // A terminal: raw while attached, exactly as before afterwards. (The pane is kept alive: tmux
  // 3.3 sometimes blanks a dead pane's screen.)
  Tmux tmux(w.dir.path());
  const fs::path d = w.dir.path();
  REQUIRE(tmux.start("stty -g > " + shell_quote((d / "before").string()) + "; " +
                         w.pty("--command 'echo hi-in-tmux; exit 5'", d / "err1") + "; echo rc=$? > " +
                         shell_quote((d / "rc").string()) + "; stty -g > " + shell_quote((d / "after").string()) +
                         "; exec sleep 60",
                     100, 30));
  CHECK(wait_until([&] { return !read_file(d / "after").empty(); }, 30s));
  CHECK(read_file(d / "rc") == "rc=5\n");
  CHECK(read_file(d / "before") == read_file(d / "after"));
  CHECK(tmux.capture().find("hi-in-tmux") != std::string::npos);

  // Mistakes are told, with the usual statuses.
  r = run(shell_quote(cli_binary()) + " pty nosuchws --command true", 60s);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("nosuchws") != std::string::npos);
  r = run(shell_quote(cli_binary()) + " pty demo --session 'not ok'", 60s);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("--session") != std::string::npos);
  // A workspace whose policy turns terminals off refuses the stream before any session: that is
  // final, not a lost connection to retry.
  w.deployment.start_agent("nopty", {.manifest_json = R"({"policy": {"services": {"pty": false}}})"});
  REQUIRE(w.deployment.wait_connected("nopty"));
  r = run(shell_quote(cli_binary()) + " pty nopty --command true", 60s);
  CHECK(r.exit_code == 1);
  CHECK_MESSAGE(r.err.find("disabled") != std::string::npos, r.err);
  CHECK(r.err.find("reconnecting") == std::string::npos);
}

TEST_CASE("a session reattached after the client is killed shows the same screen, and no query replies") {
  Workspace& w = workspace();
  const fs::path d = w.dir.path();
  const fs::path file = d / "work" / "known.txt";
  std::string text;
  for (int i = 1; i <= 200; ++i) text += "line " + std::to_string(i) + " of a file vim shows the same way twice\n";
  write_file(file, text);

  std::string before, before_cursor;
  {
    Tmux tmux(d);
    REQUIRE(tmux.start("exec " + w.pty("--session s1", d / "err-s1"), 100, 30));
    REQUIRE(shell_answers(tmux, "first"));
    // vim asks the terminal questions when it starts (its version, cursor position, colours).
    tmux.type_line("vim -u NONE -N -i NONE -c 'set number ruler' " + file.string());
    REQUIRE(tmux.wait_for("  1 line 1 of a file"));
    tmux.type("60Gww");
    REQUIRE(tmux.wait_for("60,"));
    before = tmux.settle();
    before_cursor = tmux.display("#{cursor_x},#{cursor_y}");
    // The client dies without a word: no detach, no terminal restored (tmux goes with it).
    pid_t client = std::stoi(tmux.display("#{pane_pid}"));
    REQUIRE(::kill(client, SIGKILL) == 0);
  }
  REQUIRE_FALSE(has_query_replies(before));

  Tmux tmux(d);
  REQUIRE(tmux.start("exec " + w.pty("--session s1", d / "err-s1"), 100, 30));
  REQUIRE(tmux.wait_for(" 60 line 60 of a file", 20s));
  std::string after = tmux.settle();
  INFO("before:\n", before, "\nafter:\n", after);
  CHECK(after == before);
  CHECK(tmux.display("#{cursor_x},#{cursor_y}") == before_cursor);
  CHECK_FALSE(has_query_replies(after));

  // Nothing reached vim but what was typed: the buffer is unchanged, and vim still works.
  const fs::path copy = d / "work" / "copy.txt";
  tmux.type_line(":w! " + copy.string());
  CHECK(wait_until([&] { return read_file(copy) == text; }, 15s));
  tmux.type_line(":q!");
  // Keys typed before vim is gone would be read (and dropped) by vim: wait for the shell's screen.
  CHECK(tmux.wait_for("first-42", 15s));
  REQUIRE(shell_answers(tmux, "back"));
  std::string shell_screen = tmux.capture();
  CHECK_FALSE(has_query_replies(shell_screen));
  tmux.type_line("exit 4");
  CHECK(wait_until([&] { return !tmux.has_session(); }, 15s));
}

TEST_CASE("airlock pty reattaches by itself when the relay restarts, and Ctrl-C gives up a reconnect") {
  Workspace& w = workspace();
  const fs::path d = w.dir.path();
  const fs::path err = d / "err-r1";
  Tmux tmux(d);
  REQUIRE(tmux.start("stty -g > " + shell_quote((d / "before-r1").string()) + "; " + w.pty("--session r1", err) +
                         "; echo rc=$? > " + shell_quote((d / "rc-r1").string()) + "; stty -g > " +
                         shell_quote((d / "after-r1").string()),
                     100, 30, true));
  REQUIRE(shell_answers(tmux, "r1"));
  // The window's size follows the local terminal's.
  CHECK(tmux.wait_for_size(100, 30));
  tmux.resize(120, 40);
  CHECK(tmux.wait_for_size(120, 40));
  tmux.type_line("clear; echo shell=$$");
  std::string shell_pid;
  REQUIRE(wait_until(
      [&] {
        std::smatch found;
        const std::string screen = tmux.capture();
        if (!std::regex_search(screen, found, std::regex(R"((^|\n)shell=(\d+))"))) return false;
        shell_pid = found[2];
        return true;
      },
      15s));
  auto count_reattached = [&] {
    size_t n = 0;
    std::string text = read_file(err);
    for (size_t i = 0; (i = text.find("reattached", i)) != std::string::npos; ++i) ++n;
    return n;
  };

  // A graceful restart (the relay tells its peers to come back), then a crash.
  for (bool graceful : {true, false}) {
    CAPTURE(graceful);
    size_t reattached_before = count_reattached();
    if (graceful) {
      w.deployment.restart_relay();
    } else {
      w.deployment.relay().kill();
      w.deployment.start_relay();
    }
    CHECK(wait_until([&] { return count_reattached() > reattached_before; }, 30s));
    CHECK(read_file(err).find("reconnecting") != std::string::npos);
    tmux.type_line(std::string("echo again-") + (graceful ? "graceful" : "crash") + "=$$");
    CHECK(tmux.wait_for(std::string("again-") + (graceful ? "graceful" : "crash") + "=" + shell_pid, 15s));
  }

  // With the relay gone, the client waits; Ctrl-C ends the wait and gives the terminal back.
  w.deployment.stop_relay();
  CHECK(wait_until([&] { return read_file(err).find("Ctrl-C gives up") != std::string::npos; }, 30s));
  tmux.keys("C-c");
  CHECK(wait_until([&] { return !read_file(d / "after-r1").empty(); }, 15s));
  CHECK(read_file(d / "rc-r1") == "rc=255\n");
  CHECK(read_file(d / "before-r1") == read_file(d / "after-r1"));
  CHECK(read_file(err).find("gave up reconnecting") != std::string::npos);
  CHECK(read_file(err).find("--session r1") != std::string::npos);  // how to come back
  size_t agent_lines = w.deployment.agent("demo")->line_count();
  w.deployment.start_relay();
  REQUIRE(w.deployment.wait_connected("demo", 30s, agent_lines));

  // The session is still there: a new client finds the same shell (typing from a pipe).
  RunResult r = run("printf 'echo final=$$\\nexit 6\\n' | " + shell_quote(cli_binary()) + " pty demo --session r1", 60s);
  CHECK_MESSAGE(r.exit_code == 6, r.err);
  CHECK(r.out.find("final=" + shell_pid) != std::string::npos);
}

TEST_CASE("when the agent restarts, the session is gone: airlock pty says so and exits 255 instead of a new shell") {
  Workspace& w = workspace();
  const fs::path d = w.dir.path();
  const fs::path err = d / "err-g1";
  Tmux tmux(d);
  REQUIRE(tmux.start("stty -g > " + shell_quote((d / "before-g1").string()) + "; " + w.pty("--session g1", err) +
                         "; echo rc=$? > " + shell_quote((d / "rc-g1").string()) + "; stty -g > " +
                         shell_quote((d / "after-g1").string()),
                     100, 30, true));
  REQUIRE(shell_answers(tmux, "g1"));

  w.deployment.agent("demo")->kill();
  w.deployment.start_agent("demo", {.manifest_json = w.manifest});
  bool ended = wait_until([&] { return !read_file(d / "after-g1").empty(); }, 60s);
  CHECK_MESSAGE(ended, "the relay:\n" << w.deployment.relay().output() << "\nthe agent:\n"
                                        << w.deployment.agent("demo")->output());
  INFO(read_file(err));
  CHECK(read_file(d / "rc-g1") == "rc=255\n");
  CHECK(read_file(err).find("session g1 no longer exists") != std::string::npos);
  CHECK(read_file(d / "before-g1") == read_file(d / "after-g1"));
}

// Last (cases run in file order): an ASan or UBSan report from the relay or an agent ends up in
// their output, which nothing above reads.
TEST_CASE("the relay and the agents reported no sanitizer error") {
  Workspace& w = workspace();
  CHECK(w.deployment.relay().output().find("Sanitizer") == std::string::npos);
  for (const char* name : {"demo", "nopty"}) {
    CAPTURE(name);
    if (Process* agent = w.deployment.agent(name)) CHECK(agent->output().find("Sanitizer") == std::string::npos);
  }
}
