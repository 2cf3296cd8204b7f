#include <doctest/doctest.h>

#include <csignal>
#include <string>

#include "common/ssh/command_policy.hpp"

using airlock::ssh::classify_command;
using airlock::ssh::TransferTool;

TEST_CASE("the server sides of scp, rsync and sftp are file transfers") {
  CHECK(classify_command("scp -t /tmp") == TransferTool::scp);
  CHECK(classify_command("scp -f big.bin") == TransferTool::scp);
  CHECK(classify_command("scp -v -r -t -- .") == TransferTool::scp);
  CHECK(classify_command("/usr/bin/scp -t .") == TransferTool::scp);
  CHECK(classify_command("rsync --server -vlogDtpre.iLsfxCIvu . /tmp/x") == TransferTool::rsync);
  CHECK(classify_command("/usr/lib/openssh/sftp-server") == TransferTool::sftp);
  CHECK(classify_command("internal-sftp") == TransferTool::sftp);
  CHECK(classify_command("exec /usr/libexec/sftp-server -e") == TransferTool::sftp);
}

TEST_CASE("wrappers, assignments and chains do not hide a transfer") {
  CHECK(classify_command("  LC_ALL=C scp -t .") == TransferTool::scp);
  CHECK(classify_command("exec scp -f x") == TransferTool::scp);
  CHECK(classify_command("env -i scp -t .") == TransferTool::scp);
  CHECK(classify_command("cd /tmp && scp -t .") == TransferTool::scp);
  CHECK(classify_command("true; rsync --server --sender . x") == TransferTool::rsync);
  CHECK(classify_command("sh -c 'scp -t .'") == TransferTool::scp);
  CHECK(classify_command("bash -lc \"rsync --server . /x\"") == TransferTool::rsync);
  CHECK(classify_command("'s'cp -t .") == TransferTool::scp);
  CHECK(classify_command("s\\cp -t .") == TransferTool::scp);
  CHECK(classify_command("(scp -t .)") == TransferTool::scp);
}

TEST_CASE("ordinary commands are not transfers") {
  CHECK(classify_command("") == TransferTool::none);
  CHECK(classify_command("echo hi; exit 3") == TransferTool::none);
  CHECK(classify_command("rsync --version") == TransferTool::none);
  CHECK(classify_command("echo scp") == TransferTool::none);
  CHECK(classify_command("ls /usr/bin/scpx") == TransferTool::none);
  CHECK(classify_command("git status") == TransferTool::none);
  CHECK(classify_command("sh -c") == TransferTool::none);
  CHECK(classify_command("'unterminated") == TransferTool::none);
  CHECK(classify_command("\"unterminated \\") == TransferTool::none);
}

TEST_CASE("environment names a client may set") {
  CHECK(airlock::ssh::is_valid_env_name("LANG"));
  CHECK(airlock::ssh::is_valid_env_name("_x1"));
  CHECK_FALSE(airlock::ssh::is_valid_env_name(""));
  CHECK_FALSE(airlock::ssh::is_valid_env_name("1A"));
  CHECK_FALSE(airlock::ssh::is_valid_env_name("A=B"));
  CHECK_FALSE(airlock::ssh::is_valid_env_name("A B"));
  CHECK_FALSE(airlock::ssh::is_valid_env_name(std::string(300, 'A')));
}

TEST_CASE("signal names round-trip in the SSH wire form") {
  CHECK(airlock::ssh::signal_from_name("INT") == SIGINT);
  CHECK(airlock::ssh::signal_from_name("SIGTERM") == SIGTERM);
  CHECK(airlock::ssh::signal_from_name("KILL") == SIGKILL);
  CHECK_FALSE(airlock::ssh::signal_from_name("NOPE").has_value());
  CHECK_FALSE(airlock::ssh::signal_from_name("").has_value());
  CHECK(airlock::ssh::signal_name(SIGINT) == "INT");
  CHECK(airlock::ssh::signal_name(SIGSEGV) == "SEGV");
  CHECK_FALSE(airlock::ssh::signal_name(0).has_value());
}
