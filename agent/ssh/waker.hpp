// How an event on the loop (fd readable, child exited, timer) gets its owner to re-evaluate
// state. A handler only records what happened; the Waker, called as the last thing a libuv
// callback does, lets the owner act on it, including destroying the object that saw the event
// (which is why the Waker is two words copied out before the handler runs, not a std::function
// held by that object).
#pragma once

namespace airlock::agent::ssh {

struct Waker {
  void (*fn)(void*) = nullptr;
  void* ctx = nullptr;
  void operator()() const {
    if (fn != nullptr) fn(ctx);
  }
};

}  // namespace airlock::agent::ssh
