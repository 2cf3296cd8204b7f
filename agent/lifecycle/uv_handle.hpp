// RAII for the C handles the agent's lifecycle code holds: libuv handles and file descriptors.
// A handle is closed by a destructor, never by remembering.
#pragma once

#include <unistd.h>
#include <uv.h>

#include <utility>

namespace airlock::agent {

// Owns one libuv handle of type T on the heap. libuv needs the memory until the close callback
// has run, so the destructor hands it to uv_close and the callback frees it. After uv_close libuv
// calls no other callback of that handle, so an owner may die with the handle still active.
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

  // Runs a libuv init function on fresh memory. Some functions (uv_spawn) leave the handle
  // initialised even when they fail: pass closes_on_failure so it is closed properly then too.
  template <typename Init>
  int init(Init&& init_fn, bool closes_on_failure = false) {
    reset();
    T* h = new T{};
    int rc = init_fn(h);
    if (rc != 0 && !closes_on_failure) {
      delete h;
      return rc;
    }
    h_ = h;
    return rc;
  }

  void reset() {
    if (!h_) return;
    auto* base = reinterpret_cast<uv_handle_t*>(h_);
    base->data = nullptr;
    if (!uv_is_closing(base)) uv_close(base, [](uv_handle_t* h) { delete reinterpret_cast<T*>(h); });
    h_ = nullptr;
  }

  T* get() const { return h_; }
  T* operator->() const { return h_; }
  explicit operator bool() const { return h_ != nullptr; }
  uv_handle_t* handle() const { return reinterpret_cast<uv_handle_t*>(h_); }
  uv_stream_t* stream() const { return reinterpret_cast<uv_stream_t*>(h_); }

 private:
  T* h_ = nullptr;
};

// An owned file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  int release() { return std::exchange(fd_, -1); }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace airlock::agent
