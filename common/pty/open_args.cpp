#include "common/pty/open_args.hpp"

#include <optional>

namespace airlock::pty {
namespace {

// An integer in [1, max], whether JSON text made it unsigned or C++ code made it a signed int.
std::optional<uint16_t> dimension(const nlohmann::json& args, std::string_view key, uint16_t max) {
  auto it = args.find(key);
  if (it == args.end() || !it->is_number_integer()) return std::nullopt;
  if (it->is_number_unsigned() ? it->get<uint64_t>() > max : (it->get<int64_t>() < 1 || it->get<int64_t>() > max)) {
    return std::nullopt;
  }
  auto value = it->get<uint16_t>();
  if (value < 1) return std::nullopt;
  return value;
}

}  // namespace

Result<OpenArgs> parse_open_args(const nlohmann::json& args) {
  if (!args.is_object()) return make_error("pty: open arguments must be a JSON object");
  OpenArgs out;
  auto session = args.find(kOpenSession);
  if (session == args.end() || !session->is_string() || !valid_session_id(session->get_ref<const std::string&>())) {
    return make_error("pty: \"session\" must be 1-64 characters of [A-Za-z0-9._-]");
  }
  out.session = session->get<std::string>();
  auto cols = dimension(args, kOpenCols, kMaxCols);
  auto rows = dimension(args, kOpenRows, kMaxRows);
  if (!cols || !rows || !valid_size(*cols, *rows)) {
    return make_error("pty: \"cols\" and \"rows\" must be integers, " + std::to_string(kMinCols) + "-" +
                      std::to_string(kMaxCols) + " and 1-" + std::to_string(kMaxRows));
  }
  out.cols = *cols;
  out.rows = *rows;
  if (auto command = args.find(kOpenCommand); command != args.end() && !command->is_null()) {
    if (!command->is_string()) return make_error("pty: \"command\" must be a string");
    out.command = command->get<std::string>();
    if (out.command.size() > kMaxCommandLength || out.command.find('\0') != std::string::npos) {
      return make_error("pty: \"command\" is too long or holds a NUL byte");
    }
  }
  if (auto reattach = args.find(kOpenReattach); reattach != args.end() && !reattach->is_null()) {
    if (!reattach->is_boolean()) return make_error("pty: \"reattach\" must be true or false");
    out.reattach = reattach->get<bool>();
  }
  return out;
}

nlohmann::json to_json(const OpenArgs& args) {
  nlohmann::json j = {{kOpenSession, args.session}, {kOpenCols, args.cols}, {kOpenRows, args.rows}};
  if (!args.command.empty()) j[std::string(kOpenCommand)] = args.command;
  if (args.reattach) j[std::string(kOpenReattach)] = true;
  return j;
}

}  // namespace airlock::pty
