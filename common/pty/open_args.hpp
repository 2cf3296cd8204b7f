// The `pty` stream's open arguments (docs/PROTOCOL.md "Open arguments"; the keys and limits are
// the kOpen* constants of protocol.hpp): what a viewer asks for when it opens the stream, checked
// by the agent and built by the clients.
//
//   {"session": "s1", "cols": 120, "rows": 40, "command": "top", "reattach": true}
//
// Pure: JSON in, a value or the reason out. The agent answers a bad request with one ERROR frame
// carrying that reason; the fuzzer feeds it arbitrary JSON.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/pty/protocol.hpp"
#include "common/util/result.hpp"

namespace airlock::pty {

struct OpenArgs {
  std::string session;
  uint16_t cols = 0;
  uint16_t rows = 0;
  std::string command;    // empty: an interactive login shell
  bool reattach = false;  // a client coming back after a lost connection: the session must exist
};

Result<OpenArgs> parse_open_args(const nlohmann::json& args);
nlohmann::json to_json(const OpenArgs& args);

}  // namespace airlock::pty
