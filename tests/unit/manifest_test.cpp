#include <doctest/doctest.h>

#include "common/config/manifest.hpp"

using namespace airlock;
using namespace airlock::config;

namespace {
std::string error_of(const std::string& text) {
  auto m = parse_manifest_text(text);
  REQUIRE_FALSE(m.ok());
  return m.error().message;
}
}  // namespace

TEST_CASE("a full manifest parses into its fields") {
  auto m = parse_manifest_text(R"({
    "directory": "/home/coder/project",
    "env": {"GIT_AUTHOR_NAME": "Ada"},
    "startup": {"script": "code-server --bind-addr 127.0.0.1:13337 &", "timeout": 120, "blocks_login": true},
    "shutdown": "echo bye",
    "apps": [{"slug": "code-server", "display_name": "VS Code", "url": "http://127.0.0.1:13337",
              "healthcheck": {"url": "http://127.0.0.1:13337/healthz", "interval": 3, "threshold": 6}}],
    "metadata": [{"key": "load", "script": "cat /proc/loadavg", "interval": 10, "timeout": 2}],
    "policy": {"services": {"tcp": false}, "ports": {"allow": ["8000-8999", 3000], "deny": ["8022"]},
               "block_file_transfer": true, "session_lifetime": 28800}
  })");
  REQUIRE(m.ok());
  CHECK(m->directory == "/home/coder/project");
  CHECK(m->env.at("GIT_AUTHOR_NAME") == "Ada");
  REQUIRE(m->startup);
  CHECK(m->startup->timeout.count() == 120);
  CHECK(m->startup->blocks_login);
  REQUIRE(m->shutdown);
  CHECK(m->shutdown->script == "echo bye");
  REQUIRE(m->apps.size() == 1);
  CHECK(m->apps[0].display_name == "VS Code");
  CHECK(m->apps[0].threshold == 6);
  CHECK(m->apps[0].interval.count() == 3);
  REQUIRE(m->metadata.size() == 1);
  CHECK(m->metadata[0].display_name == "load");
  CHECK_FALSE(m->policy.tcp);
  CHECK(m->policy.ssh);
  CHECK(m->policy.block_file_transfer);
  CHECK(m->policy.session_lifetime.count() == 28800);
  CHECK(m->policy.ports.permits(8080));
  CHECK(m->policy.ports.permits(3000));
  CHECK_FALSE(m->policy.ports.permits(8022));  // denied inside an allowed range
  CHECK_FALSE(m->policy.ports.permits(22));    // not in the allow list
}

TEST_CASE("an empty manifest gives the defaults: every service on, every port allowed") {
  auto m = parse_manifest_text("{}");
  REQUIRE(m.ok());
  CHECK(m->policy.pty);
  CHECK(m->policy.ssh);
  CHECK(m->policy.tcp);
  CHECK_FALSE(m->policy.block_file_transfer);
  CHECK(m->policy.ports.permits(1));
  CHECK(m->policy.ports.permits(65535));
}

TEST_CASE("bad manifests are refused with the field named") {
  CHECK(error_of("[1]") == "manifest: must be a JSON object");
  CHECK(error_of("{").find("not valid JSON") != std::string::npos);
  CHECK(error_of(R"({"policy": {"block_filetransfer": true}})") ==
        "manifest: policy.block_filetransfer: unknown field (known fields here: block_file_transfer, ports, "
        "services, session_lifetime)");
  CHECK(error_of(R"({"apps": [{"slug": "ok", "url": "http://x"}, {"slug": "Bad Slug", "url": "http://x"}]})")
            .find("manifest: apps[1].slug:") == 0);
  CHECK(error_of(R"({"apps": [{"slug": "a", "url": "http://x", "healthcheck": {"url": "http://x/h", "interval": -3}}]})") ==
        "manifest: apps[0].healthcheck.interval: must be a positive whole number of seconds (got -3)");
  CHECK(error_of(R"({"apps": [{"slug": "a", "url": "ftp://x"}]})") ==
        "manifest: apps[0].url: must start with http:// or https:// (got \"ftp://x\")");
  CHECK(error_of(R"({"apps": [{"slug": "a", "url": "http://x"}, {"slug": "a", "url": "http://y"}]})") ==
        "manifest: apps[1].slug: \"a\" is used by another app");
  CHECK(error_of(R"({"metadata": [{"key": "k", "script": "true", "interval": 5, "timeout": 9}]})") ==
        "manifest: metadata[0].timeout: must not be longer than interval (5 s)");
  CHECK(error_of(R"({"policy": {"ports": {"allow": ["99999"]}}})") ==
        "manifest: policy.ports.allow[0]: \"99999\": ports are 1-65535");
  CHECK(error_of(R"({"policy": {"ports": {"deny": ["9-3"]}}})") ==
        "manifest: policy.ports.deny[0]: \"9-3\": the range ends before it starts");
  CHECK(error_of(R"({"policy": {"services": {"ssh": "yes"}}})") ==
        "manifest: policy.services.ssh: must be true or false (got \"yes\")");
  CHECK(error_of(R"({"directory": "relative/dir"})") ==
        "manifest: directory: must be an absolute path (got \"relative/dir\")");
  CHECK(error_of(R"({"env": {"1BAD": "x"}})") == "manifest: env.1BAD: is not a valid environment variable name");
  CHECK(error_of(R"({"startup": {"timeout": 5}})") == "manifest: startup.script: is required (a string)");
  CHECK(error_of(R"({"shutdown": {"script": "x", "blocks_login": true}})").find("manifest: shutdown.blocks_login: unknown field") == 0);
}

TEST_CASE("port ranges") {
  CHECK(parse_port_range("80")->first == 80);
  CHECK(parse_port_range("3000-3999")->last == 3999);
  CHECK_FALSE(parse_port_range("").ok());
  CHECK_FALSE(parse_port_range("0").ok());
  CHECK_FALSE(parse_port_range("80-").ok());
  CHECK_FALSE(parse_port_range("-80").ok());
  CHECK_FALSE(parse_port_range("8a").ok());
}
