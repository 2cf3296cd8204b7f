// RAII for the C handles the pty service holds: file descriptors and libuv handles.
//
// libuv closes handles asynchronously, so a handle lives on the heap apart from its owner: the
// destructor clears handle->data (late callbacks see nullptr and do nothing) and starts uv_close,
// whose callback frees the memory on a later loop turn. An owner may therefore be destroyed at
// any time, even from inside one of its own callbacks, as long as that callback returns at once.
#pragma once

#include <unistd.h>

#include <utility>

#include <uv.h>

namespace airlock::agent::pty {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

template <typename T>
class UvHandle {
 public:
  UvHandle() = default;
  // Adopts a handle whose uv_*_init succeeded.
  explicit UvHandle(T* initialized) : handle_(initialized) {}
  UvHandle(UvHandle&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  UvHandle& operator=(UvHandle&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  ~UvHandle() { reset(); }

  T* get() const { return handle_; }
  T* operator->() const { return handle_; }
  explicit operator bool() const { return handle_ != nullptr; }

  // Gives up ownership without closing: the caller closes it later with close_and_free().
  T* release() { return std::exchange(handle_, nullptr); }

  void reset() {
    if (handle_ != nullptr) close_and_free(std::exchange(handle_, nullptr));
  }

  static void close_and_free(T* handle) {
    handle->data = nullptr;
    auto* base = reinterpret_cast<uv_handle_t*>(handle);
    if (!uv_is_closing(base)) uv_close(base, [](uv_handle_t* h) { delete reinterpret_cast<T*>(h); });
  }

 private:
  T* handle_ = nullptr;
};

// A heap request that owns the bytes it writes.
struct WriteRequest {
  uv_write_t req{};
  std::string bytes;
};

}  // namespace airlock::agent::pty
