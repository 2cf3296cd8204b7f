// Writes a file so that a reader sees either the old or the new content, never half of one:
// write a temporary file beside it, then rename it over the old one.
#pragma once

#include <string>
#include <string_view>

#include "common/util/result.hpp"

namespace airlock::agent {

Status write_file_atomically(const std::string& path, std::string_view content);

}  // namespace airlock::agent
