// A pty stream's open arguments are JSON from any client: the agent must check them without
// crashing or throwing, and what it accepts must say the same thing when the CLI writes it back.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/pty/open_args.hpp"

using namespace airlock::pty;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded()) return 0;
  auto parsed = parse_open_args(json);
  if (!parsed) return 0;
  const OpenArgs& a = *parsed;
  if (!valid_session_id(a.session) || !valid_size(a.cols, a.rows) || a.command.size() > kMaxCommandLength)
    __builtin_trap();
  auto again = parse_open_args(to_json(a));
  if (!again || again->session != a.session || again->cols != a.cols || again->rows != a.rows ||
      again->command != a.command || again->reattach != a.reattach)
    __builtin_trap();
  return 0;
}
