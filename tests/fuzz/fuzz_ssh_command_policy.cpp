// Exec commands and env/signal names arrive from any SSH client: classify them without crashing,
// hanging or reading out of bounds, whatever the bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/ssh/command_policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto tool = airlock::ssh::classify_command(text);
  (void)airlock::ssh::transfer_tool_name(tool);
  (void)airlock::ssh::is_valid_env_name(text);
  (void)airlock::ssh::signal_from_name(text);
  // A transfer found in a command stays found behind another command.
  if (tool != airlock::ssh::TransferTool::none && size < 4096) {
    std::string chained = "true; ";
    chained += text;
    if (airlock::ssh::classify_command(chained) == airlock::ssh::TransferTool::none) __builtin_trap();
  }
  return 0;
}
