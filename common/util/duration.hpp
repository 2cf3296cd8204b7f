// Durations as people type them on command lines: "500ms", "5s", "30m", "1h", "7d", "2m30s", or a
// bare number of seconds. format_duration() writes what parse_duration() reads back.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/util/result.hpp"

namespace airlock {

Result<std::chrono::milliseconds> parse_duration(std::string_view text);
std::string format_duration(std::chrono::milliseconds d);  // "1h30m", "5s", "250ms", "1s500ms"

}  // namespace airlock
