// Streams (layer 3): every frame type with its exact layout, the limits beside them, and a
// sans-I/O codec. docs/PROTOCOL.md "## Streams" says the same in prose; keep them in step.
//
// A tunnel payload (one WireGuard transport message, at most kMaxPayloadSize bytes) carries one or
// more frames back to back. Integers are big-endian. The tunnel pads every payload with zeros to a
// multiple of 16, so a zero type byte (padding) ends the payload and everything after it must be
// zero too. Any other malformation (unknown type, a frame cut short, a length that runs past the
// payload, a bad lane) breaks the session: the receiver reports why and stops.
//
// Two kinds of frames:
//
//   session frames  [type u8][fields]                   ack, resume, ping, pong: never
//                                                       retransmitted, never acknowledged
//   stream frames   [type u8][lane u8][seq u64][stream id u32][fields]
//                                                       open, accept, data, window, fin, reset
//
// Stream frames carry state, so each has a sequence number in its lane. There are two lanes, one
// per priority class (interactive = 0, bulk = 1): the relay serves interactive packets ahead of
// bulk ones, so payloads of different classes may overtake each other, but within a class they
// stay in order. A payload carries stream frames of one lane only. Each lane counts from seq 1;
// the receiver takes frame seq == (last taken + 1), drops older ones as duplicates, and drops
// newer ones (a gap: something was lost) until the sender goes back to the first missing one.
// Acks are cumulative per lane. That is go-back-N, which is right for a link that loses only
// when a relay or a relay link restarts (a contiguous run of payloads) and otherwise never.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "common/util/bytes.hpp"
#include "common/util/result.hpp"

namespace airlock::stream {

// Stream ids: the side that opens picks. The initiator (the client) opens odd ids 1, 3, 5, ...;
// the responder (the agent) even ids 2, 4, 6, ...; 0 is never a stream.
using StreamId = uint32_t;

// The priority class of a stream, fixed when it opens; also the lane its frames travel in.
enum class Priority : uint8_t {
  interactive = 0,  // keystrokes, small RPCs: always sent first
  bulk = 1,         // file transfers, port-forward bulk: round robin among themselves
};
constexpr size_t kLaneCount = 2;

// ---- frame types -------------------------------------------------------------------------------
enum class FrameType : uint8_t {
  // Tunnel padding: this byte and every byte after it in the payload are zero.
  padding = 0x00,

  // ---- session frames (no lane, no seq) ----
  // Cumulative ack: every stream frame of `lane` up to and including seq `received` was taken.
  // delay = microseconds between taking `received` and sending this ack (for RTT samples).
  //   [lane u8][received u64][delay_us u32]                                       = 14 bytes
  ack = 0x01,
  // "Here is what I have; send me everything after it." Sent when the link came back (resume())
  // and when a gap shows a loss in one lane. Acks `received` in both lanes; for each lane whose
  // rewind bit is set, the peer retransmits every unacknowledged frame after it, in order.
  //   [flags u8][received interactive u64][received bulk u64]                     = 18 bytes
  resume = 0x02,
  // Please echo `data` in a pong (RTT probe).
  //   [data u64]                                                                  = 9 bytes
  ping = 0x03,
  // The answer to a ping.
  //   [data u64]                                                                  = 9 bytes
  pong = 0x04,

  // ---- stream frames: [type][lane u8][seq u64][stream id u32] then the fields below ----
  // Opens a stream in the lane's priority class. The opener may send data right away, up to
  // kInitialWindow, before the accept arrives.
  //   [service_len u8][service][args_len u16][args]
  //   service: 1..kMaxServiceName bytes of [A-Za-z0-9._-]
  //   args:    0..kMaxOpenArgs bytes, a JSON object (empty means {})
  open = 0x10,
  // The accepting side takes the stream (answer to open). Refusing is a reset.
  //   []
  accept = 0x11,
  // Stream bytes [offset, offset + length). Offsets start at 0 and have no holes.
  //   [offset u64][length u16][bytes]
  data = 0x12,
  // Credit: the sender may send stream bytes up to (not including) max_offset. Never shrinks.
  //   [max_offset u64]
  window = 0x13,
  // Half-close: the sender's direction ends at final_offset (= every byte it sent).
  //   [final_offset u64]
  fin = 0x14,
  // Aborts both directions of the stream. Codes below 0x100 are the mux's (kReset*); services
  // pick theirs from 0x100 up.
  //   [code u32][reason_len u8][reason UTF-8]
  reset = 0x15,
};

// resume flags
constexpr uint8_t kResumeReplyWanted = 0x01;       // the sender's link came back: say what you have
constexpr uint8_t kResumeRewindInteractive = 0x02;  // retransmit interactive frames after `received`
constexpr uint8_t kResumeRewindBulk = 0x04;         // retransmit bulk frames after `received`
constexpr uint8_t kResumeFlagsKnown = 0x07;         // every other bit must be zero

// reset codes the mux itself uses
constexpr uint32_t kResetCancelled = 0x00;      // the application gave up on the stream
constexpr uint32_t kResetRefused = 0x01;        // no such service, or policy says no
constexpr uint32_t kResetUnknownStream = 0x02;  // a frame for a stream the receiver never had
constexpr uint32_t kResetStreamClosed = 0x03;   // reserved (frames for a closed stream are dropped, not answered)
constexpr uint32_t kResetMalformedOpen = 0x04;  // service name or arguments are not acceptable
constexpr uint32_t kResetTooManyStreams = 0x05;  // the receiver's limit of open streams
constexpr uint32_t kResetServiceBase = 0x100;   // services' own codes start here

// ---- sizes and limits --------------------------------------------------------------------------
constexpr size_t kMaxPayloadSize = 64 * 1024;  // one tunnel payload (tunnel MAX_PAYLOAD_SIZE)
constexpr size_t kStreamHeaderSize = 1 + 1 + 8 + 4;  // type, lane, seq, stream id
constexpr size_t kAckFrameSize = 14;
constexpr size_t kResumeFrameSize = 18;
constexpr size_t kPingFrameSize = 9;
constexpr size_t kAcceptFrameSize = kStreamHeaderSize;
constexpr size_t kDataHeaderSize = kStreamHeaderSize + 8 + 2;
constexpr size_t kWindowFrameSize = kStreamHeaderSize + 8;
constexpr size_t kFinFrameSize = kStreamHeaderSize + 8;
constexpr size_t kResetHeaderSize = kStreamHeaderSize + 4 + 1;
constexpr size_t kOpenHeaderSize = kStreamHeaderSize + 1 + 2;

constexpr size_t kMaxServiceName = 64;
constexpr size_t kMaxOpenArgs = 8 * 1024;
constexpr size_t kMaxArgsDepth = 32;         // nesting of [ and { in open arguments
constexpr size_t kMaxResetReason = 255;
// Data frames carry at most this much, so that any frame, first sent or retransmitted, fits in
// any payload of kMinPayloadSize and round robin between streams is fine-grained.
constexpr size_t kMaxDataChunk = 16 * 1024;
constexpr size_t kMaxOpenFrameSize = kOpenHeaderSize + kMaxServiceName + kMaxOpenArgs;
// Room for the session frames a payload may lead with (two acks, a resume, a ping, pongs).
constexpr size_t kMaxPendingPongs = 4;
constexpr size_t kSessionFramesRoom = 2 * kAckFrameSize + kResumeFrameSize + (1 + kMaxPendingPongs) * kPingFrameSize;
// poll_payload never builds payloads smaller than this, so every frame fits.
constexpr size_t kMinPayloadSize = kSessionFramesRoom + kDataHeaderSize + kMaxDataChunk;
static_assert(kMaxOpenFrameSize + kSessionFramesRoom <= kMinPayloadSize);
static_assert(kMinPayloadSize <= kMaxPayloadSize);

// Flow control. Every stream starts with this much credit each way; the receiver's window then
// grows (doubling) while credit is being used up faster than one window per two RTTs.
constexpr uint64_t kInitialWindow = 64 * 1024;
constexpr uint64_t kDefaultMaxWindow = 16 * 1024 * 1024;            // bulk streams
constexpr uint64_t kDefaultMaxInteractiveWindow = 4 * 1024 * 1024;  // interactive streams

// ---- frames ------------------------------------------------------------------------------------
// Decoded frames borrow from the payload they were decoded from (views, not copies).
struct StreamHeader {
  Priority lane = Priority::interactive;
  uint64_t seq = 0;
  StreamId stream = 0;
};
struct AckFrame {
  Priority lane = Priority::interactive;
  uint64_t received = 0;
  uint32_t delay_us = 0;
};
struct ResumeFrame {
  uint8_t flags = 0;
  uint64_t received[kLaneCount] = {0, 0};
};
struct PingFrame {
  uint64_t data = 0;
};
struct PongFrame {
  uint64_t data = 0;
};
struct OpenFrame {
  StreamHeader h;
  std::string_view service;
  std::string_view args;
};
struct AcceptFrame {
  StreamHeader h;
};
struct DataFrame {
  StreamHeader h;
  uint64_t offset = 0;
  ByteView bytes;
};
struct WindowFrame {
  StreamHeader h;
  uint64_t max_offset = 0;
};
struct FinFrame {
  StreamHeader h;
  uint64_t final_offset = 0;
};
struct ResetFrame {
  StreamHeader h;
  uint32_t code = 0;
  std::string_view reason;
};
// The end of the frames in a payload: padding follows.
struct PaddingFrame {};

using Frame = std::variant<PaddingFrame, AckFrame, ResumeFrame, PingFrame, PongFrame, OpenFrame, AcceptFrame, DataFrame,
                           WindowFrame, FinFrame, ResetFrame>;

std::string_view frame_type_name(FrameType type);  // "data", ...; "unknown" for others

// Decodes the frame starting at payload[pos] and advances pos past it. Structural checks only
// (lengths, known type and lane, nonzero stream id, flag bits, zero padding); what the values
// mean is the session's business. A PaddingFrame consumes the rest of the payload.
Result<Frame> decode_frame(ByteView payload, size_t& pos);

// Encoders append one frame to out. Callers respect the limits above (they are asserted in tests,
// not checked here, so the hot path stays a few stores).
void encode_ack(Bytes& out, const AckFrame& f);
void encode_resume(Bytes& out, const ResumeFrame& f);
void encode_ping(Bytes& out, uint64_t data);
void encode_pong(Bytes& out, uint64_t data);
void encode_open(Bytes& out, const StreamHeader& h, std::string_view service, std::string_view args);
void encode_accept(Bytes& out, const StreamHeader& h);
// Appends the data header; the caller appends `length` bytes after it.
void encode_data_header(Bytes& out, const StreamHeader& h, uint64_t offset, uint16_t length);
void encode_data(Bytes& out, const StreamHeader& h, uint64_t offset, ByteView bytes);
void encode_window(Bytes& out, const StreamHeader& h, uint64_t max_offset);
void encode_fin(Bytes& out, const StreamHeader& h, uint64_t final_offset);
void encode_reset(Bytes& out, const StreamHeader& h, uint32_t code, std::string_view reason);

}  // namespace airlock::stream
