#include <doctest/doctest.h>

#include <stdexcept>

#include "common/util/metrics.hpp"

using namespace airlock;

TEST_CASE("metrics render in the Prometheus text format") {
  metrics::Registry reg;
  auto& in = reg.counter("airlock_test_packets_total", "Packets seen.", {{"direction", "in"}});
  auto& out = reg.counter("airlock_test_packets_total", "Packets seen.", {{"direction", "out"}});
  auto& depth = reg.gauge("airlock_test_queue_bytes", "Bytes queued.");
  in.inc();
  in.inc(2);
  out.inc();
  depth.set(1.5);
  CHECK(&reg.counter("airlock_test_packets_total", "Packets seen.", {{"direction", "in"}}) == &in);

  std::string text = reg.render();
  CHECK(text ==
        "# HELP airlock_test_packets_total Packets seen.\n"
        "# TYPE airlock_test_packets_total counter\n"
        "airlock_test_packets_total{direction=\"in\"} 3\n"
        "airlock_test_packets_total{direction=\"out\"} 1\n"
        "# HELP airlock_test_queue_bytes Bytes queued.\n"
        "# TYPE airlock_test_queue_bytes gauge\n"
        "airlock_test_queue_bytes 1.5\n");
}

TEST_CASE("label values are escaped; bad names and type clashes are refused") {
  metrics::Registry reg;
  reg.gauge("g", "h", {{"reason", "say \"no\"\\\n"}}).set(1);
  CHECK(reg.render().find("g{reason=\"say \\\"no\\\"\\\\\\n\"} 1\n") != std::string::npos);
  CHECK_THROWS_AS(reg.counter("bad-name", "h"), std::logic_error);
  CHECK_THROWS_AS(reg.counter("g", "h"), std::logic_error);
  CHECK_THROWS_AS(reg.counter("ok", "h", {{"__reserved", "x"}}), std::logic_error);
}
