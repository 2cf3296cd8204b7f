// `airlock speedtest WS [--direction up|down] [-t 5s] [-o table|json]` — bulk throughput through
// the relay and the tunnel, one line per second and a total.
#include <cstdio>
#include <iostream>
#include <vector>

#include "cli/commands.hpp"
#include "cli/workspace_connection.hpp"
#include "common/net/uv.hpp"
#include "common/util/duration.hpp"

namespace airlock::cli {

namespace {

struct SpeedOptions {
  ClientOptions client;
  std::string workspace;
  std::string direction = "down";
  std::string duration = "5s";
  std::string output = "table";
};

struct Interval {
  double start_s, end_s;
  uint64_t bytes;
};

class SpeedTest final : public net::StreamHandler {
 public:
  SpeedTest(CommandContext& ctx, net::PeerLink& link, const SpeedOptions& o, std::chrono::milliseconds duration)
      : ctx_(ctx), link_(link), o_(o), duration_(duration), timer_(ctx.loop), chunk_(16 * 1024, 0xa5) {}
  stream::StreamId id = 0;

  void start() {
    start_ = last_ = std::chrono::steady_clock::now();
    if (o_.output == "table") std::printf("%-16s %14s %16s\n", "Interval", "Transfer", "Bandwidth");
    timer_.start(std::chrono::seconds(1), [this] { report_interval(); }, std::chrono::seconds(1));
    if (up()) on_writable();
  }
  void on_data(ByteView data) override {
    link_.consume(id, data.size());
    if (up()) {
      reply_.append(as_chars(data));
      return;
    }
    interval_bytes_ += data.size();
    total_ += data.size();
  }
  void on_writable() override {
    if (!up() || finished_) return;
    for (int i = 0; i < 64; ++i) {
      if (std::chrono::steady_clock::now() - start_ >= duration_) {
        finished_ = true;
        link_.finish(id);
        return;
      }
      size_t n = link_.write(id, chunk_);
      interval_bytes_ += n;
      total_ += n;
      if (n < chunk_.size()) return;
    }
    link_.schedule_writable(id);
  }
  void on_finished() override { done(0); }
  void on_reset(uint32_t code, std::string_view reason) override {
    std::cerr << "airlock speedtest: " << describe_reset(code, reason) << "\n";
    done(1);
  }
  void on_closed() override { closed_ = true; }

 private:
  bool up() const { return o_.direction == "up"; }
  double since_start(std::chrono::steady_clock::time_point t) const {
    return std::chrono::duration<double>(t - start_).count();
  }
  void report_interval() {
    auto now = std::chrono::steady_clock::now();
    Interval iv{since_start(last_), since_start(now), interval_bytes_};
    intervals_.push_back(iv);
    if (o_.output == "table") print_row(iv);
    interval_bytes_ = 0;
    last_ = now;
  }
  static void print_row(const Interval& iv) {
    double secs = iv.end_s - iv.start_s;
    std::printf("%5.2f-%5.2f sec %10.2f MiB %11.2f Mbits/sec\n", iv.start_s, iv.end_s, iv.bytes / 1048576.0,
                secs > 0 ? iv.bytes * 8 / secs / 1e6 : 0);
    std::fflush(stdout);
  }
  void done(int code) {
    if (done_) return;
    done_ = true;
    timer_.stop();
    auto now = std::chrono::steady_clock::now();
    double secs = since_start(now);
    uint64_t bytes = total_;
    if (up()) {
      // The agent's own count of what arrived is the measurement; ours says what was sent.
      auto j = nlohmann::json::parse(reply_, nullptr, false);
      if (j.is_object() && j.contains("bytes")) {
        bytes = j["bytes"].get<uint64_t>();
        secs = j.value("seconds", secs);
      }
    }
    double mbps = secs > 0 ? bytes * 8 / secs / 1e6 : 0;
    if (o_.output == "json") {
      nlohmann::json out = {{"workspace", o_.workspace}, {"direction", o_.direction}, {"seconds", secs},
                            {"bytes", bytes},           {"mbits_per_second", mbps}};
      out["intervals"] = nlohmann::json::array();
      for (const auto& iv : intervals_)
        out["intervals"].push_back({{"start", iv.start_s}, {"end", iv.end_s}, {"bytes", iv.bytes}});
      std::printf("%s\n", out.dump(2).c_str());
    } else {
      std::printf("%s\n", std::string(48, '-').c_str());
      print_row({0, secs, bytes});
      std::printf("%s %s: %.2f Mbits/sec\n", o_.direction == "up" ? "upload to" : "download from", o_.workspace.c_str(),
                  mbps);
    }
    std::fflush(stdout);
    ctx_.finish(code);
  }

  CommandContext& ctx_;
  net::PeerLink& link_;
  const SpeedOptions& o_;
  std::chrono::milliseconds duration_;
  net::Timer timer_;
  Bytes chunk_;
  std::string reply_;
  std::chrono::steady_clock::time_point start_, last_;
  uint64_t interval_bytes_ = 0, total_ = 0;
  std::vector<Interval> intervals_;
  bool finished_ = false, done_ = false, closed_ = false;
};

}  // namespace

void add_speedtest_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("speedtest", "Measure throughput to or from a workspace through the relay");
  auto o = std::make_shared<SpeedOptions>();
  cmd->add_option("workspace", o->workspace, "Workspace name")->required();
  cmd->add_option("-d,--direction", o->direction, "down (workspace to you) or up")
      ->check(CLI::IsMember({"up", "down"}))
      ->capture_default_str();
  cmd->add_option("-t,--time", o->duration, "How long to run, e.g. 5s")->capture_default_str();
  cmd->add_option("-o,--output", o->output, "table or json")->check(CLI::IsMember({"table", "json"}))->capture_default_str();
  add_client_options(cmd, o->client);
  cmd->callback([o] {
    auto d = parse_duration(o->duration);
    if (!d || d->count() < 100 || d->count() > 60000) {
      std::cerr << "airlock speedtest: -t: " << (d ? "must be between 100ms and 60s" : d.error().message) << "\n";
      throw CLI::RuntimeError(2);
    }
    int code = run_workspace_command(o->client, o->workspace, o->output == "json",
                                     [&](CommandContext& ctx, net::PeerLink& link, const nlohmann::json&) {
      auto* test = ctx.own(std::make_unique<SpeedTest>(ctx, link, *o, *d));
      test->id = link.open("speedtest", {{"direction", o->direction}, {"duration_ms", d->count()}},
                           stream::Priority::bulk, test);
      test->start();
    });
    throw CLI::RuntimeError(code);
  });
}

}  // namespace airlock::cli
