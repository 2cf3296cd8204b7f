#include "common/net/uv.hpp"

namespace airlock::net {

struct Timer::State {
  uv_timer_t handle;
  std::function<void()> cb;
};

Timer::Timer(uv_loop_t* loop) : state_(new State) {
  uv_timer_init(loop, &state_->handle);
  state_->handle.data = state_;
}

Timer::~Timer() {
  uv_timer_stop(&state_->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&state_->handle),
           [](uv_handle_t* h) { delete static_cast<State*>(h->data); });
}

void Timer::start(std::chrono::milliseconds after, std::function<void()> cb, std::chrono::milliseconds repeat) {
  state_->cb = std::move(cb);
  uv_timer_start(
      &state_->handle,
      [](uv_timer_t* t) {
        auto* s = static_cast<State*>(t->data);
        // Copy: the callback may restart this timer (replacing s->cb) or destroy its owner.
        auto cb = s->cb;
        if (cb) cb();
      },
      static_cast<uint64_t>(after.count()), static_cast<uint64_t>(repeat.count()));
}

void Timer::stop() { uv_timer_stop(&state_->handle); }
bool Timer::active() const { return uv_is_active(reinterpret_cast<const uv_handle_t*>(&state_->handle)) != 0; }
void Timer::unref() { uv_unref(reinterpret_cast<uv_handle_t*>(&state_->handle)); }

struct Signal::State {
  uv_signal_t handle;
  std::function<void(int)> cb;
};

Signal::Signal(uv_loop_t* loop) : state_(new State) {
  uv_signal_init(loop, &state_->handle);
  state_->handle.data = state_;
}

Signal::~Signal() {
  uv_signal_stop(&state_->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&state_->handle),
           [](uv_handle_t* h) { delete static_cast<State*>(h->data); });
}

void Signal::start(int signum, std::function<void(int)> cb) {
  state_->cb = std::move(cb);
  uv_signal_start(
      &state_->handle,
      [](uv_signal_t* s, int signum) {
        auto cb = static_cast<State*>(s->data)->cb;
        if (cb) cb(signum);
      },
      signum);
}

void Signal::stop() { uv_signal_stop(&state_->handle); }

Loop::Loop() { uv_loop_init(&loop_); }

Loop::~Loop() {
  // Let asynchronous teardown (closing handles, lws contexts) finish, then force what is left.
  for (int i = 0; i < 200 && uv_loop_alive(&loop_); ++i) {
    uv_run(&loop_, UV_RUN_NOWAIT);
    if (uv_loop_alive(&loop_)) {
      uv_sleep(10);
    }
  }
  uv_walk(
      &loop_,
      [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) uv_close(h, nullptr);
      },
      nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

bool run_until(uv_loop_t* loop, const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  if (done()) return true;
  bool expired = false;
  Timer deadline(loop);
  deadline.start(timeout, [&] { expired = true; });
  Timer tick(loop);
  tick.start(std::chrono::milliseconds(10), [] {}, std::chrono::milliseconds(10));
  while (!expired) {
    uv_run(loop, UV_RUN_ONCE);
    if (done()) return true;
  }
  return done();
}

void run_for(uv_loop_t* loop, std::chrono::milliseconds duration) {
  run_until(loop, [] { return false; }, duration);
}

}  // namespace airlock::net
