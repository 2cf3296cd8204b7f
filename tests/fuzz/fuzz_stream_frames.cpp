// Stream frame decoder (common/stream/frames): a payload comes from the peer, through the tunnel,
// so any bytes at all. decode_frame must never crash or read out of bounds, must always move
// forward, and what it accepts must re-encode to exactly the bytes it was decoded from (no field
// dropped or normalised); padding must be all zeros to the end.
#include <cstdint>
#include <cstdlib>
#include <variant>

#include "common/stream/frames.hpp"

using namespace airlock;
using namespace airlock::stream;

namespace {

Bytes encode(const Frame& frame) {
  Bytes out;
  std::visit(
      [&](const auto& f) {
        using T = std::decay_t<decltype(f)>;
        if constexpr (std::is_same_v<T, AckFrame>) {
          encode_ack(out, f);
        } else if constexpr (std::is_same_v<T, ResumeFrame>) {
          encode_resume(out, f);
        } else if constexpr (std::is_same_v<T, PingFrame>) {
          encode_ping(out, f.data);
        } else if constexpr (std::is_same_v<T, PongFrame>) {
          encode_pong(out, f.data);
        } else if constexpr (std::is_same_v<T, OpenFrame>) {
          encode_open(out, f.h, f.service, f.args);
        } else if constexpr (std::is_same_v<T, AcceptFrame>) {
          encode_accept(out, f.h);
        } else if constexpr (std::is_same_v<T, DataFrame>) {
          encode_data(out, f.h, f.offset, f.bytes);
        } else if constexpr (std::is_same_v<T, WindowFrame>) {
          encode_window(out, f.h, f.max_offset);
        } else if constexpr (std::is_same_v<T, FinFrame>) {
          encode_fin(out, f.h, f.final_offset);
        } else if constexpr (std::is_same_v<T, ResetFrame>) {
          encode_reset(out, f.h, f.code, f.reason);
        }
      },
      frame);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteView payload(data, size);
  size_t pos = 0;
  while (pos < payload.size()) {
    const size_t start = pos;
    auto frame = decode_frame(payload, pos);
    if (!frame) {
      if (pos != start) std::abort();  // a failed decode leaves the position alone
      return 0;
    }
    if (pos <= start || pos > payload.size()) std::abort();
    if (std::holds_alternative<PaddingFrame>(*frame)) {
      if (pos != payload.size()) std::abort();
      for (size_t i = start; i < payload.size(); ++i) {
        if (payload[i] != 0) std::abort();
      }
      return 0;
    }
    // Structural checks the decoder promises.
    std::visit(
        [&](const auto& f) {
          using T = std::decay_t<decltype(f)>;
          if constexpr (requires { f.h; }) {
            if (f.h.seq == 0 || f.h.stream == 0 || static_cast<size_t>(f.h.lane) >= kLaneCount) std::abort();
          }
          if constexpr (std::is_same_v<T, ResumeFrame>) {
            if (f.flags & ~kResumeFlagsKnown) std::abort();
          }
        },
        *frame);
    Bytes again = encode(*frame);
    if (again.size() != pos - start || !std::equal(again.begin(), again.end(), data + start)) std::abort();
  }
  return 0;
}
