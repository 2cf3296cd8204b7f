#include "common/util/size.hpp"

#include <cctype>
#include <cstdint>

namespace airlock {

Result<uint64_t> parse_size(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return make_error("\"" + std::string(text) + "\" " + why + " (examples: 65536, 64KiB, 8MiB)");
  };
  size_t i = 0;
  uint64_t v = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    if (v > (uint64_t{1} << 50)) return bad("is too large");
    v = v * 10 + static_cast<uint64_t>(text[i++] - '0');
  }
  if (i == 0) return bad("is not a size");
  std::string unit(text.substr(i));
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  uint64_t mult;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k" || unit == "kib" || unit == "kb") mult = uint64_t{1} << 10;
  else if (unit == "m" || unit == "mib" || unit == "mb") mult = uint64_t{1} << 20;
  else if (unit == "g" || unit == "gib" || unit == "gb") mult = uint64_t{1} << 30;
  else return bad("has an unknown unit \"" + unit + "\"");
  if (v > UINT64_MAX / mult) return bad("is too large");
  return v * mult;
}

std::string format_size(uint64_t bytes) {
  if (bytes == 0) return "0";
  if (bytes % (uint64_t{1} << 30) == 0) return std::to_string(bytes >> 30) + "GiB";
  if (bytes % (uint64_t{1} << 20) == 0) return std::to_string(bytes >> 20) + "MiB";
  if (bytes % (uint64_t{1} << 10) == 0) return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes);
}

}  // namespace airlock
