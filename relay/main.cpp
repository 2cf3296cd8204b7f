// airlock-relay: flags, files, then the relay on one libuv loop until SIGTERM/SIGINT.
#include <csignal>
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "common/net/uv.hpp"
#include "common/util/duration.hpp"
#include "common/util/log.hpp"
#include "common/util/size.hpp"
#include "relay/keys.hpp"
#include "relay/relay.hpp"

using namespace airlock;
using namespace airlock::relayd;

namespace {

// The flags as typed. Their defaults are Config's (the protocol's constants), written the way
// --help shows them and the parsers below read them back.
struct Flags {
  explicit Flags(const Config& d)
      : max_packet(format_size(d.max_packet_bytes)),
        queue_high(format_size(d.queue_high_bytes)),
        queue_low(format_size(d.queue_low_bytes)),
        queue_hard_cap(format_size(d.queue_hard_cap_bytes)),
        control_queue(format_size(d.control_queue_bytes)),
        rate(format_size(static_cast<uint64_t>(d.rate_bytes_per_second))),
        rate_burst(format_size(static_cast<uint64_t>(d.rate_burst_bytes))),
        control_per_sec(d.control_per_second),
        control_burst(d.control_burst),
        hello_timeout(format_duration(d.hello_timeout)),
        keepalive(format_duration(d.keepalive_interval)),
        idle_timeout(format_duration(d.idle_timeout)),
        restart_reconnect_in(format_duration(d.restart_reconnect_in)),
        restart_try_for(format_duration(d.restart_try_for)),
        shutdown_grace(format_duration(d.shutdown_grace)),
        pair_linger(format_duration(d.pair_linger)),
        max_connections(d.max_connections),
        ws_rx_buffer(format_size(d.ws_rx_buffer_bytes)) {}

  std::string listen = "0.0.0.0:7443";
  std::string tls_cert, tls_key;
  bool plain_on_tls_port = false;
  bool dev = false;
  std::string state_dir = "./.airlock-relay";
  std::string issuer_public_key;
  std::string relay_key;
  std::string max_packet;
  std::string queue_high, queue_low, queue_hard_cap, control_queue;
  std::string rate, rate_burst;
  double control_per_sec, control_burst;
  std::string hello_timeout, keepalive, idle_timeout;
  std::string restart_reconnect_in, restart_try_for, shutdown_grace, pair_linger;
  size_t max_connections;
  std::string ws_rx_buffer;
  std::string dev_token_ttl = "24h";
  std::string log_level;
};

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "airlock-relay: %s\n", message.c_str());
  std::exit(2);
}

uint64_t size_flag(const std::string& flag, const std::string& text, uint64_t min, uint64_t max) {
  auto v = parse_size(text);
  if (!v) fail(flag + " " + v.error().message);
  if (*v < min || *v > max)
    fail(flag + " " + text + " is out of range: give between " + std::to_string(min) + " and " + std::to_string(max) +
         " bytes");
  return *v;
}

milliseconds duration_flag(const std::string& flag, const std::string& text, milliseconds min) {
  auto d = parse_duration(text);
  if (!d) fail(flag + ": " + d.error().message);
  if (*d < min) fail(flag + " " + text + " is too short: give at least " + format_duration(min));
  return *d;
}

void split_listen(const std::string& listen, Config& c) {
  std::string host, port;
  if (!listen.empty() && listen.front() == '[') {
    size_t close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':')
      fail("--listen " + listen + ": write an IPv6 address as [addr]:port, e.g. [::1]:7443");
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else {
    size_t colon = listen.rfind(':');
    if (colon == std::string::npos) fail("--listen " + listen + ": give host:port, e.g. 0.0.0.0:7443 or 127.0.0.1:0");
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
  }
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end || p < 0 || p > 65535)
    fail("--listen " + listen + ": the port must be 0..65535 (0 picks a free one)");
  c.listen_host = host.empty() ? "0.0.0.0" : host;
  c.listen_port = static_cast<int>(p);
}

std::string display_host(const std::string& host) {
  if (host == "0.0.0.0" || host.empty()) return "127.0.0.1";
  if (host == "::") return "[::1]";
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::signal(SIGPIPE, SIG_IGN);
  Flags f{Config{}};
  CLI::App app{
      "airlock-relay: the Airlock relay. Peers (agents, CLIs) connect over WebSocket (ws:// or wss://, "
      "subprotocol airlock-relay.v1); the relay forwards their end-to-end encrypted packets by public key, "
      "decides who may reach which workspace, and serves /healthz, /metrics and /api/v2/workspaces on the same port.\n\n"
      "Try it: airlock-relay --dev --listen 127.0.0.1:7443   (creates a certificate, an issuer key and tokens)\n"};
  app.get_formatter()->column_width(38);
  app.add_option("--listen", f.listen, "Address and port to listen on; port 0 picks a free one")->capture_default_str();
  app.add_option("--tls-cert", f.tls_cert, "TLS certificate chain (PEM) for wss://; needs --tls-key");
  app.add_option("--tls-key", f.tls_key, "TLS private key (PEM) for --tls-cert");
  app.add_flag("--plain-on-tls-port", f.plain_on_tls_port, "Also accept plain ws:// on the TLS port");
  app.add_flag("--dev", f.dev,
               "Development mode: create a self-signed certificate, an issuer key and a relay key in --state-dir, "
               "serve ws:// and wss:// on one port, and print an owner token and an agent token for workspace demo");
  app.add_option("--state-dir", f.state_dir, "Directory for the relay key and --dev files")->capture_default_str();
  app.add_option("--issuer-public-key", f.issuer_public_key,
                 "Control plane's Ed25519 token issuer public key: a file or base64 (required without --dev)");
  app.add_option("--relay-key", f.relay_key, "Relay's X25519 key file (default <state-dir>/relay.key, created if absent)");
  app.add_option("--max-packet-bytes", f.max_packet, "Largest packet a peer may send (at most 64KiB)")->capture_default_str();
  app.add_option("--queue-high-bytes", f.queue_high, "Per destination: pause the senders above this")->capture_default_str();
  app.add_option("--queue-low-bytes", f.queue_low, "Per destination: resume the senders below this")->capture_default_str();
  app.add_option("--queue-hard-cap-bytes", f.queue_hard_cap,
                 "Per destination: a sender that pushes the queue past this is disconnected")->capture_default_str();
  app.add_option("--control-queue-bytes", f.control_queue,
                 "Relay frames (pongs, peer_gone, replies) waiting for a peer before it is disconnected")->capture_default_str();
  app.add_option("--rate-bytes-per-sec", f.rate, "Per-peer receive rate, shaped by pausing reads; 0 = unlimited")->capture_default_str();
  app.add_option("--rate-burst-bytes", f.rate_burst, "Per-peer burst above the rate")->capture_default_str();
  app.add_option("--control-per-sec", f.control_per_sec, "Control/ping frames per second per peer")->capture_default_str();
  app.add_option("--control-burst", f.control_burst, "Control/ping burst; past it the peer is disconnected")->capture_default_str();
  app.add_option("--hello-timeout", f.hello_timeout, "The client hello must arrive within this")->capture_default_str();
  app.add_option("--keepalive", f.keepalive, "Send a keep-alive after this long with nothing sent")->capture_default_str();
  app.add_option("--idle-timeout", f.idle_timeout, "Close a link that sent nothing for this long")->capture_default_str();
  app.add_option("--restart-reconnect-in", f.restart_reconnect_in,
                 "On SIGTERM/SIGINT, tell peers to reconnect after this")->capture_default_str();
  app.add_option("--restart-try-for", f.restart_try_for, "... and to keep trying briskly for this long")->capture_default_str();
  app.add_option("--shutdown-grace", f.shutdown_grace, "Wait this long for the restarting frames to go out")->capture_default_str();
  app.add_option("--pair-linger", f.pair_linger,
                 "Keep a dial grant this long after one side disconnects, for its reconnect")->capture_default_str();
  app.add_option("--max-connections", f.max_connections, "Links open at once")->capture_default_str();
  app.add_option("--ws-rx-buffer-bytes", f.ws_rx_buffer, "Per-link WebSocket receive buffer: the most one read takes (an idle link commits one page of it)")->capture_default_str();
  app.add_option("--dev-token-ttl", f.dev_token_ttl, "Lifetime of the tokens --dev prints")->capture_default_str();
  app.add_option("--log-level", f.log_level, "debug, info, warn or error (default: AIRLOCK_LOG_LEVEL or info)");
  CLI11_PARSE(app, argc, argv);

  if (!f.log_level.empty() && !log::set_level(f.log_level))
    fail("--log-level " + f.log_level + ": use debug, info, warn or error");

  Config c;
  split_listen(f.listen, c);
  c.max_packet_bytes = size_flag("--max-packet-bytes", f.max_packet, 1, relay::kMaxPacketSize);
  c.queue_high_bytes = size_flag("--queue-high-bytes", f.queue_high, relay::kMaxFrameSize, uint64_t{1} << 34);
  c.queue_low_bytes = size_flag("--queue-low-bytes", f.queue_low, 0, uint64_t{1} << 34);
  c.queue_hard_cap_bytes = size_flag("--queue-hard-cap-bytes", f.queue_hard_cap, 1, uint64_t{1} << 36);
  c.control_queue_bytes = size_flag("--control-queue-bytes", f.control_queue, 4096, uint64_t{1} << 30);
  c.rate_bytes_per_second = static_cast<double>(size_flag("--rate-bytes-per-sec", f.rate, 0, uint64_t{1} << 40));
  c.rate_burst_bytes = static_cast<double>(size_flag("--rate-burst-bytes", f.rate_burst, 0, uint64_t{1} << 40));
  c.hello_timeout = duration_flag("--hello-timeout", f.hello_timeout, milliseconds(100));
  c.keepalive_interval = duration_flag("--keepalive", f.keepalive, milliseconds(1000));
  c.idle_timeout = duration_flag("--idle-timeout", f.idle_timeout, milliseconds(1000));
  c.restart_reconnect_in = duration_flag("--restart-reconnect-in", f.restart_reconnect_in, milliseconds(0));
  c.restart_try_for = duration_flag("--restart-try-for", f.restart_try_for, milliseconds(0));
  c.shutdown_grace = duration_flag("--shutdown-grace", f.shutdown_grace, milliseconds(0));
  c.pair_linger = duration_flag("--pair-linger", f.pair_linger, milliseconds(0));
  c.ws_rx_buffer_bytes = size_flag("--ws-rx-buffer-bytes", f.ws_rx_buffer, 512, 1024 * 1024);
  c.max_connections = f.max_connections;
  c.control_per_second = f.control_per_sec;
  c.control_burst = f.control_burst;

  if (c.queue_low_bytes >= c.queue_high_bytes)
    fail("--queue-low-bytes (" + f.queue_low + ") must be below --queue-high-bytes (" + f.queue_high +
         "): lower the low watermark or raise the high one");
  if (c.queue_hard_cap_bytes < c.queue_high_bytes + 2 * relay::kMaxFrameSize)
    fail("--queue-hard-cap-bytes (" + f.queue_hard_cap + ") must exceed --queue-high-bytes (" + f.queue_high +
         ") by at least two frames (" + std::to_string(2 * relay::kMaxFrameSize) + " bytes): raise the hard cap");
  if (c.rate_bytes_per_second > 0 && c.rate_burst_bytes < relay::kMaxFrameSize)
    fail("--rate-burst-bytes (" + f.rate_burst + ") must hold one full frame (" + std::to_string(relay::kMaxFrameSize) +
         " bytes) when --rate-bytes-per-sec is set");
  if (c.idle_timeout <= c.keepalive_interval)
    fail("--idle-timeout (" + f.idle_timeout + ") must be longer than --keepalive (" + f.keepalive +
         "): peers send keep-alives at that interval");
  if (f.control_per_sec <= 0 || f.control_burst < 1)
    fail("--control-per-sec must be positive and --control-burst at least 1");
  if (f.max_connections < 1) fail("--max-connections must be at least 1");
  if (f.tls_cert.empty() != f.tls_key.empty())
    fail(f.tls_cert.empty() ? "--tls-key needs --tls-cert (the certificate for that key)"
                            : "--tls-cert needs --tls-key (the private key for that certificate)");
  if (f.dev && !f.issuer_public_key.empty())
    fail("--issuer-public-key and --dev do not mix: --dev creates and uses its own issuer key in --state-dir");
  if (!f.dev && f.issuer_public_key.empty())
    fail("--issuer-public-key is required: the control plane's Ed25519 public key (a file or base64). "
         "For a local try-out, run with --dev instead.");
  c.tls_cert = f.tls_cert;
  c.tls_key = f.tls_key;
  c.plain_on_tls_port = f.plain_on_tls_port;

  auto relay_key = load_or_create_relay_key(f.relay_key.empty() ? f.state_dir + "/relay.key" : f.relay_key);
  if (!relay_key) fail("--relay-key: " + relay_key.error().message);
  c.relay_private = *relay_key;

  std::optional<DevTokens> dev_tokens;
  std::string issuer_file;
  if (f.dev) {
    if (c.tls_cert.empty()) {
      c.tls_cert = f.state_dir + "/tls-cert.pem";
      c.tls_key = f.state_dir + "/tls-key.pem";
      if (auto s = ensure_dev_certificate(c.tls_cert, c.tls_key); !s) fail("--dev: " + s.error().message);
      c.plain_on_tls_port = true;
    }
    issuer_file = f.state_dir + "/issuer.key";
    auto issuer = load_or_create_issuer_key(issuer_file);
    if (!issuer) fail("--dev: " + issuer.error().message);
    c.issuer_public = issuer->public_key;
    auto ttl = duration_flag("--dev-token-ttl", f.dev_token_ttl, milliseconds(1000));
    dev_tokens = mint_dev_tokens(*issuer, std::chrono::duration_cast<std::chrono::seconds>(ttl));
  } else {
    auto issuer = token::load_public_key(f.issuer_public_key);
    if (!issuer) fail("--issuer-public-key: " + issuer.error().message);
    c.issuer_public = *issuer;
  }

  uv_loop_t* loop = uv_default_loop();
  {
    Relay relay(loop, c);
    if (auto s = relay.start(); !s) fail(s.error().message);
    const bool tls = relay.tls();
    const std::string where = display_host(c.listen_host) + ":" + std::to_string(relay.listen_port());
    std::printf("airlock-relay listening on %s:%d (%s)\n", c.listen_host.c_str(), relay.listen_port(),
                tls ? (c.plain_on_tls_port ? "ws, wss" : "wss") : "ws");
    std::printf("relay key %s\n", crypto::key_to_base64(crypto::x25519_public(c.relay_private)).c_str());
    if (dev_tokens) {
      std::printf("\nDevelopment mode. Connect with:\n");
      std::printf("  ws://%s/   or   wss://%s/ (trust %s)\n", where.c_str(), where.c_str(), c.tls_cert.c_str());
      std::printf("Issuer key: %s (mint more tokens with `airlock token mint`)\n", issuer_file.c_str());
      std::printf("Owner token (user admin, reaches every workspace):\n");
      std::printf("AIRLOCK_OWNER_TOKEN=%s\n", dev_tokens->owner.c_str());
      std::printf("Agent token (workspace demo, owner admin):\n");
      std::printf("AIRLOCK_AGENT_TOKEN=%s\n", dev_tokens->agent.c_str());
      const std::string issuer_public = crypto::key_to_base64(c.issuer_public);
      std::printf("Issuer public key (agents verify users' tokens with it):\n");
      std::printf("AIRLOCK_ISSUER_PUBLIC_KEY=%s\n", issuer_public.c_str());
      // The same values for scripts: `set -a; . STATE_DIR/dev.env` (tokens are secrets: mode 0600).
      const std::string env_file = f.state_dir + "/dev.env";
      std::string env = "AIRLOCK_RELAY_URL=ws://" + where + "/\nAIRLOCK_RELAY_URL_TLS=wss://" + where +
                        "/\nAIRLOCK_CA=" + c.tls_cert + "\nAIRLOCK_OWNER_TOKEN=" + dev_tokens->owner +
                        "\nAIRLOCK_AGENT_TOKEN=" + dev_tokens->agent + "\nAIRLOCK_ISSUER_PUBLIC_KEY=" + issuer_public +
                        "\n";
      if (auto s = write_private_file(env_file, env); !s)
        LOG_WARN("relay", "cannot write %s: %s", env_file.c_str(), s.error().message.c_str());
      else
        std::printf("(also in %s)\n", env_file.c_str());
      std::printf("\n");
    }
    std::fflush(stdout);

    net::Signal sigterm(loop), sigint(loop);
    auto on_signal = [&](int signum) {
      LOG_INFO("relay", "%s received", signum == SIGTERM ? "SIGTERM" : "SIGINT");
      relay.begin_shutdown();
    };
    sigterm.start(SIGTERM, on_signal);
    sigint.start(SIGINT, on_signal);
    relay.on_stopped = [&] {
      sigterm.stop();
      sigint.stop();
    };
    uv_run(loop, UV_RUN_DEFAULT);
  }
  uv_run(loop, UV_RUN_DEFAULT);  // let the handles closed above finish closing
  uv_loop_close(loop);
  return 0;
}
