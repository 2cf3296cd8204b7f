#include "agent/lifecycle/listening_ports.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include "common/util/log.hpp"
#include "common/workspace/proc_net.hpp"

namespace airlock::agent {
namespace {

constexpr uint64_t kFirstScanMs = 200;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Owner {
  int pid = 0;
  std::string comm;
};

// Walks /proc/*/fd once for all the inodes wanted; the lowest pid wins when a socket is shared
// (a forking server's workers hold their parent's listener).
std::map<uint64_t, Owner> owners_of(const std::map<uint64_t, bool>& wanted) {
  std::map<uint64_t, Owner> out;
  DIR* proc = opendir("/proc");
  if (!proc) return out;
  while (dirent* p = readdir(proc)) {
    if (p->d_name[0] < '0' || p->d_name[0] > '9') continue;
    int pid = std::atoi(p->d_name);
    std::string fd_dir = std::string("/proc/") + p->d_name + "/fd";
    DIR* fds = opendir(fd_dir.c_str());
    if (!fds) continue;  // another user's process, or gone
    while (dirent* f = readdir(fds)) {
      if (f->d_name[0] == '.') continue;
      char target[64];
      ssize_t n = readlinkat(dirfd(fds), f->d_name, target, sizeof target - 1);
      if (n <= 0) continue;
      auto inode = workspace::socket_inode_of_link(std::string_view(target, static_cast<size_t>(n)));
      if (!inode || !wanted.count(*inode)) continue;
      auto it = out.find(*inode);
      if (it != out.end() && it->second.pid < pid) continue;
      std::string comm = read_file(fd_dir.substr(0, fd_dir.size() - 3) + "/comm");
      while (!comm.empty() && comm.back() == '\n') comm.pop_back();
      out[*inode] = Owner{pid, comm};
    }
    closedir(fds);
  }
  closedir(proc);
  return out;
}

}  // namespace

std::vector<workspace::ListeningPort> scan_listening_ports() {
  std::vector<workspace::TcpSocket> sockets = workspace::listening_sockets(read_file("/proc/net/tcp"), false);
  auto v6 = workspace::listening_sockets(read_file("/proc/net/tcp6"), true);
  sockets.insert(sockets.end(), v6.begin(), v6.end());
  std::vector<workspace::ListeningPort> out;
  if (sockets.empty()) return out;
  std::map<uint64_t, bool> wanted;
  for (const auto& s : sockets) wanted[s.inode] = true;
  auto owners = owners_of(wanted);
  for (const auto& s : sockets) {
    workspace::ListeningPort p;
    p.port = s.port;
    p.network = s.ipv6 ? "tcp6" : "tcp";
    p.address = s.address;
    if (auto it = owners.find(s.inode); it != owners.end()) {
      p.pid = it->second.pid;
      p.process = it->second.comm;
    }
    out.push_back(std::move(p));
  }
  auto key = [](const workspace::ListeningPort& p) { return std::tie(p.port, p.network, p.address, p.pid); };
  std::sort(out.begin(), out.end(), [&](const auto& a, const auto& b) { return key(a) < key(b); });
  out.erase(std::unique(out.begin(), out.end(), [&](const auto& a, const auto& b) { return key(a) == key(b); }), out.end());
  return out;
}

ListeningPortScanner::ListeningPortScanner(uv_loop_t* loop, std::chrono::milliseconds interval, ChangeCallback on_change)
    : loop_(loop), interval_(interval), on_change_(std::move(on_change)) {}

void ListeningPortScanner::start() {
  timer_.init([&](uv_timer_t* h) { return uv_timer_init(loop_, h); });
  timer_->data = this;
  // The scan walks /proc synchronously (tens of ms on a busy host): the first one waits a moment
  // so it does not sit between a quick startup script's exit and "ready".
  uint64_t first = std::min<uint64_t>(kFirstScanMs, static_cast<uint64_t>(interval_.count()));
  uv_timer_start(
      timer_.get(), [](uv_timer_t* h) { static_cast<ListeningPortScanner*>(h->data)->scan_now(); }, first,
      static_cast<uint64_t>(interval_.count()));
}

void ListeningPortScanner::stop() { timer_.reset(); }

void ListeningPortScanner::scan_now() {
  auto now = scan_listening_ports();
  auto same = [](const workspace::ListeningPort& a, const workspace::ListeningPort& b) {
    return a.port == b.port && a.network == b.network && a.address == b.address && a.pid == b.pid &&
           a.process == b.process;
  };
  if (std::equal(now.begin(), now.end(), ports_.begin(), ports_.end(), same)) return;
  LOG_DEBUG("agent", "listening ports changed: %zu listening", now.size());
  ports_ = std::move(now);
  if (on_change_) on_change_(ports_);
}

}  // namespace airlock::agent
