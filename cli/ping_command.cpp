// `airlock ping WS` — round trips through the relay and the tunnel to the workspace's agent.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <vector>

#include "cli/commands.hpp"
#include "cli/workspace_connection.hpp"
#include "common/net/uv.hpp"
#include "common/util/duration.hpp"

namespace airlock::cli {

void add_client_options(CLI::App* cmd, ClientOptions& o) {
  cmd->add_option("--url", o.url, "Relay URL (default: AIRLOCK_URL, then `airlock login`)");
  cmd->add_option("--token", o.token, "Your token (default: AIRLOCK_TOKEN, then `airlock login`)");
  cmd->add_option("--ca", o.ca_file, "Trust this certificate for wss:// (default: AIRLOCK_CA)");
}

namespace {

struct PingOptions {
  ClientOptions client;
  std::string workspace;
  int count = 0;
  std::string interval = "1s";
  std::string timeout = "5s";
};

// Sends [seq u64][sent_us u64] probes on the `ping` stream and matches the echoes.
class Pinger final : public net::StreamHandler {
 public:
  Pinger(CommandContext& ctx, net::PeerLink& link, const PingOptions& o, std::chrono::milliseconds interval,
         std::chrono::milliseconds timeout)
      : ctx_(ctx), link_(link), o_(o), interval_(interval), timeout_(timeout), timer_(ctx.loop) {}
  stream::StreamId id = 0;

  void start() {
    started_ = std::chrono::steady_clock::now();
    send_probe();
    timer_.start(interval_, [this] { tick(); }, interval_);
  }
  void on_data(ByteView data) override {
    buffer_.insert(buffer_.end(), data.begin(), data.end());
    link_.consume(id, data.size());
    while (buffer_.size() >= 16) {
      uint64_t seq = load_be64(buffer_.data());
      uint64_t sent_us = load_be64(buffer_.data() + 8);
      buffer_.erase(buffer_.begin(), buffer_.begin() + 16);
      double ms = (now_us() - sent_us) / 1000.0;
      rtts_.push_back(ms);
      std::printf("pong from %s seq=%llu time=%.2f ms\n", o_.workspace.c_str(), static_cast<unsigned long long>(seq), ms);
      std::fflush(stdout);
      if (o_.count > 0 && rtts_.size() >= static_cast<size_t>(o_.count)) done();
    }
  }
  void on_reset(uint32_t code, std::string_view reason) override {
    std::cerr << "airlock ping: " << describe_reset(code, reason) << "\n";
    closed_ = true;
    summary(1);
  }
  void on_closed() override { closed_ = true; }
  void done() { summary(0); }

 private:
  static uint64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void send_probe() {
    uint8_t probe[16];
    store_be64(probe, ++sent_);
    store_be64(probe + 8, now_us());
    last_sent_ = std::chrono::steady_clock::now();
    link_.write(id, ByteView(probe, sizeof probe));
  }
  void tick() {
    if (o_.count > 0 && sent_ >= static_cast<uint64_t>(o_.count)) {
      // All sent: wait up to the timeout for the last echoes.
      if (std::chrono::steady_clock::now() - last_sent_ >= timeout_) summary(rtts_.empty() ? 1 : 0);
      return;
    }
    send_probe();
  }
  void summary(int code) {
    if (summarised_) return;
    summarised_ = true;
    timer_.stop();
    size_t received = rtts_.size();
    double loss = sent_ ? 100.0 * static_cast<double>(sent_ - std::min<uint64_t>(sent_, received)) / sent_ : 0;
    std::printf("\n--- %s ping statistics ---\n%llu sent, %zu received, %.0f%% loss", o_.workspace.c_str(),
                static_cast<unsigned long long>(sent_), received, loss);
    if (received) {
      auto sorted = rtts_;
      std::sort(sorted.begin(), sorted.end());
      double sum = 0;
      for (double r : sorted) sum += r;
      std::printf(", rtt min/avg/p50/max = %.2f/%.2f/%.2f/%.2f ms", sorted.front(), sum / received,
                  sorted[sorted.size() / 2], sorted.back());
    }
    std::printf("\n");
    std::fflush(stdout);
    if (!closed_) link_.detach(id, "ping finished");
    ctx_.finish(code == 0 && received == 0 ? 1 : code);
  }

  CommandContext& ctx_;
  net::PeerLink& link_;
  const PingOptions& o_;
  std::chrono::milliseconds interval_, timeout_;
  net::Timer timer_;
  Bytes buffer_;
  std::vector<double> rtts_;
  uint64_t sent_ = 0;
  std::chrono::steady_clock::time_point started_, last_sent_;
  bool summarised_ = false, closed_ = false;
};

}  // namespace

void add_ping_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("ping", "Measure round trips to a workspace through the relay and the tunnel");
  auto o = std::make_shared<PingOptions>();
  cmd->add_option("workspace", o->workspace, "Workspace name")->required();
  cmd->add_option("-c,--count", o->count, "Stop after this many replies (default: until Ctrl-C)");
  cmd->add_option("-i,--interval", o->interval, "Time between probes")->capture_default_str();
  cmd->add_option("--timeout", o->timeout, "How long to wait for the last reply")->capture_default_str();
  add_client_options(cmd, o->client);
  cmd->callback([o] {
    auto interval = parse_duration(o->interval);
    if (!interval || interval->count() < 10) {
      std::cerr << "airlock ping: --interval: " << (interval ? "must be at least 10ms" : interval.error().message) << "\n";
      throw CLI::RuntimeError(2);
    }
    auto timeout = parse_duration(o->timeout);
    if (!timeout) {
      std::cerr << "airlock ping: --timeout: " << timeout.error().message << "\n";
      throw CLI::RuntimeError(2);
    }
    int code = run_workspace_command(o->client, o->workspace, false,
                                     [&](CommandContext& ctx, net::PeerLink& link, const nlohmann::json&) {
                                       auto* pinger = ctx.own(std::make_unique<Pinger>(ctx, link, *o, *interval, *timeout));
                                       pinger->id = link.open("ping", nlohmann::json::object(),
                                                              stream::Priority::interactive, pinger);
                                       ctx.on_interrupt = [pinger] { pinger->done(); };
                                       pinger->start();
                                     });
    throw CLI::RuntimeError(code);
  });
}

}  // namespace airlock::cli
