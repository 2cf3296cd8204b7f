// A whole file read at once, and what /proc says about a process: its resident memory and the CPU
// time it has spent. For tests and benches that look at logs, status files and the footprint of
// the relay or the agent.
//
// Header-only, no doctest: the benches use it too.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace airlock::test {

// The file's bytes; empty if it cannot be read.
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// VmRSS of a process in KiB, or -1.
// A "<field>: <n> kB" line of /proc/<pid>/status (VmRSS, RssAnon, RssFile, ...), or -1.
inline long status_kib(pid_t pid, const std::string& field) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
  const std::string prefix = field + ":";
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return std::atol(line.c_str() + prefix.size());
  return -1;
}

inline long vm_rss_kib(pid_t pid) { return status_kib(pid, "VmRSS"); }

// utime + stime of a process (fields 14 and 15 of /proc/<pid>/stat), in seconds; 0 if it is gone.
inline double cpu_seconds(pid_t pid) {
  std::string s = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(s.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && in >> field; ++i)
    if (i == 14 || i == 15) ticks += std::atof(field.c_str());
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace airlock::test
