// The path a user travels, with the three real programs on loopback: airlock-relay --dev, an
// airlock-agent for workspace "demo", and the airlock CLI.
#include <doctest/doctest.h>

#include "tests/support/deployment.hpp"

using namespace airlock;
using namespace std::chrono_literals;

TEST_CASE("ping reaches the workspace through the relay and prints a summary") {
  test::Deployment d;
  d.start_agent("demo");
  REQUIRE_MESSAGE(d.wait_connected("demo"), d.agent("demo")->output());

  auto r = d.cli({"ping", "demo", "-c", "3", "-i", "50ms"});
  INFO(r.all());
  CHECK(r.code == 0);
  CHECK(r.out.find("pong from demo seq=3") != std::string::npos);
  CHECK(r.out.find("3 sent, 3 received, 0% loss") != std::string::npos);
}
