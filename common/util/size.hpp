// Byte sizes as people type them on command lines: "65536", "64KiB", "64k", "1MiB", "8M", "1GiB"
// (binary units whichever way they are spelt). format_size() writes what parse_size() reads back.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/util/result.hpp"

namespace airlock {

Result<uint64_t> parse_size(std::string_view text);
std::string format_size(uint64_t bytes);  // "64KiB", "1GiB", "1000"

}  // namespace airlock
