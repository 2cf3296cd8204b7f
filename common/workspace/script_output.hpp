// What the agent keeps of a script's output, without I/O: bytes are cut into lines, the last
// lines are kept in memory for `airlock logs` and the status document, and a metadata value is
// the output trimmed and truncated to a size a status card can show.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::workspace {

// Cuts a byte stream into lines. "\r\n" and "\n" end a line; a line longer than max_line is cut
// into pieces so a program that never prints a newline cannot grow memory without bound.
class LineSplitter {
 public:
  explicit LineSplitter(size_t max_line = 16 * 1024) : max_line_(max_line ? max_line : 1) {}

  // Calls on_line for every complete line in data (without its line ending).
  void feed(std::string_view data, const std::function<void(std::string_view)>& on_line);
  // At end of stream: the unterminated rest, if any, is a line too.
  void finish(const std::function<void(std::string_view)>& on_line);

 private:
  size_t max_line_;
  std::string partial_;
};

// The last `capacity` lines, oldest first, with a count of every line ever added.
class LogTail {
 public:
  explicit LogTail(size_t capacity = 1000) : capacity_(capacity) {}

  void add(std::string_view line);
  // The last n lines (all of them when n is larger), oldest first.
  std::vector<std::string> last(size_t n) const;
  uint64_t total_lines() const { return total_; }
  size_t size() const { return lines_.size(); }

 private:
  size_t capacity_;
  uint64_t total_ = 0;
  std::deque<std::string> lines_;
};

inline constexpr size_t kMetadataValueLimit = 4096;

// Whitespace trimmed at both ends, then cut to at most `limit` bytes without splitting a UTF-8
// character; a cut value ends in "…" (counted in the limit).
std::string trim_output(std::string_view output, size_t limit = kMetadataValueLimit);

}  // namespace airlock::workspace
