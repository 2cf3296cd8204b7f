#include "agent/lifecycle/child_registry.hpp"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/util/log.hpp"

namespace airlock::agent {
namespace {

// The sweep catches a zombie whose SIGCHLD arrived while its pid still looked owned (a libuv
// handle being closed, say). It is slow because SIGCHLD does the real work.
constexpr uint64_t kSweepMs = 10'000;

std::string read_small_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<workspace::ProcStat> all_processes() {
  std::vector<workspace::ProcStat> out;
  DIR* dir = opendir("/proc");
  if (!dir) return out;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    if (auto st = workspace::parse_proc_stat(read_small_file(std::string("/proc/") + e->d_name + "/stat")))
      out.push_back(std::move(*st));
  }
  closedir(dir);
  return out;
}

}  // namespace

ChildExit decode_wait_status(int pid, int status) {
  ChildExit e;
  e.pid = pid;
  if (WIFEXITED(status)) e.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) e.term_signal = WTERMSIG(status);
  return e;
}

std::vector<workspace::ProcStat> descendants_of(int root) {
  std::multimap<int, workspace::ProcStat> children;  // ppid -> process
  for (auto& p : all_processes()) children.emplace(p.ppid, std::move(p));
  std::vector<workspace::ProcStat> out;
  std::vector<int> frontier{root};
  while (!frontier.empty()) {
    int parent = frontier.back();
    frontier.pop_back();
    auto [lo, hi] = children.equal_range(parent);
    for (auto it = lo; it != hi; ++it) {
      if (it->second.pid == root) continue;
      out.push_back(it->second);
      frontier.push_back(it->second.pid);
    }
  }
  return out;
}

std::vector<int> zombie_children() {
  std::vector<int> out;
  int self = getpid();
  // /proc/self/task/*/children is cheap but needs CONFIG_PROC_CHILDREN; scan /proc without it.
  std::vector<int> kids;
  bool have_children_files = false;
  if (DIR* tasks = opendir("/proc/self/task")) {
    while (dirent* t = readdir(tasks)) {
      if (t->d_name[0] < '0' || t->d_name[0] > '9') continue;
      std::ifstream in(std::string("/proc/self/task/") + t->d_name + "/children");
      if (!in) continue;
      have_children_files = true;
      int pid;
      while (in >> pid) kids.push_back(pid);
    }
    closedir(tasks);
  }
  if (have_children_files) {
    for (int pid : kids) {
      auto st = workspace::parse_proc_stat(read_small_file("/proc/" + std::to_string(pid) + "/stat"));
      if (st && st->state == 'Z') out.push_back(pid);
    }
    return out;
  }
  for (const auto& p : all_processes())
    if (p.ppid == self && p.state == 'Z') out.push_back(p.pid);
  return out;
}

ChildRegistry::ChildRegistry(uv_loop_t* loop) : loop_(loop) {}

ChildRegistry::~ChildRegistry() { stop(); }

Status ChildRegistry::start() {
  int rc = sigchld_.init([&](uv_signal_t* h) { return uv_signal_init(loop_, h); });
  if (rc == 0) {
    sigchld_->data = this;
    rc = uv_signal_start(
        sigchld_.get(), [](uv_signal_t* h, int) { static_cast<ChildRegistry*>(h->data)->reap(); }, SIGCHLD);
  }
  if (rc != 0) return make_error(std::string("cannot watch SIGCHLD: ") + uv_strerror(rc));
  rc = sweep_.init([&](uv_timer_t* h) { return uv_timer_init(loop_, h); });
  if (rc == 0) {
    sweep_->data = this;
    uv_timer_start(
        sweep_.get(), [](uv_timer_t* h) { static_cast<ChildRegistry*>(h->data)->reap(); }, kSweepMs, kSweepMs);
    // The sweep alone must not keep the loop alive.
    uv_unref(sweep_.handle());
  }
  // Children may have exited before the watcher existed.
  reap();
  return Ok{};
}

void ChildRegistry::stop() {
  sigchld_.reset();
  sweep_.reset();
}

ChildRegistry::Registration ChildRegistry::watch(int pid, ExitCallback on_exit) {
  watched_[pid] = std::move(on_exit);
  return Registration(this, pid);
}

ChildRegistry::Registration ChildRegistry::claim(int pid) {
  claimed_.insert(pid);
  return Registration(this, pid);
}

void ChildRegistry::forget(int pid) {
  watched_.erase(pid);
  claimed_.erase(pid);
}

std::set<int> ChildRegistry::owned_pids() const {
  std::set<int> owned(claimed_);
  for (const auto& [pid, _] : watched_) owned.insert(pid);
  uv_walk(
      loop_,
      [](uv_handle_t* h, void* arg) {
        if (h->type != UV_PROCESS || uv_is_closing(h)) return;
        int pid = uv_process_get_pid(reinterpret_cast<uv_process_t*>(h));
        if (pid > 0) static_cast<std::set<int>*>(arg)->insert(pid);
      },
      &owned);
  return owned;
}

void ChildRegistry::reap() {
  // Watched children first: reap each by pid and report to its owner.
  std::vector<std::pair<ChildExit, ExitCallback>> finished;
  for (auto it = watched_.begin(); it != watched_.end();) {
    int status = 0;
    pid_t r;
    do r = waitpid(it->first, &status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == it->first) {
      finished.emplace_back(decode_wait_status(r, status), std::move(it->second));
      it = watched_.erase(it);
    } else if (r < 0 && errno == ECHILD) {
      // Not our child (a registration error): report it as gone rather than wait forever.
      LOG_WARN("agent", "watched pid %d is not a child of the agent; reporting it as gone", it->first);
      finished.emplace_back(ChildExit{it->first, -1, 0}, std::move(it->second));
      it = watched_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [exit, cb] : finished)
    if (cb) cb(exit);

  // Then orphans: peek, and reap only what nobody owns.
  std::optional<std::set<int>> owned;
  for (;;) {
    siginfo_t info;
    std::memset(&info, 0, sizeof info);
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno == EINTR) continue;
      break;  // ECHILD: no children at all
    }
    if (info.si_pid == 0) break;  // children, but none exited
    if (!owned) owned = owned_pids();
    if (owned->count(info.si_pid)) {
      // The next exited child is libuv's or a service's: its owner reaps it. Look past it.
      reap_unowned_zombies(*owned);
      break;
    }
    reap_orphan(info.si_pid);
  }
}

void ChildRegistry::reap_unowned_zombies(const std::set<int>& owned) {
  for (int pid : zombie_children())
    if (!owned.count(pid)) reap_orphan(pid);
}

void ChildRegistry::reap_orphan(int pid) {
  int status = 0;
  pid_t r;
  do r = waitpid(pid, &status, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r != pid) return;
  ++reaped_orphans_;
  ChildExit e = decode_wait_status(pid, status);
  if (e.term_signal) LOG_DEBUG("agent", "reaped orphan pid %d (killed by signal %d)", pid, e.term_signal);
  else LOG_DEBUG("agent", "reaped orphan pid %d (exit status %d)", pid, e.exit_code);
  if (on_orphan_) on_orphan_(e);
}

}  // namespace airlock::agent
