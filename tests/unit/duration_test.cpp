#include <doctest/doctest.h>

#include <vector>

#include "common/util/duration.hpp"

using namespace airlock;
using namespace std::chrono;

TEST_CASE("durations parse the way people type them") {
  CHECK(*parse_duration("500ms") == milliseconds(500));
  CHECK(*parse_duration("5s") == seconds(5));
  CHECK(*parse_duration("5") == seconds(5));
  CHECK(*parse_duration("30m") == minutes(30));
  CHECK(*parse_duration("1h") == hours(1));
  CHECK(*parse_duration("7d") == hours(24 * 7));
  CHECK(*parse_duration("2m30s") == seconds(150));
  CHECK(*parse_duration("1h30m") == minutes(90));
  CHECK(*parse_duration("1s500ms") == milliseconds(1500));
  for (const char* bad : {"", "s", "5x", "-5s", "1.5h", "5 s", "99999999999s", "1m30", "30 1m", "2m30", "m5",
                          "200000d"}) {
    auto r = parse_duration(bad);
    CHECK_FALSE(r.ok());
    if (!r.ok()) CHECK(r.error().message.find("is not a duration") != std::string::npos);
  }
}

TEST_CASE("durations format back compactly") {
  CHECK(format_duration(milliseconds(250)) == "250ms");
  CHECK(format_duration(seconds(5)) == "5s");
  CHECK(format_duration(minutes(90)) == "1h30m");
  CHECK(format_duration(hours(24)) == "1d");
}

TEST_CASE("what format_duration writes, parse_duration reads back") {
  const std::vector<milliseconds> durations{milliseconds(0), milliseconds(250), milliseconds(1000), milliseconds(1500),
                                            seconds(150), minutes(90), hours(26) + seconds(7), hours(24 * 365)};
  for (milliseconds d : durations) {
    auto back = parse_duration(format_duration(d));
    REQUIRE_MESSAGE(back.ok(), format_duration(d));
    CHECK_MESSAGE(*back == d, format_duration(d));
  }
}
