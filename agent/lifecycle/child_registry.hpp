// The agent's child registry and reaper.
//
// The agent is its container's PID 1 (or, under a process manager, a child subreaper via
// prctl(PR_SET_CHILD_SUBREAPER)), so every orphan in the workspace becomes its child and must be
// reaped, or zombies pile up. But the agent also has children whose exit status someone is
// waiting for, and reaping one of those would steal it. THE RULE:
//
//   1. Children started with uv_spawn on the agent's loop belong to libuv. The registry finds
//      them itself (uv_walk over the loop's uv_process_t handles) and never reaps them; libuv's
//      own SIGCHLD handler does, and calls the process's exit_cb.
//   2. Children forked any other way (forkpty for a terminal, fork/exec in the SSH server) must be
//      registered IN THE SAME LOOP TURN AS THE FORK, before control returns to the loop:
//        - watch(pid, on_exit): the registry reaps it and reports its exit status (preferred);
//        - claim(pid): the registry keeps its hands off while the Claim lives; the owner calls
//          waitpid(pid) itself.
//      Because the registry only reaps from a loop callback, a child registered before the
//      loop runs again can never be taken by mistake.
//   3. Every other child is an orphan (a daemon double-forked by a script, a re-parented
//      grandchild): it is reaped at once, and counted.
//
// How it reaps without stealing: on SIGCHLD it peeks with waitid(P_ALL, WEXITED|WNOHANG|WNOWAIT).
// An exited child that nobody owns is reaped with waitpid(pid). When the peek shows an owned
// child (libuv not having run its handler yet), it cannot see past it, so it lists its zombie
// children from /proc and reaps the unowned ones one by one by pid. Nothing ever calls
// waitpid(-1).
//
// Threads: everything here runs on the loop thread; no other thread may fork children of the
// agent's process without registering them the same way from the loop.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <vector>

#include "common/net/uv_handle.hpp"
#include "common/util/result.hpp"
#include "common/workspace/proc_net.hpp"

namespace airlock::agent {

// How a child ended: exit_code when it exited, term_signal when a signal killed it.
struct ChildExit {
  int pid = 0;
  int exit_code = -1;
  int term_signal = 0;
};

class ChildRegistry {
 public:
  using ExitCallback = std::function<void(const ChildExit&)>;

  // A registration; destroying it forgets the pid (a watched child then counts as an orphan).
  class Registration {
   public:
    Registration() = default;
    Registration(ChildRegistry* registry, int pid) : registry_(registry), pid_(pid) {}
    ~Registration() { reset(); }
    Registration(Registration&& o) noexcept : registry_(std::exchange(o.registry_, nullptr)), pid_(o.pid_) {}
    Registration& operator=(Registration&& o) noexcept {
      if (this != &o) {
        reset();
        registry_ = std::exchange(o.registry_, nullptr);
        pid_ = o.pid_;
      }
      return *this;
    }
    void reset() {
      if (registry_) registry_->forget(pid_);
      registry_ = nullptr;
    }
    int pid() const { return pid_; }

   private:
    ChildRegistry* registry_ = nullptr;
    int pid_ = 0;
  };

  explicit ChildRegistry(uv_loop_t* loop);
  ~ChildRegistry();
  ChildRegistry(const ChildRegistry&) = delete;
  ChildRegistry& operator=(const ChildRegistry&) = delete;

  // Starts reaping: a SIGCHLD watcher plus a slow sweep in case a signal was coalesced away.
  Status start();
  void stop();

  // Rule 2 above. The registry must outlive the registrations it hands out.
  [[nodiscard]] Registration watch(int pid, ExitCallback on_exit);
  [[nodiscard]] Registration claim(int pid);

  // One reaping pass (SIGCHLD runs it; tests and shutdown may too).
  void reap();

  uint64_t reaped_orphans() const { return reaped_orphans_; }
  void set_on_orphan_reaped(std::function<void(const ChildExit&)> cb) { on_orphan_ = std::move(cb); }

 private:
  void forget(int pid);
  std::set<int> owned_pids() const;
  void reap_orphan(int pid);
  void reap_unowned_zombies(const std::set<int>& owned);

  uv_loop_t* loop_;
  net::UvHandle<uv_signal_t> sigchld_;
  net::UvHandle<uv_timer_t> sweep_;
  std::map<int, ExitCallback> watched_;
  std::set<int> claimed_;
  uint64_t reaped_orphans_ = 0;
  std::function<void(const ChildExit&)> on_orphan_;
};

ChildExit decode_wait_status(int pid, int status);

// Every process descending from `root` (children, grandchildren, ...), zombies included, read
// from /proc.
std::vector<workspace::ProcStat> descendants_of(int root);
// This process's children that are zombies, read from /proc.
std::vector<int> zombie_children();

}  // namespace airlock::agent
