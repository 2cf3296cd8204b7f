#include <doctest/doctest.h>

#include <string>

#include "common/pty/protocol.hpp"

using namespace airlock;
using namespace airlock::pty;

namespace {

Bytes header(uint8_t type, uint32_t length) {
  Bytes out(kFrameHeaderSize);
  out[0] = type;
  store_be32(out.data() + 1, length);
  return out;
}

Bytes frame(uint8_t type, const Bytes& payload) {
  Bytes out = header(type, static_cast<uint32_t>(payload.size()));
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

Bytes bytes_of(std::string_view s) { return Bytes(s.begin(), s.end()); }

// Decodes everything in `wire` as sent by `from`; fails the test on a malformation.
std::vector<Frame> decode_all(Sender from, const Bytes& wire) {
  FrameDecoder decoder(from);
  decoder.push(wire);
  std::vector<Frame> frames;
  for (;;) {
    auto next = decoder.next();
    REQUIRE_MESSAGE(next.ok(), next.error().message);
    if (!next->has_value()) break;
    frames.push_back(std::move(**next));
  }
  CHECK(decoder.buffered() == 0);
  return frames;
}

std::string decode_error(Sender from, const Bytes& wire) {
  FrameDecoder decoder(from);
  decoder.push(wire);
  for (;;) {
    auto next = decoder.next();
    if (!next) {
      // A malformed stream stays malformed.
      auto again = decoder.next();
      CHECK_FALSE(again.ok());
      return next.error().message;
    }
    if (!next->has_value()) return "";
  }
}

}  // namespace

TEST_CASE("client frames round-trip: input and resize") {
  Bytes wire;
  encode_input(bytes_of("ls -l\r"), wire);
  encode_resize(132, 43, wire);
  encode_input({}, wire);
  CHECK(wire.size() == kFrameHeaderSize + 6 + kFrameHeaderSize + 4 + kFrameHeaderSize);
  CHECK(wire[0] == 0x01);
  CHECK(wire[kFrameHeaderSize + 6] == 0x02);

  auto frames = decode_all(Sender::client, wire);
  REQUIRE(frames.size() == 3);
  CHECK(std::get<Input>(frames[0]).data == bytes_of("ls -l\r"));
  CHECK(std::get<Resize>(frames[1]).cols == 132);
  CHECK(std::get<Resize>(frames[1]).rows == 43);
  CHECK(std::get<Input>(frames[2]).data.empty());
}

TEST_CASE("agent frames round-trip: output, session, exit, error") {
  Bytes wire;
  encode_output(bytes_of("\x1b[1mhello\x1b[m\r\n"), wire);
  encode_session({"build-1", true, 80, 24}, wire);
  encode_exit({130, 2}, wire);
  encode_error("frame type 0x7f is unknown", wire);

  auto frames = decode_all(Sender::agent, wire);
  REQUIRE(frames.size() == 4);
  CHECK(std::get<Output>(frames[0]).data == bytes_of("\x1b[1mhello\x1b[m\r\n"));
  auto info = std::get<SessionInfo>(frames[1]);
  CHECK(info.id == "build-1");
  CHECK(info.reattached);
  CHECK(info.cols == 80);
  CHECK(info.rows == 24);
  CHECK(std::get<ExitStatus>(frames[2]).code == 130);
  CHECK(std::get<ExitStatus>(frames[2]).signal == 2);
  CHECK(std::get<Closing>(frames[3]).reason == "frame type 0x7f is unknown");
  CHECK(frame_type(frames[1]) == FrameType::session);
}

TEST_CASE("exact layouts: resize and exit are big-endian") {
  Bytes wire;
  encode_resize(0x0102, 0x0304, wire);
  CHECK(wire == Bytes{0x02, 0, 0, 0, 4, 0x01, 0x02, 0x03, 0x04});
  wire.clear();
  encode_exit({3, 0}, wire);
  CHECK(wire == Bytes{0x83, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 0});
  wire.clear();
  encode(Frame{Input{bytes_of("a")}}, wire);
  CHECK(wire == Bytes{0x01, 0, 0, 0, 1, 'a'});
}

TEST_CASE("long data is split into frames under the limit") {
  Bytes data(kMaxDataPayload * 2 + 10, 'x');
  Bytes wire;
  encode_output(data, wire);
  auto frames = decode_all(Sender::agent, wire);
  REQUIRE(frames.size() == 3);
  Bytes joined;
  for (auto& f : frames) {
    auto& chunk = std::get<Output>(f).data;
    CHECK(chunk.size() <= kMaxDataPayload);
    joined.insert(joined.end(), chunk.begin(), chunk.end());
  }
  CHECK(joined == data);
}

TEST_CASE("the decoder takes bytes one at a time") {
  Bytes wire;
  encode_input(bytes_of("echo hi\r"), wire);
  encode_resize(100, 30, wire);
  FrameDecoder decoder(Sender::client);
  std::vector<Frame> frames;
  for (uint8_t byte : wire) {
    decoder.push(ByteView(&byte, 1));
    for (;;) {
      auto next = decoder.next();
      REQUIRE(next.ok());
      if (!next->has_value()) break;
      frames.push_back(std::move(**next));
    }
  }
  REQUIRE(frames.size() == 2);
  CHECK(std::get<Input>(frames[0]).data == bytes_of("echo hi\r"));
  CHECK(std::get<Resize>(frames[1]).cols == 100);
  CHECK(decoder.buffered() == 0);
}

TEST_CASE("a partial frame waits, and is visible as buffered bytes") {
  Bytes wire;
  encode_input(bytes_of("abc"), wire);
  wire.pop_back();
  FrameDecoder decoder(Sender::client);
  decoder.push(wire);
  auto next = decoder.next();
  REQUIRE(next.ok());
  CHECK_FALSE(next->has_value());
  CHECK(decoder.buffered() == wire.size());
}

TEST_CASE("malformed: unknown types, either side's") {
  CHECK(decode_error(Sender::client, frame(0x7f, {})).find("0x7f is unknown") != std::string::npos);
  CHECK(decode_error(Sender::agent, frame(0x00, {})).find("unknown") != std::string::npos);
  CHECK(decode_error(Sender::agent, frame(0x85, {})).find("unknown") != std::string::npos);
  // The type is judged from its first byte, before any length arrives.
  CHECK(decode_error(Sender::client, Bytes{0x42}).find("unknown") != std::string::npos);
}

TEST_CASE("malformed: a frame from the wrong side") {
  Bytes wire;
  encode_output(bytes_of("x"), wire);
  CHECK(decode_error(Sender::client, wire).find("not sent by the client") != std::string::npos);
  wire.clear();
  encode_input(bytes_of("x"), wire);
  CHECK(decode_error(Sender::agent, wire).find("not sent by the agent") != std::string::npos);
  wire.clear();
  encode_resize(80, 24, wire);
  CHECK_FALSE(decode_error(Sender::agent, wire).empty());
  for (uint8_t type : {0x82, 0x83, 0x84}) CHECK_FALSE(decode_error(Sender::client, frame(type, {})).empty());
}

TEST_CASE("malformed: lengths over each type's limit fail on the header alone") {
  CHECK(decode_error(Sender::client, header(0x01, kMaxDataPayload + 1)).find("exceeds") != std::string::npos);
  CHECK(decode_error(Sender::agent, header(0x81, 0xffffffffu)).find("exceeds") != std::string::npos);
  CHECK(decode_error(Sender::client, header(0x02, 5)).find("exceeds") != std::string::npos);
  CHECK(decode_error(Sender::agent, header(0x83, 9)).find("exceeds") != std::string::npos);
  CHECK(decode_error(Sender::agent, header(0x82, kMaxSessionPayload + 1)).find("exceeds") != std::string::npos);
  CHECK(decode_error(Sender::agent, header(0x84, kMaxReasonPayload + 1)).find("exceeds") != std::string::npos);
  // Exactly at the limit is fine.
  Bytes at_limit = frame(0x01, Bytes(kMaxDataPayload, 'a'));
  CHECK(decode_all(Sender::client, at_limit).size() == 1);
}

TEST_CASE("malformed: resize layout and range") {
  CHECK(decode_error(Sender::client, frame(0x02, {0, 80, 0})).find("must be 4 bytes") != std::string::npos);
  CHECK(decode_error(Sender::client, frame(0x02, {})).find("must be 4 bytes") != std::string::npos);
  CHECK(decode_error(Sender::client, frame(0x02, {0, 0, 0, 24})).find("out of range") != std::string::npos);
  CHECK(decode_error(Sender::client, frame(0x02, {0, 80, 0, 0})).find("out of range") != std::string::npos);
  Bytes too_wide{0, 0, 0, 24};
  store_be16(too_wide.data(), kMaxCols + 1);
  CHECK(decode_error(Sender::client, frame(0x02, too_wide)).find("out of range") != std::string::npos);
  Bytes too_tall{0, 80, 0, 0};
  store_be16(too_tall.data() + 2, kMaxRows + 1);
  CHECK(decode_error(Sender::client, frame(0x02, too_tall)).find("out of range") != std::string::npos);
  Bytes largest{0, 0, 0, 0};
  store_be16(largest.data(), kMaxCols);
  store_be16(largest.data() + 2, kMaxRows);
  CHECK(decode_all(Sender::client, frame(0x02, largest)).size() == 1);
}

TEST_CASE("malformed: exit layout and range") {
  CHECK(decode_error(Sender::agent, frame(0x83, {0, 0, 0, 1})).find("must be 8 bytes") != std::string::npos);
  Bytes big_code(8, 0);
  store_be32(big_code.data(), 256);
  CHECK(decode_error(Sender::agent, frame(0x83, big_code)).find("out of range") != std::string::npos);
  Bytes big_signal(8, 0);
  store_be32(big_signal.data() + 4, 128);
  CHECK(decode_error(Sender::agent, frame(0x83, big_signal)).find("out of range") != std::string::npos);
}

TEST_CASE("malformed: session JSON") {
  auto session_error = [](std::string_view json) { return decode_error(Sender::agent, frame(0x82, bytes_of(json))); };
  CHECK_FALSE(session_error("not json").empty());
  CHECK_FALSE(session_error("[1,2]").empty());
  CHECK_FALSE(session_error(R"({"state":"new","cols":80,"rows":24})").empty());
  CHECK_FALSE(session_error(R"({"id":"","state":"new","cols":80,"rows":24})").empty());
  CHECK_FALSE(session_error(R"({"id":"a b","state":"new","cols":80,"rows":24})").empty());
  CHECK_FALSE(session_error(R"({"id":7,"state":"new","cols":80,"rows":24})").empty());
  CHECK_FALSE(session_error(R"({"id":"a","state":"old","cols":80,"rows":24})").empty());
  CHECK_FALSE(session_error(R"({"id":"a","cols":80,"rows":24})").empty());
  CHECK_FALSE(session_error(R"({"id":"a","state":"new","cols":0,"rows":24})").empty());
  CHECK_FALSE(session_error(R"({"id":"a","state":"new","cols":-1,"rows":24})").empty());
  CHECK_FALSE(session_error(R"({"id":"a","state":"new","cols":80.5,"rows":24})").empty());
  CHECK_FALSE(session_error(R"({"id":"a","state":"new","cols":80,"rows":70000})").empty());
  CHECK_FALSE(session_error(R"({"id":"a","state":"new","cols":80})").empty());
  CHECK_FALSE(session_error("{\"id\":\"a\xff\",\"state\":\"new\",\"cols\":80,\"rows\":24}").empty());
  CHECK(session_error(R"({"id":"a","state":"new","cols":80,"rows":24,"extra":true})").empty());
}

TEST_CASE("malformed: error reasons must be UTF-8; encode_error cuts on a character boundary") {
  CHECK(decode_error(Sender::agent, frame(0x84, {'b', 'a', 'd', 0xc3})).find("UTF-8") != std::string::npos);
  CHECK(decode_error(Sender::agent, frame(0x84, {0xed, 0xa0, 0x80})).find("UTF-8") != std::string::npos);
  CHECK(decode_error(Sender::agent, frame(0x84, {0xc0, 0x80})).find("UTF-8") != std::string::npos);

  std::string long_reason(kMaxReasonPayload - 1, 'x');
  long_reason += "\xc3\xa9 and more";  // an é straddling the limit
  Bytes wire;
  encode_error(long_reason, wire);
  auto frames = decode_all(Sender::agent, wire);
  REQUIRE(frames.size() == 1);
  CHECK(std::get<Closing>(frames[0]).reason == std::string(kMaxReasonPayload - 1, 'x'));
}

TEST_CASE("valid frames before a malformed one are still delivered") {
  Bytes wire;
  encode_input(bytes_of("ok"), wire);
  Bytes bad = frame(0x7f, {});
  wire.insert(wire.end(), bad.begin(), bad.end());
  FrameDecoder decoder(Sender::client);
  decoder.push(wire);
  auto first = decoder.next();
  REQUIRE(first.ok());
  REQUIRE(first->has_value());
  CHECK(std::get<Input>(**first).data == bytes_of("ok"));
  CHECK_FALSE(decoder.next().ok());
  decoder.push(wire);  // ignored once failed
  CHECK_FALSE(decoder.next().ok());
}

TEST_CASE("session ids and sizes") {
  CHECK(valid_session_id("a"));
  CHECK(valid_session_id("build.1_main-2"));
  CHECK_FALSE(valid_session_id(""));
  CHECK_FALSE(valid_session_id(std::string(kMaxSessionIdLength + 1, 'a')));
  CHECK(valid_session_id(std::string(kMaxSessionIdLength, 'a')));
  CHECK_FALSE(valid_session_id("a/b"));
  CHECK_FALSE(valid_session_id("../x"));
  CHECK(valid_size(2, 1));
  CHECK_FALSE(valid_size(1, 1));  // libvterm cannot model a one-column screen safely
  CHECK_FALSE(valid_size(0, 1));
  CHECK_FALSE(valid_size(kMaxCols + 1, 1));
  CHECK(valid_utf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
  CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  CHECK_FALSE(valid_utf8("\xe0\x80\xaf"));      // overlong
}
