// `airlock status WS` and `airlock logs WS [-f]`.
#include <cstdio>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/workspace_connection.hpp"

namespace airlock::cli {

namespace {

// Reads a stream to its end, passing each chunk on.
class Reader final : public net::StreamHandler {
 public:
  Reader(CommandContext& ctx, net::PeerLink& link, std::function<void(std::string_view)> chunk,
         std::function<void()> end)
      : ctx_(ctx), link_(link), chunk_(std::move(chunk)), end_(std::move(end)) {}
  stream::StreamId id = 0;
  void on_data(ByteView data) override {
    chunk_(as_chars(data));
    link_.consume(id, data.size());
  }
  void on_finished() override {
    if (end_) end_();
    ctx_.finish(0);
  }
  void on_reset(uint32_t code, std::string_view reason) override {
    std::cerr << "airlock: " << describe_reset(code, reason) << "\n";
    ctx_.finish(1);
  }
  void on_closed() override {}

 private:
  CommandContext& ctx_;
  net::PeerLink& link_;
  std::function<void(std::string_view)> chunk_;
  std::function<void()> end_;
};

std::string str(const nlohmann::json& j, const char* key, const char* fallback = "-") {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
  return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
}

std::string human_bytes(double n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (n >= 1024 && u < 4) {
    n /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", n, units[u]);
  return buf;
}

void print_status(const std::string& ws, const nlohmann::json& s) {
  std::printf("Workspace %s\n", ws.c_str());
  const auto& lc = s.contains("lifecycle") ? s["lifecycle"] : nlohmann::json::object();
  std::printf("  lifecycle   %s\n", str(lc, "state").c_str());
  if (s.contains("apps") && s["apps"].is_array() && !s["apps"].empty()) {
    std::printf("\nApps\n");
    for (const auto& a : s["apps"])
      std::printf("  %-20s %-12s %s\n", str(a, "slug").c_str(), str(a, "health").c_str(), str(a, "url").c_str());
  }
  if (s.contains("metadata") && s["metadata"].is_array() && !s["metadata"].empty()) {
    std::printf("\nMetadata\n");
    for (const auto& m : s["metadata"]) {
      std::string v = str(m, "value", "");
      if (v.empty()) v = "(" + str(m, "error", "no value yet") + ")";
      std::printf("  %-20s %s\n", str(m, "display_name").c_str(), v.c_str());
    }
  }
  if (s.contains("listening_ports") && s["listening_ports"].is_array() && !s["listening_ports"].empty()) {
    std::printf("\nListening ports\n");
    for (const auto& p : s["listening_ports"])
      std::printf("  %-8s %s\n", str(p, "port").c_str(), str(p, "process").c_str());
  }
  if (s.contains("stats") && s["stats"].is_object()) {
    const auto& st = s["stats"];
    auto sessions = [](const nlohmann::json& m) {
      std::string out;
      if (m.is_object())
        for (auto it = m.begin(); it != m.end(); ++it)
          out += (out.empty() ? "" : ", ") + it.key() + " " + it.value().dump();
      return out.empty() ? std::string("none") : out;
    };
    std::printf("\nStats\n");
    std::printf("  traffic     %s in, %s out\n", human_bytes(st.value("bytes_in", 0.0)).c_str(),
                human_bytes(st.value("bytes_out", 0.0)).c_str());
    std::printf("  sessions    open: %s; since start: %s\n", sessions(st.value("sessions_open", nlohmann::json())).c_str(),
                sessions(st.value("sessions_total", nlohmann::json())).c_str());
    if (st.contains("peers") && st["peers"].is_array())
      for (const auto& p : st["peers"])
        if (p.is_object())
          std::printf("  peer        %s  %.1f ms\n", str(p, "peer").c_str(), p.value("latency_ms", 0.0));
  }
}

}  // namespace

void add_status_commands(CLI::App& app) {
  {
    auto* cmd = app.add_subcommand("status", "Show a workspace's lifecycle, apps, metadata and ports");
    auto o = std::make_shared<ClientOptions>();
    auto ws = std::make_shared<std::string>();
    auto json = std::make_shared<bool>(false);
    cmd->add_option("workspace", *ws, "Workspace name")->required();
    cmd->add_flag("--json", *json, "Print the status document as JSON");
    add_client_options(cmd, *o);
    cmd->callback([o, ws, json] {
      std::string text;
      int code = run_workspace_command(*o, *ws, true, [&](CommandContext& ctx, net::PeerLink& link, const nlohmann::json&) {
        auto* reader = ctx.own(std::make_unique<Reader>(ctx, link, [&](std::string_view c) { text += c; }, nullptr));
        reader->id = link.open("status", nlohmann::json::object(), stream::Priority::interactive, reader);
      });
      if (code == 0) {
        auto doc = nlohmann::json::parse(text, nullptr, false);
        if (*json || doc.is_discarded()) std::fwrite(text.data(), 1, text.size(), stdout);
        else print_status(*ws, doc);
      }
      throw CLI::RuntimeError(code);
    });
  }
  {
    auto* cmd = app.add_subcommand("logs", "Show the output of a workspace's startup and shutdown scripts");
    auto o = std::make_shared<ClientOptions>();
    auto ws = std::make_shared<std::string>();
    auto follow = std::make_shared<bool>(false);
    cmd->add_option("workspace", *ws, "Workspace name")->required();
    cmd->add_flag("-f,--follow", *follow, "Keep printing new output");
    add_client_options(cmd, *o);
    cmd->callback([o, ws, follow] {
      int code = run_workspace_command(*o, *ws, true, [&](CommandContext& ctx, net::PeerLink& link, const nlohmann::json&) {
        auto* reader = ctx.own(std::make_unique<Reader>(ctx, link, [](std::string_view c) {
          std::fwrite(c.data(), 1, c.size(), stdout);
          std::fflush(stdout);
        }, nullptr));
        reader->id = link.open("logs", {{"follow", *follow}}, stream::Priority::interactive, reader);
      });
      throw CLI::RuntimeError(code == 130 ? 0 : code);
    });
  }
}

}  // namespace airlock::cli
