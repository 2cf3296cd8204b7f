// libFuzzer target for the /proc parsers the agent feeds with kernel text: tcp tables, fd links
// and stat lines. They must never crash or read out of bounds, whatever the text.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/workspace/health.hpp"
#include "common/workspace/proc_net.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (bool ipv6 : {false, true})
    for (const auto& s : airlock::workspace::parse_proc_net_tcp(text, ipv6))
      if (s.address.empty()) __builtin_trap();
  (void)airlock::workspace::socket_inode_of_link(text);
  (void)airlock::workspace::parse_proc_stat(text);
  // The health check's status line and URL parsers take untrusted text too.
  (void)airlock::workspace::parse_http_status_line(text);
  (void)airlock::workspace::parse_http_url(text);
  return 0;
}
