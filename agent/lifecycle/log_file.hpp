// A log file that rotates by size: NAME, NAME.1, ... NAME.(files-1), oldest dropped. Script
// output goes here so a person can read it after the fact (and `airlock logs` can send it).
//
// Writes are synchronous on the loop: lines are small and the state directory is local, and a
// write that fails is counted and reported once rather than stopping the script.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/util/result.hpp"
#include "common/util/unique_fd.hpp"

namespace airlock::agent {

class RotatingLog {
 public:
  RotatingLog(std::string path, size_t max_bytes, int files);

  Status open();
  // Appends one line (a newline is added).
  void write_line(std::string_view line);
  const std::string& path() const { return path_; }
  uint64_t rotations() const { return rotations_; }

 private:
  void rotate();

  std::string path_;
  size_t max_bytes_;
  int files_;
  UniqueFd fd_;
  size_t size_ = 0;
  uint64_t rotations_ = 0;
  bool reported_error_ = false;
};

}  // namespace airlock::agent
