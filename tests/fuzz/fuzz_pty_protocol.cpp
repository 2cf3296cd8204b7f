// Frames on a terminal stream come from any client (and, for the CLI, from any agent): the decoder
// must never crash, never buffer more than a frame, and re-encode what it accepts to the same bytes.
#include <cstddef>
#include <cstdint>

#include "common/pty/protocol.hpp"

using namespace airlock;
using namespace airlock::pty;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the direction and how the rest is cut into reads.
  Sender from = (data[0] & 1) ? Sender::agent : Sender::client;
  size_t step = 1 + (data[0] >> 1);
  ByteView input(data + 1, size - 1);

  FrameDecoder decoder(from);
  Bytes reencoded;
  size_t consumed = 0;
  bool failed = false;
  for (size_t at = 0; at < input.size() && !failed; at += step) {
    decoder.push(input.subspan(at, std::min(step, input.size() - at)));
    for (;;) {
      auto next = decoder.next();
      if (!next) {
        failed = true;
        break;
      }
      if (!next->has_value()) break;
      size_t before = reencoded.size();
      encode(**next, reencoded);
      consumed += reencoded.size() - before;
    }
    if (decoder.buffered() > kFrameHeaderSize + kMaxDataPayload + step) __builtin_trap();
  }
  // Frames accepted re-encode to exactly the bytes they came from (SESSION's JSON aside, which
  // may be spelled differently).
  if (!failed && consumed <= input.size()) {
    bool has_session = false;
    FrameDecoder again(from);
    again.push(ByteView(reencoded));
    for (;;) {
      auto next = again.next();
      if (!next) __builtin_trap();  // what the encoder writes must decode
      if (!next->has_value()) break;
      has_session = has_session || frame_type(**next) == FrameType::session;
    }
    if (!has_session && !std::equal(reencoded.begin(), reencoded.end(), input.begin())) __builtin_trap();
  }
  return 0;
}
