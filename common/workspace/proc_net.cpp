#include "common/workspace/proc_net.hpp"

#include <bit>
#include <charconv>

namespace airlock::workspace {
namespace {

// Splits on runs of spaces and tabs, the way the kernel pads these tables.
std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

template <typename T>
bool parse_uint(std::string_view text, int base, T& out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, base);
  return ec == std::errc() && end == text.data() + text.size();
}

bool hex_nibble(char c, uint8_t& v) {
  if (c >= '0' && c <= '9') v = static_cast<uint8_t>(c - '0');
  else if (c >= 'A' && c <= 'F') v = static_cast<uint8_t>(c - 'A' + 10);
  else if (c >= 'a' && c <= 'f') v = static_cast<uint8_t>(c - 'a' + 10);
  else return false;
  return true;
}

// The kernel prints each 32-bit word of the address with %08X of its in-memory value, so on a
// little-endian machine the bytes of each word appear reversed.
bool address_bytes(std::string_view hex, size_t length, uint8_t* out) {
  if (hex.size() != length * 2) return false;
  for (size_t word = 0; word < length / 4; ++word) {
    uint32_t value = 0;
    for (size_t i = 0; i < 8; ++i) {
      uint8_t n;
      if (!hex_nibble(hex[word * 8 + i], n)) return false;
      value = (value << 4) | n;
    }
    // /proc is read on the machine that wrote it, so the host's byte order is the right one.
    uint8_t* p = out + word * 4;
    if constexpr (std::endian::native == std::endian::little) {
      p[0] = static_cast<uint8_t>(value);
      p[1] = static_cast<uint8_t>(value >> 8);
      p[2] = static_cast<uint8_t>(value >> 16);
      p[3] = static_cast<uint8_t>(value >> 24);
    } else {
      p[0] = static_cast<uint8_t>(value >> 24);
      p[1] = static_cast<uint8_t>(value >> 16);
      p[2] = static_cast<uint8_t>(value >> 8);
      p[3] = static_cast<uint8_t>(value);
    }
  }
  return true;
}

std::string format_ipv4(const uint8_t* b) {
  return std::to_string(b[0]) + "." + std::to_string(b[1]) + "." + std::to_string(b[2]) + "." + std::to_string(b[3]);
}

// RFC 5952 text: lower-case hex, the longest run of two or more zero groups as "::", and
// IPv4-mapped addresses as ::ffff:a.b.c.d.
std::string format_ipv6(const uint8_t* b) {
  bool mapped = true;
  for (int i = 0; i < 10; ++i) mapped = mapped && b[i] == 0;
  if (mapped && b[10] == 0xff && b[11] == 0xff) return "::ffff:" + format_ipv4(b + 12);
  uint16_t groups[8];
  for (int i = 0; i < 8; ++i) groups[i] = static_cast<uint16_t>((b[2 * i] << 8) | b[2 * i + 1]);
  int best_start = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (groups[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && groups[j] == 0) ++j;
    if (j - i > best_len && j - i >= 2) {
      best_start = i;
      best_len = j - i;
    }
    i = j;
  }
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 8; ++i) {
    if (i == best_start) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    char buf[4];
    int n = 0;
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
      int d = (groups[i] >> shift) & 0xf;
      if (d || started || shift == 0) {
        buf[n++] = digits[d];
        started = true;
      }
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::optional<TcpSocket> parse_line(std::string_view line, bool ipv6) {
  auto f = fields(line);
  // sl, local, remote, st, queues, timer, retransmits, uid, timeout, inode
  if (f.size() < 10) return std::nullopt;
  if (f[0].empty() || f[0].back() != ':') return std::nullopt;
  auto colon = f[1].find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view addr_hex = f[1].substr(0, colon), port_hex = f[1].substr(colon + 1);
  TcpSocket s;
  s.ipv6 = ipv6;
  uint8_t bytes[16];
  if (!address_bytes(addr_hex, ipv6 ? 16 : 4, bytes)) return std::nullopt;
  s.address = ipv6 ? format_ipv6(bytes) : format_ipv4(bytes);
  if (port_hex.size() != 4 || !parse_uint(port_hex, 16, s.port)) return std::nullopt;
  unsigned state = 0;
  if (f[3].size() != 2 || !parse_uint(f[3], 16, state)) return std::nullopt;
  s.state = static_cast<int>(state);
  if (!parse_uint(f[7], 10, s.uid)) return std::nullopt;
  if (!parse_uint(f[9], 10, s.inode)) return std::nullopt;
  return s;
}

}  // namespace

std::vector<TcpSocket> parse_proc_net_tcp(std::string_view text, bool ipv6) {
  std::vector<TcpSocket> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    if (auto s = parse_line(text.substr(pos, end - pos), ipv6)) out.push_back(std::move(*s));
    pos = end + 1;
  }
  return out;
}

std::vector<TcpSocket> listening_sockets(std::string_view text, bool ipv6) {
  std::vector<TcpSocket> out;
  for (auto& s : parse_proc_net_tcp(text, ipv6))
    if (s.state == kTcpStateListen) out.push_back(std::move(s));
  return out;
}

std::optional<uint64_t> socket_inode_of_link(std::string_view link) {
  constexpr std::string_view prefix = "socket:[";
  if (link.size() < prefix.size() + 2 || link.substr(0, prefix.size()) != prefix || link.back() != ']')
    return std::nullopt;
  uint64_t inode = 0;
  if (!parse_uint(link.substr(prefix.size(), link.size() - prefix.size() - 1), 10, inode)) return std::nullopt;
  return inode;
}

std::optional<ProcStat> parse_proc_stat(std::string_view text) {
  // comm is whatever the process named itself, ")" included: the real end is the last ")".
  auto open = text.find(" (");
  auto close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open + 2) return std::nullopt;
  ProcStat st;
  if (!parse_uint(text.substr(0, open), 10, st.pid)) return std::nullopt;
  st.comm = std::string(text.substr(open + 2, close - open - 2));
  auto rest = fields(text.substr(close + 1));
  if (rest.size() < 3 || rest[0].size() != 1) return std::nullopt;
  st.state = rest[0][0];
  if (!parse_uint(rest[1], 10, st.ppid)) return std::nullopt;
  if (!parse_uint(rest[2], 10, st.pgrp)) return std::nullopt;
  return st;
}

}  // namespace airlock::workspace
