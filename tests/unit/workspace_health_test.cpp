#include <doctest/doctest.h>

#include "common/workspace/health.hpp"

using namespace airlock::workspace;
using namespace std::chrono;

TEST_CASE("healthcheck URLs: http only, with host, port and target") {
  auto u = parse_http_url("http://127.0.0.1:13337/healthz");
  REQUIRE(u.ok());
  CHECK(u->host == "127.0.0.1");
  CHECK(u->port == 13337);
  CHECK(u->target == "/healthz");
  CHECK(u->host_header == "127.0.0.1:13337");
  u = parse_http_url("http://localhost");
  REQUIRE(u.ok());
  CHECK(u->port == 80);
  CHECK(u->target == "/");
  u = parse_http_url("http://[::1]:8080/a?b=c#frag");
  REQUIRE(u.ok());
  CHECK(u->host == "::1");
  CHECK(u->port == 8080);
  CHECK(u->target == "/a?b=c");
  u = parse_http_url("http://h?x=1");
  REQUIRE(u.ok());
  CHECK(u->target == "/?x=1");

  auto tls = parse_http_url("https://127.0.0.1/healthz");
  REQUIRE_FALSE(tls.ok());
  CHECK(tls.error().message.find("https health checks are not supported yet") == 0);
  for (const char* bad : {"ftp://x", "http://", "http://:80/", "http://h:0/", "http://h:99999/", "http://h:8x/",
                          "http://u:p@h/", "http://[::1/", "http://h/a b", "http://h\r\n/"})
    CHECK_FALSE(parse_http_url(bad).ok());
}

TEST_CASE("status lines") {
  CHECK(parse_http_status_line("HTTP/1.1 200 OK\r") == 200);
  CHECK(parse_http_status_line("HTTP/1.0 503 Service Unavailable") == 503);
  CHECK(parse_http_status_line("HTTP/1.1 204") == 204);
  CHECK_FALSE(parse_http_status_line("HTTP/2 200"));
  CHECK_FALSE(parse_http_status_line("HTTP/1.1 20 OK"));
  CHECK_FALSE(parse_http_status_line("HTTP/1.1 2000 OK"));
  CHECK_FALSE(parse_http_status_line("SSH-2.0-OpenSSH_9.2"));
  CHECK_FALSE(parse_http_status_line("HTTP/1.1 099 x"));
  CHECK(healthy_status(200));
  CHECK(healthy_status(404));  // the app answers: it is up
  CHECK(healthy_status(499));
  CHECK_FALSE(healthy_status(500));
  CHECK_FALSE(healthy_status(503));
}

TEST_CASE("health: threshold consecutive failures turn it unhealthy, one success heals") {
  auto t0 = system_clock::time_point(seconds(1000));
  AppHealth h(true, 3);
  CHECK(h.state() == HealthState::initializing);
  CHECK_FALSE(h.record(false, "connection refused", t0));
  CHECK_FALSE(h.record(false, "connection refused", t0 + 1s));
  CHECK(h.state() == HealthState::initializing);
  CHECK(h.record(false, "connection refused", t0 + 2s));
  CHECK(h.state() == HealthState::unhealthy);
  CHECK(h.consecutive_failures() == 3);
  CHECK(h.changed_at() == t0 + 2s);
  CHECK(h.record(true, "200", t0 + 3s));
  CHECK(h.state() == HealthState::healthy);
  CHECK(h.consecutive_failures() == 0);
  // Two failures below the threshold keep it healthy; the third flips it.
  CHECK_FALSE(h.record(false, "status 503", t0 + 4s));
  CHECK_FALSE(h.record(false, "status 503", t0 + 5s));
  CHECK(h.state() == HealthState::healthy);
  CHECK_FALSE(h.record(true, "200", t0 + 6s));  // resets the count
  CHECK_FALSE(h.record(false, "status 503", t0 + 7s));
  CHECK_FALSE(h.record(false, "status 503", t0 + 8s));
  CHECK(h.record(false, "status 503", t0 + 9s));
  CHECK(h.state() == HealthState::unhealthy);
  CHECK(h.detail() == "status 503");
  CHECK(h.checks() == 10);
  CHECK(h.last_check() == t0 + 9s);
}

TEST_CASE("health: a first success goes straight to healthy; no URL is disabled") {
  AppHealth h(true, 1);
  CHECK(h.record(true, "200", system_clock::now()));
  CHECK(h.state() == HealthState::healthy);
  AppHealth off(false, 3);
  CHECK(off.state() == HealthState::disabled);
  CHECK_FALSE(off.record(true, "200", system_clock::now()));
  CHECK(off.state() == HealthState::disabled);
  AppHealth zero(true, 0);  // a threshold below one counts as one
  CHECK(zero.record(false, "x", system_clock::now()));
  CHECK(zero.state() == HealthState::unhealthy);
}
