// RAII for the libuv handles Airlock uses. libuv closes handles asynchronously: a wrapper's
// destructor starts the close and the handle's memory is freed by the close callback on a later
// loop turn, so a wrapper may be destroyed at any time, even from inside its own callback.
#pragma once

#include <chrono>
#include <functional>

#include <uv.h>

namespace airlock::net {

class Timer {
 public:
  explicit Timer(uv_loop_t* loop);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Calls cb once after `after`, then every `repeat` if repeat > 0. Restarting replaces both.
  void start(std::chrono::milliseconds after, std::function<void()> cb,
             std::chrono::milliseconds repeat = std::chrono::milliseconds(0));
  void stop();
  bool active() const;
  // An unreferenced timer does not keep the loop running by itself.
  void unref();

 private:
  struct State;
  State* state_;
};

class Signal {
 public:
  explicit Signal(uv_loop_t* loop);
  ~Signal();
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;

  void start(int signum, std::function<void(int)> cb);
  void stop();

 private:
  struct State;
  State* state_;
};

// A loop owned by C++ (tests, command-line tools). The destructor lets pending closes finish,
// closes whatever is left, and closes the loop.
class Loop {
 public:
  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  uv_loop_t* get() { return &loop_; }
  operator uv_loop_t*() { return &loop_; }

 private:
  uv_loop_t loop_;
};

// Runs the loop until done() is true or timeout passes; returns done(). done() is checked after
// every loop turn and at least every 10 ms.
bool run_until(uv_loop_t* loop, const std::function<bool()>& done, std::chrono::milliseconds timeout);
// Runs the loop for a while regardless.
void run_for(uv_loop_t* loop, std::chrono::milliseconds duration);

}  // namespace airlock::net
