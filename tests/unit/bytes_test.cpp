#include <doctest/doctest.h>

#include "common/util/bytes.hpp"

using namespace airlock;

TEST_CASE("hex round-trips and rejects malformed input") {
  Bytes b;
  REQUIRE(from_hex("00ff10Ab", b));
  CHECK(b == Bytes{0x00, 0xff, 0x10, 0xab});
  CHECK(to_hex(b) == "00ff10ab");
  CHECK_FALSE(from_hex("abc", b));
  CHECK_FALSE(from_hex("zz", b));
}

TEST_CASE("integer encodings match their byte order") {
  uint8_t buf[8];
  store_le64(buf, 0x0102030405060708ull);
  CHECK(buf[0] == 0x08);
  CHECK(load_le64(buf) == 0x0102030405060708ull);
  store_be32(buf, 0xa1b2c3d4);
  CHECK(buf[0] == 0xa1);
  CHECK(load_be32(buf) == 0xa1b2c3d4);
  store_be16(buf, 0xbeef);
  CHECK(load_be16(buf) == 0xbeef);
  store_le32(buf, 0xdeadbeef);
  CHECK(load_le32(buf) == 0xdeadbeef);
}
