#include <doctest/doctest.h>

#include "common/util/size.hpp"

using namespace airlock;

TEST_CASE("sizes parse the way people type them, in binary units") {
  CHECK(*parse_size("65536") == 65536);
  CHECK(*parse_size("64KiB") == 64 * 1024);
  CHECK(*parse_size("64k") == 64 * 1024);
  CHECK(*parse_size("8M") == 8 * 1024 * 1024);
  CHECK(*parse_size("1GiB") == 1024ull * 1024 * 1024);
  CHECK(*parse_size("512b") == 512);
  for (const char* bad : {"", "KiB", "64 KiB", "64TiB", "-1", "1.5MiB", "99999999999999999999", "9999999999999999GiB"}) {
    auto r = parse_size(bad);
    CHECK_FALSE_MESSAGE(r.ok(), bad);
    if (!r.ok()) CHECK(r.error().message.find("examples: 65536, 64KiB") != std::string::npos);
  }
}

TEST_CASE("what format_size writes, parse_size reads back") {
  CHECK(format_size(64 * 1024) == "64KiB");
  CHECK(format_size(1024ull * 1024 * 1024) == "1GiB");
  CHECK(format_size(1000) == "1000");
  for (uint64_t v : {0ull, 1ull, 1000ull, 4096ull, 65570ull, 1ull << 20, 3ull << 30, (1ull << 40) + 1024})
    CHECK_MESSAGE(*parse_size(format_size(v)) == v, format_size(v));
}
