#include <doctest/doctest.h>

#include "common/workspace/proc_net.hpp"

using namespace airlock::workspace;

namespace {

// Captured from a Linux 6.1 x86-64 machine: sshd on 0.0.0.0:22, code-server on 127.0.0.1:13337,
// an established connection, and a TIME_WAIT.
const char* kTcp =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20381 1 0000000000000000 100 0 0 10 0\n"
    "   1: 0100007F:3419 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 51234 1 0000000000000000 100 0 0 10 0\n"
    "   2: 0100007F:3419 0100007F:D3C2 01 00000000:00000000 00:00000000 00000000  1000        0 51300 1 0000000000000000 20 4 30 10 -1\n"
    "   3: 0100007F:A2C4 0100007F:3419 06 00000000:00000000 03:00000F2B 00000000     0        0 0 3 0000000000000000\n";

const char* kTcp6 =
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 60001 1 0000000000000000 100 0 0 10 0\n"
    "   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 60002 1 0000000000000000 100 0 0 10 0\n"
    "   2: 0000000000000000FFFF00000500000A:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 60003 1 0000000000000000 100 0 0 10 0\n"
    "   3: B80D01200000000000000000340000AB:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 60004 1 0000000000000000 100 0 0 10 0\n";

}  // namespace

TEST_CASE("/proc/net/tcp: every socket, addresses decoded from the kernel's words") {
  auto all = parse_proc_net_tcp(kTcp, false);
  REQUIRE(all.size() == 4);
  CHECK(all[0].address == "0.0.0.0");
  CHECK(all[0].port == 22);
  CHECK(all[0].state == kTcpStateListen);
  CHECK(all[0].inode == 20381);
  CHECK(all[1].address == "127.0.0.1");
  CHECK(all[1].port == 13337);
  CHECK(all[1].uid == 1000);
  CHECK(all[2].state == 0x01);  // ESTABLISHED
  CHECK(all[3].state == 0x06);  // TIME_WAIT

  auto listening = listening_sockets(kTcp, false);
  REQUIRE(listening.size() == 2);
  CHECK(listening[0].port == 22);
  CHECK(listening[1].port == 13337);
  CHECK_FALSE(listening[0].ipv6);
}

TEST_CASE("/proc/net/tcp6: RFC 5952 text, IPv4-mapped addresses") {
  auto l = listening_sockets(kTcp6, true);
  REQUIRE(l.size() == 4);
  CHECK(l[0].address == "::");
  CHECK(l[0].port == 8080);
  CHECK(l[1].address == "::1");
  CHECK(l[1].port == 80);
  CHECK(l[2].address == "::ffff:10.0.0.5");
  CHECK(l[2].port == 3000);
  CHECK(l[3].address == "2001:db8::ab00:34");  // words 20010DB8 0 0 AB000034, each stored little-endian
  CHECK(l[3].ipv6);
}

TEST_CASE("malformed lines are skipped, not fatal") {
  CHECK(parse_proc_net_tcp("", false).empty());
  CHECK(parse_proc_net_tcp("garbage\n\n   0: nothing here\n", false).empty());
  // Wrong address width for the family.
  CHECK(parse_proc_net_tcp("   0: 0100007F:3419 00000000:0000 0A 0:0 00:0 0 0 0 1\n", true).empty());
  // Bad hex, bad port width, missing inode.
  CHECK(parse_proc_net_tcp("   0: 0100007G:3419 00000000:0000 0A 0:0 00:0 0 0 0 1\n", false).empty());
  CHECK(parse_proc_net_tcp("   0: 0100007F:34190 00000000:0000 0A 0:0 00:0 0 0 0 1\n", false).empty());
  CHECK(parse_proc_net_tcp("   0: 0100007F:3419 00000000:0000 0A 0:0 00:0 0 0 0\n", false).empty());
  // One good line among bad ones still counts; no trailing newline is fine.
  auto one = parse_proc_net_tcp("junk\n   0: 0100007F:0050 00000000:0000 0A 0:0 00:0 0 0 0 7", false);
  REQUIRE(one.size() == 1);
  CHECK(one[0].port == 80);
  CHECK(one[0].inode == 7);
}

TEST_CASE("socket links name their inode; other links do not") {
  CHECK(socket_inode_of_link("socket:[51234]") == 51234u);
  CHECK_FALSE(socket_inode_of_link("pipe:[51234]").has_value());
  CHECK_FALSE(socket_inode_of_link("socket:[]").has_value());
  CHECK_FALSE(socket_inode_of_link("socket:[12a]").has_value());
  CHECK_FALSE(socket_inode_of_link("/dev/null").has_value());
  CHECK_FALSE(socket_inode_of_link("anon_inode:[eventfd]").has_value());
}

TEST_CASE("/proc/PID/stat: comm may hold spaces and parentheses") {
  auto st = parse_proc_stat("1234 (code-server) S 1 1234 1234 0 -1 4194560 ...");
  REQUIRE(st);
  CHECK(st->pid == 1234);
  CHECK(st->comm == "code-server");
  CHECK(st->state == 'S');
  CHECK(st->ppid == 1);
  CHECK(st->pgrp == 1234);
  auto tricky = parse_proc_stat("77 (a) b (c)) Z 5 6 6 0");
  REQUIRE(tricky);
  CHECK(tricky->comm == "a) b (c)");
  CHECK(tricky->state == 'Z');
  CHECK(tricky->ppid == 5);
  CHECK_FALSE(parse_proc_stat(""));
  CHECK_FALSE(parse_proc_stat("12 (x"));
  CHECK_FALSE(parse_proc_stat("x (y) S 1 2"));
  CHECK_FALSE(parse_proc_stat("12 (y) S"));
}
