#include "common/pty/protocol.hpp"

#include <cstdio>

#include <nlohmann/json.hpp>

namespace airlock::pty {
namespace {

void put_header(FrameType type, size_t length, Bytes& out) {
  uint8_t header[kFrameHeaderSize];
  header[0] = static_cast<uint8_t>(type);
  store_be32(header + 1, static_cast<uint32_t>(length));
  out.insert(out.end(), header, header + kFrameHeaderSize);
}

void put_frame(FrameType type, ByteView payload, Bytes& out) {
  put_header(type, payload.size(), out);
  out.insert(out.end(), payload.begin(), payload.end());
}

// Long data becomes several frames so no frame exceeds the limit; empty data is one empty frame.
void put_data(FrameType type, ByteView data, Bytes& out) {
  if (data.empty()) {
    put_header(type, 0, out);
    return;
  }
  for (size_t at = 0; at < data.size(); at += kMaxDataPayload) {
    put_frame(type, data.subspan(at, std::min(kMaxDataPayload, data.size() - at)), out);
  }
}

std::string hex_type(uint8_t type) {
  char text[8];
  std::snprintf(text, sizeof text, "0x%02x", type);
  return text;
}

const char* type_name(FrameType type) {
  switch (type) {
    case FrameType::input: return "INPUT";
    case FrameType::resize: return "RESIZE";
    case FrameType::output: return "OUTPUT";
    case FrameType::session: return "SESSION";
    case FrameType::exit: return "EXIT";
    case FrameType::error: return "ERROR";
  }
  return "?";
}

bool known_type(uint8_t type) {
  switch (static_cast<FrameType>(type)) {
    case FrameType::input:
    case FrameType::resize:
    case FrameType::output:
    case FrameType::session:
    case FrameType::exit:
    case FrameType::error:
      return true;
  }
  return false;
}

Sender sender_of(FrameType type) {
  return static_cast<uint8_t>(type) & 0x80 ? Sender::agent : Sender::client;
}

size_t max_payload(FrameType type) {
  switch (type) {
    case FrameType::input:
    case FrameType::output: return kMaxDataPayload;
    case FrameType::resize: return kResizePayload;
    case FrameType::session: return kMaxSessionPayload;
    case FrameType::exit: return kExitPayload;
    case FrameType::error: return kMaxReasonPayload;
  }
  return 0;
}

Result<SessionInfo> parse_session(std::string_view text) {
  if (!valid_utf8(text)) return make_error("SESSION payload is not UTF-8");
  auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return make_error("SESSION payload is not a JSON object");
  SessionInfo info;
  auto id = doc.find("id");
  if (id == doc.end() || !id->is_string() || !valid_session_id(id->get_ref<const std::string&>())) {
    return make_error("SESSION id is missing or not a valid session id");
  }
  info.id = id->get<std::string>();
  auto state = doc.find("state");
  if (state == doc.end() || !state->is_string()) return make_error("SESSION state is missing");
  if (*state == "new") {
    info.reattached = false;
  } else if (*state == "reattached") {
    info.reattached = true;
  } else {
    return make_error("SESSION state must be \"new\" or \"reattached\"");
  }
  auto cols = doc.find("cols");
  auto rows = doc.find("rows");
  if (cols == doc.end() || rows == doc.end() || !cols->is_number_unsigned() || !rows->is_number_unsigned() ||
      cols->get<uint64_t>() > kMaxCols || rows->get<uint64_t>() > kMaxRows ||
      !valid_size(cols->get<uint32_t>(), rows->get<uint32_t>())) {
    return make_error("SESSION cols/rows are missing or out of range");
  }
  info.cols = cols->get<uint16_t>();
  info.rows = rows->get<uint16_t>();
  return info;
}

}  // namespace

FrameType frame_type(const Frame& frame) {
  struct {
    FrameType operator()(const Input&) const { return FrameType::input; }
    FrameType operator()(const Resize&) const { return FrameType::resize; }
    FrameType operator()(const Output&) const { return FrameType::output; }
    FrameType operator()(const SessionInfo&) const { return FrameType::session; }
    FrameType operator()(const ExitStatus&) const { return FrameType::exit; }
    FrameType operator()(const Closing&) const { return FrameType::error; }
  } visitor;
  return std::visit(visitor, frame);
}

void encode_input(ByteView data, Bytes& out) { put_data(FrameType::input, data, out); }
void encode_output(ByteView data, Bytes& out) { put_data(FrameType::output, data, out); }

void encode_resize(uint16_t cols, uint16_t rows, Bytes& out) {
  uint8_t payload[kResizePayload];
  store_be16(payload, cols);
  store_be16(payload + 2, rows);
  put_frame(FrameType::resize, payload, out);
}

void encode_session(const SessionInfo& info, Bytes& out) {
  nlohmann::json doc = {
      {"id", info.id}, {"state", info.reattached ? "reattached" : "new"}, {"cols", info.cols}, {"rows", info.rows}};
  put_frame(FrameType::session, as_bytes(doc.dump()), out);
}

void encode_exit(ExitStatus status, Bytes& out) {
  uint8_t payload[kExitPayload];
  store_be32(payload, status.code);
  store_be32(payload + 4, status.signal);
  put_frame(FrameType::exit, payload, out);
}

void encode_error(std::string_view reason, Bytes& out) {
  // Cut on a character boundary so the reason stays valid UTF-8.
  size_t length = std::min(reason.size(), kMaxReasonPayload);
  while (length > 0 && length < reason.size() && (static_cast<uint8_t>(reason[length]) & 0xc0) == 0x80) --length;
  put_frame(FrameType::error, as_bytes(reason.substr(0, length)), out);
}

void encode(const Frame& frame, Bytes& out) {
  struct {
    Bytes& out;
    void operator()(const Input& f) const { encode_input(f.data, out); }
    void operator()(const Resize& f) const { encode_resize(f.cols, f.rows, out); }
    void operator()(const Output& f) const { encode_output(f.data, out); }
    void operator()(const SessionInfo& f) const { encode_session(f, out); }
    void operator()(const ExitStatus& f) const { encode_exit(f, out); }
    void operator()(const Closing& f) const { encode_error(f.reason, out); }
  } visitor{out};
  std::visit(visitor, frame);
}

bool valid_size(uint32_t cols, uint32_t rows) {
  return cols >= kMinCols && cols <= kMaxCols && rows >= 1 && rows <= kMaxRows;
}

bool valid_session_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxSessionIdLength) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-';
    if (!ok) return false;
  }
  return true;
}

bool valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    uint8_t c = static_cast<uint8_t>(text[i]);
    size_t extra;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      extra = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      extra = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= text.size()) return false;
    for (size_t k = 1; k <= extra; ++k) {
      uint8_t cc = static_cast<uint8_t>(text[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    if ((extra == 2 && cp < 0x800) || (extra == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

void FrameDecoder::push(ByteView bytes) {
  if (failed_) return;
  // Drop consumed bytes first so the buffer never holds more than one partial frame plus a push.
  if (offset_ > 0) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(offset_));
    offset_ = 0;
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

Result<std::optional<Frame>> FrameDecoder::fail(std::string message) {
  failed_ = make_error(std::move(message));
  buffer_.clear();
  offset_ = 0;
  return *failed_;
}

Result<std::optional<Frame>> FrameDecoder::next() {
  if (failed_) return *failed_;
  size_t available = buffer_.size() - offset_;
  if (available < 1) return std::optional<Frame>{};
  const uint8_t* at = buffer_.data() + offset_;

  // Judge the type and length as soon as they arrive, before buffering any payload.
  uint8_t raw_type = at[0];
  if (!known_type(raw_type)) return fail("frame type " + hex_type(raw_type) + " is unknown");
  auto type = static_cast<FrameType>(raw_type);
  if (sender_of(type) != from_) {
    return fail(std::string(type_name(type)) + " frame (" + hex_type(raw_type) + ") is not sent by the " +
                (from_ == Sender::client ? "client" : "agent"));
  }
  if (available < kFrameHeaderSize) return std::optional<Frame>{};
  uint32_t length = load_be32(at + 1);
  if (length > max_payload(type)) {
    return fail(std::string(type_name(type)) + " frame of " + std::to_string(length) + " bytes exceeds the limit of " +
                std::to_string(max_payload(type)));
  }
  if (available < kFrameHeaderSize + length) return std::optional<Frame>{};

  ByteView payload(at + kFrameHeaderSize, length);
  std::optional<Frame> frame;
  switch (type) {
    case FrameType::input:
      frame = Input{Bytes(payload.begin(), payload.end())};
      break;
    case FrameType::output:
      frame = Output{Bytes(payload.begin(), payload.end())};
      break;
    case FrameType::resize: {
      if (length != kResizePayload) return fail("RESIZE frame must be 4 bytes, got " + std::to_string(length));
      Resize r{load_be16(payload.data()), load_be16(payload.data() + 2)};
      if (!valid_size(r.cols, r.rows)) {
        return fail("RESIZE " + std::to_string(r.cols) + "x" + std::to_string(r.rows) + " is out of range (" +
                    std::to_string(kMinCols) + "-" + std::to_string(kMaxCols) + " cols, 1-" + std::to_string(kMaxRows) + " rows)");
      }
      frame = r;
      break;
    }
    case FrameType::exit: {
      if (length != kExitPayload) return fail("EXIT frame must be 8 bytes, got " + std::to_string(length));
      ExitStatus s{load_be32(payload.data()), load_be32(payload.data() + 4)};
      if (s.code > kMaxExitCode || s.signal > kMaxExitSignal) return fail("EXIT code or signal is out of range");
      frame = s;
      break;
    }
    case FrameType::session: {
      auto info = parse_session(as_chars(payload));
      if (!info) return fail(info.error().message);
      frame = std::move(*info);
      break;
    }
    case FrameType::error: {
      auto reason = as_chars(payload);
      if (!valid_utf8(reason)) return fail("ERROR reason is not UTF-8");
      frame = Closing{std::string(reason)};
      break;
    }
  }
  offset_ += kFrameHeaderSize + length;
  if (offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  }
  return frame;
}

}  // namespace airlock::pty
