// The terminal (pty) stream: how a viewer and the agent's `pty` service talk over one byte stream.
// docs/PROTOCOL.md "Terminal (pty) stream" says the same; keep them in step.
//
// The stream is opened with JSON arguments (see kOpen* below); after that both directions carry
// frames:
//
//   [type u8][length u32 big-endian][payload: length bytes]
//
// Client -> agent:
//   0x01 INPUT   [bytes]                        what the user typed or pasted; may be empty
//   0x02 RESIZE  [cols u16 BE][rows u16 BE]     the viewer's window size; exactly 4 bytes; cols
//                                               2-1000, rows 1-500
// Agent -> client:
//   0x81 OUTPUT  [bytes]                        what the terminal prints (live output or a repaint)
//   0x82 SESSION [UTF-8 JSON object]            first frame: {"id","state":"new"|"reattached",
//                                               "cols","rows"}
//   0x83 EXIT    [code u32 BE][signal u32 BE]   last frame: the shell ended; code is the exit status
//                                               (128+signal when a signal killed it)
//   0x84 ERROR   [UTF-8 reason]                 last frame before the agent closes this viewer
//
// A type the receiver does not expect, a length over the type's limit, or a payload that breaks
// its layout is malformed: the receiver closes that one connection with a reason.
//
// The codec is sans-I/O: bytes in, frames out, and the reverse. The agent, the CLI, the browser
// gateway and the fuzzer all use it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/util/bytes.hpp"
#include "common/util/result.hpp"

namespace airlock::pty {

inline constexpr std::string_view kServiceName = "pty";

// Stream open arguments (JSON object, common/pty/open_args.hpp):
//   {"session": id, "cols": n, "rows": n, "command": "...", "reattach": bool}
inline constexpr std::string_view kOpenSession = "session";  // required; reattaches when it exists
inline constexpr std::string_view kOpenCols = "cols";        // required
inline constexpr std::string_view kOpenRows = "rows";        // required
inline constexpr std::string_view kOpenCommand = "command";  // optional; new sessions only
inline constexpr std::string_view kOpenReattach = "reattach";  // optional; true: the session must exist
inline constexpr size_t kMaxSessionIdLength = 64;             // [A-Za-z0-9._-]
inline constexpr size_t kMaxCommandLength = 16 * 1024;

enum class FrameType : uint8_t {
  input = 0x01,
  resize = 0x02,
  output = 0x81,
  session = 0x82,
  exit = 0x83,
  error = 0x84,
};

inline constexpr size_t kFrameHeaderSize = 5;               // type u8 + length u32
inline constexpr size_t kMaxDataPayload = 64 * 1024;        // INPUT, OUTPUT
inline constexpr size_t kResizePayload = 4;                 // RESIZE, exactly
inline constexpr size_t kExitPayload = 8;                   // EXIT, exactly
inline constexpr size_t kMaxSessionPayload = 4 * 1024;      // SESSION
inline constexpr size_t kMaxReasonPayload = 1024;           // ERROR
inline constexpr uint16_t kMinCols = 2;                     // libvterm cannot place a wide character in 1
inline constexpr uint16_t kMaxCols = 1000;                  // a screen model costs ~36 B a cell
inline constexpr uint16_t kMaxRows = 500;
inline constexpr uint32_t kMaxExitCode = 255;
inline constexpr uint32_t kMaxExitSignal = 127;

// Who sends the frames a decoder reads: each side accepts only the other side's types.
enum class Sender { client, agent };

struct Input {
  Bytes data;
};
struct Resize {
  uint16_t cols = 0;
  uint16_t rows = 0;
};
struct Output {
  Bytes data;
};
struct SessionInfo {
  std::string id;
  bool reattached = false;
  uint16_t cols = 0;
  uint16_t rows = 0;
};
struct ExitStatus {
  uint32_t code = 0;    // exit status, or 128+signal
  uint32_t signal = 0;  // 0 unless a signal ended the shell
};
struct Closing {
  std::string reason;
};

using Frame = std::variant<Input, Resize, Output, SessionInfo, ExitStatus, Closing>;

FrameType frame_type(const Frame& frame);

// Encoders append one whole frame to `out`. Payloads over a type's limit are the caller's bug; the
// data encoders split long data into several frames instead, and reasons are truncated.
void encode(const Frame& frame, Bytes& out);
void encode_input(ByteView data, Bytes& out);
void encode_output(ByteView data, Bytes& out);
void encode_resize(uint16_t cols, uint16_t rows, Bytes& out);
void encode_session(const SessionInfo& info, Bytes& out);
void encode_exit(ExitStatus status, Bytes& out);
void encode_error(std::string_view reason, Bytes& out);

// Validation shared by the decoder and the agent's open arguments.
bool valid_size(uint32_t cols, uint32_t rows);
bool valid_session_id(std::string_view id);
bool valid_utf8(std::string_view text);

// Incremental decoder for one direction. Buffers at most one partial frame plus the bytes of the
// last push: a length over the type's limit fails as soon as the header arrives.
class FrameDecoder {
 public:
  explicit FrameDecoder(Sender from) : from_(from) {}

  void push(ByteView bytes);
  // The next whole frame, nullopt when more bytes are needed, or the first malformation (and the
  // same error on every later call: a malformed stream cannot be resynchronised).
  Result<std::optional<Frame>> next();
  // Bytes held of a frame not yet complete; non-zero at end of stream means it was cut short.
  size_t buffered() const { return buffer_.size() - offset_; }

 private:
  Result<std::optional<Frame>> fail(std::string message);

  Sender from_;
  Bytes buffer_;
  size_t offset_ = 0;
  std::optional<Error> failed_;
};

}  // namespace airlock::pty
