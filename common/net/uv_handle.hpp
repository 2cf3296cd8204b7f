// Owns one libuv handle of type T on the heap.
//
// libuv needs a handle's memory until its close callback has run, so the owner's destructor (or
// reset()) clears handle->data, so that a late callback sees nullptr and does nothing, and starts
// uv_close(), whose callback frees the memory on a later loop turn. After uv_close() libuv calls
// no other callback of that handle, so an owner may be destroyed at any time, even from inside one
// of the handle's own callbacks, as long as that callback returns at once.
#pragma once

#include <utility>

#include <uv.h>

namespace airlock::net {

template <typename T>
class UvHandle {
 public:
  UvHandle() = default;
  ~UvHandle() { reset(); }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  UvHandle(UvHandle&& other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
  UvHandle& operator=(UvHandle&& other) noexcept {
    if (this != &other) {
      reset();
      h_ = std::exchange(other.h_, nullptr);
    }
    return *this;
  }

  // Runs a libuv init function (a lambda calling uv_timer_init(loop, h), ...) on fresh memory and
  // holds the handle if it succeeded; returns its result. Some functions (uv_spawn) leave the
  // handle initialised even when they fail: pass closes_on_failure so it is held, and closed
  // properly, then too.
  template <typename Init>
  int init(Init&& init_fn, bool closes_on_failure = false) {
    reset();
    T* h = new T{};
    const int rc = init_fn(h);
    if (rc != 0 && !closes_on_failure) {
      delete h;
      return rc;
    }
    h_ = h;
    return rc;
  }

  // Closes the handle (if any); its memory is freed once libuv is done with it.
  void reset() {
    if (h_) close_and_free(std::exchange(h_, nullptr));
  }
  // Gives the handle up without closing it: the caller closes it later with close_and_free().
  T* release() { return std::exchange(h_, nullptr); }
  static void close_and_free(T* handle) {
    auto* base = reinterpret_cast<uv_handle_t*>(handle);
    base->data = nullptr;
    if (!uv_is_closing(base)) uv_close(base, [](uv_handle_t* h) { delete reinterpret_cast<T*>(h); });
  }

  T* get() const { return h_; }
  T* operator->() const { return h_; }
  explicit operator bool() const { return h_ != nullptr; }
  uv_handle_t* handle() const { return reinterpret_cast<uv_handle_t*>(h_); }
  uv_stream_t* stream() const { return reinterpret_cast<uv_stream_t*>(h_); }

 private:
  T* h_ = nullptr;
};

}  // namespace airlock::net
