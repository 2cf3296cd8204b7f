#include "common/util/duration.hpp"

#include <cctype>
#include <cstdint>

namespace airlock {

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  auto bad = [&] {
    return make_error("\"" + std::string(text) + "\" is not a duration (examples: 500ms, 5s, 30m, 1h, 2m30s, 7d)");
  };
  if (text.empty()) return bad();
  // One or more <number><unit> parts ("2m30s", as format_duration() writes), or a bare number of
  // seconds on its own.
  constexpr uint64_t kMaxMs = 100ull * 365 * 86'400'000;  // a century
  uint64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    uint64_t value = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      value = value * 10 + static_cast<uint64_t>(text[i] - '0');
      if (value > 1'000'000'000ull) return bad();
      ++i;
    }
    if (i == start) return bad();
    size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    uint64_t ms;
    if (unit.empty()) {
      if (start != 0 || i != text.size()) return bad();  // "90" alone, never "1m30"
      ms = value * 1000;
    } else if (unit == "s") ms = value * 1000;
    else if (unit == "ms") ms = value;
    else if (unit == "m") ms = value * 60'000;
    else if (unit == "h") ms = value * 3'600'000;
    else if (unit == "d") ms = value * 86'400'000;
    else return bad();
    total += ms;
    if (total > kMaxMs) return bad();
  }
  return std::chrono::milliseconds(total);
}

std::string format_duration(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  if (ms < 1000) return std::to_string(ms) + "ms";
  std::string out;
  int64_t s = ms / 1000;
  if (s >= 86400) { out += std::to_string(s / 86400) + "d"; s %= 86400; }
  if (s >= 3600) { out += std::to_string(s / 3600) + "h"; s %= 3600; }
  if (s >= 60) { out += std::to_string(s / 60) + "m"; s %= 60; }
  if (s > 0 || out.empty()) out += std::to_string(s) + "s";
  if (ms % 1000 != 0) out += std::to_string(ms % 1000) + "ms";
  return out;
}

}  // namespace airlock
