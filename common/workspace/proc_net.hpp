// Pure parsers for the /proc files the agent reads to report listening TCP ports and to find its
// child processes. They take file text and return values; the agent does the reading.
//
//   /proc/net/tcp, /proc/net/tcp6  one socket per line:
//     sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode
//      0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 51234 ...
//     addresses are the kernel's in-memory words in hex (so IPv4 is little-endian on x86), ports
//     big-endian hex; state 0A is TCP_LISTEN.
//   /proc/PID/fd/N -> "socket:[51234]" links a socket inode to a process.
//   /proc/PID/stat  "PID (comm) S PPID PGRP ..." where comm may itself contain spaces and ")".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::workspace {

inline constexpr int kTcpStateListen = 0x0A;

struct TcpSocket {
  std::string address;  // "127.0.0.1", "::", "::ffff:10.0.0.5"
  uint16_t port = 0;
  int state = 0;        // kernel TCP state; kTcpStateListen for listeners
  uint32_t uid = 0;
  uint64_t inode = 0;
  bool ipv6 = false;
};

// Every well-formed socket line of a /proc/net/tcp (ipv6=false) or tcp6 (ipv6=true) table;
// malformed lines are skipped, so a kernel that adds columns never breaks the agent.
std::vector<TcpSocket> parse_proc_net_tcp(std::string_view text, bool ipv6);

// Only the sockets in LISTEN state.
std::vector<TcpSocket> listening_sockets(std::string_view text, bool ipv6);

// "socket:[51234]" -> 51234; anything else (pipes, files, anon inodes) -> nullopt.
std::optional<uint64_t> socket_inode_of_link(std::string_view link_target);

struct ProcStat {
  int pid = 0;
  std::string comm;
  char state = '?';  // R, S, D, Z, T, ...
  int ppid = 0;
  int pgrp = 0;
};

// One /proc/PID/stat line; nullopt when it is not one.
std::optional<ProcStat> parse_proc_stat(std::string_view text);

}  // namespace airlock::workspace
