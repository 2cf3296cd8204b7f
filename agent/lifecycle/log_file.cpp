#include "agent/lifecycle/log_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/util/log.hpp"

namespace airlock::agent {

RotatingLog::RotatingLog(std::string path, size_t max_bytes, int files)
    : path_(std::move(path)), max_bytes_(max_bytes < 1024 ? 1024 : max_bytes), files_(files < 1 ? 1 : files) {}

Status RotatingLog::open() {
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return make_error("cannot open " + path_ + ": " + std::strerror(errno));
  fd_.reset(fd);
  struct stat st;
  size_ = fstat(fd, &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
  return Ok{};
}

void RotatingLog::rotate() {
  fd_.reset();
  // NAME.(n-2) -> NAME.(n-1), ..., NAME -> NAME.1; the rename over the oldest drops it.
  for (int i = files_ - 1; i >= 1; --i) {
    std::string from = i == 1 ? path_ : path_ + "." + std::to_string(i - 1);
    std::string to = path_ + "." + std::to_string(i);
    std::rename(from.c_str(), to.c_str());
  }
  if (files_ == 1) ::unlink(path_.c_str());
  ++rotations_;
  size_ = 0;
  if (auto s = open(); !s && !reported_error_) {
    reported_error_ = true;
    LOG_WARN("agent", "script log: %s", s.error().message.c_str());
  }
}

void RotatingLog::write_line(std::string_view line) {
  if (size_ > 0 && size_ + line.size() + 1 > max_bytes_) rotate();
  if (!fd_.valid()) return;
  char nl = '\n';
  iovec iov[2] = {{const_cast<char*>(line.data()), line.size()}, {&nl, 1}};
  ssize_t n;
  do n = ::writev(fd_.get(), iov, 2);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (!reported_error_) {
      reported_error_ = true;
      LOG_WARN("agent", "cannot write script log %s: %s (output still reaches the relay)", path_.c_str(),
               std::strerror(errno));
    }
    return;
  }
  size_ += static_cast<size_t>(n);
}

}  // namespace airlock::agent
