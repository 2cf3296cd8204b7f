// RAII owners for the C handles the ssh service holds: libssh sessions, channels, events and
// keys, libuv handles, and file descriptors. A handle is released by a destructor, never by
// remembering.
#pragma once

#include <unistd.h>

#include <memory>
#include <utility>

#include <libssh/libssh.h>
#include <libssh/server.h>
#include <uv.h>

namespace airlock::agent::ssh {

struct SessionFree {
  void operator()(ssh_session s) const { ssh_free(s); }
};
struct BindFree {
  void operator()(ssh_bind b) const { ssh_bind_free(b); }
};
struct EventFree {
  void operator()(ssh_event e) const { ssh_event_free(e); }
};
struct KeyFree {
  void operator()(ssh_key k) const { ssh_key_free(k); }
};
struct ChannelFree {
  void operator()(ssh_channel c) const { ssh_channel_free(c); }
};
struct CStringFree {
  void operator()(char* p) const { ssh_string_free_char(p); }
};
using UniqueSession = std::unique_ptr<ssh_session_struct, SessionFree>;
using UniqueBind = std::unique_ptr<ssh_bind_struct, BindFree>;
using UniqueEvent = std::unique_ptr<ssh_event_struct, EventFree>;
using UniqueKey = std::unique_ptr<ssh_key_struct, KeyFree>;
using UniqueChannel = std::unique_ptr<ssh_channel_struct, ChannelFree>;
using UniqueSshString = std::unique_ptr<char, CStringFree>;

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

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

// A libuv handle on the heap: uv_close() is asynchronous, so the memory is freed by the close
// callback, and a callback never runs after the owner is gone (libuv guarantees none is called
// once uv_close() was called).
template <typename T>
class UvHandle {
 public:
  UvHandle() : h_(new T{}) {}
  UvHandle(UvHandle&& other) noexcept : h_(std::exchange(other.h_, nullptr)), initialized_(other.initialized_) {}
  UvHandle& operator=(UvHandle&&) = delete;
  UvHandle(const UvHandle&) = delete;
  ~UvHandle() { close(); }

  T* get() const { return h_; }
  T* operator->() const { return h_; }
  // Call once the uv_*_init() succeeded, so that close() knows to go through uv_close().
  void mark_initialized() { initialized_ = true; }
  bool initialized() const { return initialized_; }
  void close() {
    if (h_ == nullptr) return;
    if (initialized_) {
      uv_handle_t* h = reinterpret_cast<uv_handle_t*>(h_);
      h->data = nullptr;
      if (!uv_is_closing(h)) uv_close(h, [](uv_handle_t* closed) { delete reinterpret_cast<T*>(closed); });
    } else {
      delete h_;
    }
    h_ = nullptr;
    initialized_ = false;
  }

 private:
  T* h_;
  bool initialized_ = false;
};

}  // namespace airlock::agent::ssh
