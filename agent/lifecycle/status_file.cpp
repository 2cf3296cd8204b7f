#include "agent/lifecycle/status_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/util/unique_fd.hpp"

namespace airlock::agent {

Status write_file_atomically(const std::string& path, std::string_view content) {
  std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return make_error("cannot write " + tmp + ": " + std::strerror(errno));
  while (!content.empty()) {
    ssize_t n = ::write(fd.get(), content.data(), content.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error("cannot write " + tmp + ": " + std::strerror(errno));
    content.remove_prefix(static_cast<size_t>(n));
  }
  fd.reset();
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return make_error("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
  return Ok{};
}

}  // namespace airlock::agent
