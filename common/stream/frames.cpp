#include "common/stream/frames.hpp"

#include <string>

namespace airlock::stream {

std::string_view frame_type_name(FrameType type) {
  switch (type) {
    case FrameType::padding: return "padding";
    case FrameType::ack: return "ack";
    case FrameType::resume: return "resume";
    case FrameType::ping: return "ping";
    case FrameType::pong: return "pong";
    case FrameType::open: return "open";
    case FrameType::accept: return "accept";
    case FrameType::data: return "data";
    case FrameType::window: return "window";
    case FrameType::fin: return "fin";
    case FrameType::reset: return "reset";
  }
  return "unknown";
}

namespace {

// A bounds-checked reader over one frame; every read fails the same way when bytes run out.
class Reader {
 public:
  Reader(ByteView payload, size_t pos) : p_(payload), pos_(pos) {}
  bool has(size_t n) const { return p_.size() - pos_ >= n; }
  size_t pos() const { return pos_; }
  uint8_t u8() { return p_[pos_++]; }
  uint16_t u16() {
    uint16_t v = load_be16(&p_[pos_]);
    pos_ += 2;
    return v;
  }
  uint32_t u32() {
    uint32_t v = load_be32(&p_[pos_]);
    pos_ += 4;
    return v;
  }
  uint64_t u64() {
    uint64_t v = load_be64(&p_[pos_]);
    pos_ += 8;
    return v;
  }
  ByteView bytes(size_t n) {
    ByteView v = p_.subspan(pos_, n);
    pos_ += n;
    return v;
  }

 private:
  ByteView p_;
  size_t pos_;
};

Error truncated(FrameType type, size_t at) {
  return make_error("truncated " + std::string(frame_type_name(type)) + " frame at byte " + std::to_string(at));
}

Result<StreamHeader> read_header(Reader& r, FrameType type, size_t at) {
  if (!r.has(kStreamHeaderSize - 1)) return truncated(type, at);
  StreamHeader h;
  uint8_t lane = r.u8();
  if (lane >= kLaneCount) {
    return make_error(std::string(frame_type_name(type)) + " frame at byte " + std::to_string(at) + " has lane " +
                      std::to_string(lane) + " (only 0 and 1 exist)");
  }
  h.lane = static_cast<Priority>(lane);
  h.seq = r.u64();
  h.stream = r.u32();
  if (h.seq == 0) return make_error(std::string(frame_type_name(type)) + " frame has seq 0 (lanes count from 1)");
  if (h.stream == 0) return make_error(std::string(frame_type_name(type)) + " frame for stream 0");
  return h;
}

void put_u8(Bytes& out, uint8_t v) { out.push_back(v); }
void put_u16(Bytes& out, uint16_t v) {
  size_t n = out.size();
  out.resize(n + 2);
  store_be16(&out[n], v);
}
void put_u32(Bytes& out, uint32_t v) {
  size_t n = out.size();
  out.resize(n + 4);
  store_be32(&out[n], v);
}
void put_u64(Bytes& out, uint64_t v) {
  size_t n = out.size();
  out.resize(n + 8);
  store_be64(&out[n], v);
}
void put_bytes(Bytes& out, ByteView b) { out.insert(out.end(), b.begin(), b.end()); }
void put_header(Bytes& out, FrameType type, const StreamHeader& h) {
  size_t n = out.size();
  out.resize(n + kStreamHeaderSize);
  uint8_t* p = &out[n];
  p[0] = static_cast<uint8_t>(type);
  p[1] = static_cast<uint8_t>(h.lane);
  store_be64(p + 2, h.seq);
  store_be32(p + 10, h.stream);
}

}  // namespace

Result<Frame> decode_frame(ByteView payload, size_t& pos) {
  const size_t at = pos;
  if (pos >= payload.size()) return make_error("no frame at byte " + std::to_string(at));
  Reader r(payload, pos);
  const uint8_t type_byte = r.u8();
  const auto type = static_cast<FrameType>(type_byte);
  Frame frame;
  switch (type) {
    case FrameType::padding: {
      for (size_t i = r.pos(); i < payload.size(); ++i) {
        if (payload[i] != 0) return make_error("nonzero byte in padding at byte " + std::to_string(i));
      }
      pos = payload.size();
      return Frame{PaddingFrame{}};
    }
    case FrameType::ack: {
      if (!r.has(kAckFrameSize - 1)) return truncated(type, at);
      AckFrame f;
      uint8_t lane = r.u8();
      if (lane >= kLaneCount) return make_error("ack for lane " + std::to_string(lane) + " (only 0 and 1 exist)");
      f.lane = static_cast<Priority>(lane);
      f.received = r.u64();
      f.delay_us = r.u32();
      frame = f;
      break;
    }
    case FrameType::resume: {
      if (!r.has(kResumeFrameSize - 1)) return truncated(type, at);
      ResumeFrame f;
      f.flags = r.u8();
      if (f.flags & ~kResumeFlagsKnown) return make_error("resume frame has unknown flag bits");
      f.received[0] = r.u64();
      f.received[1] = r.u64();
      frame = f;
      break;
    }
    case FrameType::ping:
    case FrameType::pong: {
      if (!r.has(kPingFrameSize - 1)) return truncated(type, at);
      uint64_t data = r.u64();
      if (type == FrameType::ping) {
        frame = PingFrame{data};
      } else {
        frame = PongFrame{data};
      }
      break;
    }
    case FrameType::open: {
      auto h = read_header(r, type, at);
      if (!h) return h.error();
      OpenFrame f{*h, {}, {}};
      if (!r.has(1)) return truncated(type, at);
      size_t service_len = r.u8();
      if (!r.has(service_len + 2)) return truncated(type, at);
      f.service = as_chars(r.bytes(service_len));
      size_t args_len = r.u16();
      if (!r.has(args_len)) return truncated(type, at);
      f.args = as_chars(r.bytes(args_len));
      frame = f;
      break;
    }
    case FrameType::accept: {
      auto h = read_header(r, type, at);
      if (!h) return h.error();
      frame = AcceptFrame{*h};
      break;
    }
    case FrameType::data: {
      auto h = read_header(r, type, at);
      if (!h) return h.error();
      if (!r.has(10)) return truncated(type, at);
      DataFrame f{*h, r.u64(), {}};
      size_t length = r.u16();
      if (!r.has(length)) return truncated(type, at);
      f.bytes = r.bytes(length);
      frame = f;
      break;
    }
    case FrameType::window:
    case FrameType::fin: {
      auto h = read_header(r, type, at);
      if (!h) return h.error();
      if (!r.has(8)) return truncated(type, at);
      uint64_t offset = r.u64();
      if (type == FrameType::window) {
        frame = WindowFrame{*h, offset};
      } else {
        frame = FinFrame{*h, offset};
      }
      break;
    }
    case FrameType::reset: {
      auto h = read_header(r, type, at);
      if (!h) return h.error();
      if (!r.has(5)) return truncated(type, at);
      ResetFrame f{*h, r.u32(), {}};
      size_t reason_len = r.u8();
      if (!r.has(reason_len)) return truncated(type, at);
      f.reason = as_chars(r.bytes(reason_len));
      frame = f;
      break;
    }
    default:
      return make_error("unknown frame type 0x" + to_hex(ByteView(&type_byte, 1)) + " at byte " + std::to_string(at));
  }
  pos = r.pos();
  return frame;
}

void encode_ack(Bytes& out, const AckFrame& f) {
  put_u8(out, static_cast<uint8_t>(FrameType::ack));
  put_u8(out, static_cast<uint8_t>(f.lane));
  put_u64(out, f.received);
  put_u32(out, f.delay_us);
}

void encode_resume(Bytes& out, const ResumeFrame& f) {
  put_u8(out, static_cast<uint8_t>(FrameType::resume));
  put_u8(out, f.flags);
  put_u64(out, f.received[0]);
  put_u64(out, f.received[1]);
}

void encode_ping(Bytes& out, uint64_t data) {
  put_u8(out, static_cast<uint8_t>(FrameType::ping));
  put_u64(out, data);
}

void encode_pong(Bytes& out, uint64_t data) {
  put_u8(out, static_cast<uint8_t>(FrameType::pong));
  put_u64(out, data);
}

void encode_open(Bytes& out, const StreamHeader& h, std::string_view service, std::string_view args) {
  put_header(out, FrameType::open, h);
  put_u8(out, static_cast<uint8_t>(service.size()));
  put_bytes(out, as_bytes(service));
  put_u16(out, static_cast<uint16_t>(args.size()));
  put_bytes(out, as_bytes(args));
}

void encode_accept(Bytes& out, const StreamHeader& h) { put_header(out, FrameType::accept, h); }

void encode_data_header(Bytes& out, const StreamHeader& h, uint64_t offset, uint16_t length) {
  put_header(out, FrameType::data, h);
  put_u64(out, offset);
  put_u16(out, length);
}

void encode_data(Bytes& out, const StreamHeader& h, uint64_t offset, ByteView bytes) {
  encode_data_header(out, h, offset, static_cast<uint16_t>(bytes.size()));
  put_bytes(out, bytes);
}

void encode_window(Bytes& out, const StreamHeader& h, uint64_t max_offset) {
  put_header(out, FrameType::window, h);
  put_u64(out, max_offset);
}

void encode_fin(Bytes& out, const StreamHeader& h, uint64_t final_offset) {
  put_header(out, FrameType::fin, h);
  put_u64(out, final_offset);
}

void encode_reset(Bytes& out, const StreamHeader& h, uint32_t code, std::string_view reason) {
  put_header(out, FrameType::reset, h);
  put_u32(out, code);
  put_u8(out, static_cast<uint8_t>(reason.size()));
  put_bytes(out, as_bytes(reason));
}

}  // namespace airlock::stream
