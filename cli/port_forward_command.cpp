// `airlock port-forward WS --tcp 8080:80 [--tcp 9000-9002:9000-9002]` — local TCP listeners whose
// connections each become a `tcp` stream to a port inside the workspace.
#include <cstdio>
#include <iostream>
#include <regex>

#include "cli/commands.hpp"
#include "cli/workspace_connection.hpp"
#include "common/net/stream_bridge.hpp"
#include "common/util/log.hpp"

namespace airlock::cli {

namespace {

struct Mapping {
  uint16_t local = 0;
  uint16_t remote = 0;
};

// "8080:80", "8080" (same port), "9000-9002:9000-9002" (ranges of equal length).
Result<std::vector<Mapping>> parse_mapping(const std::string& text) {
  static const std::regex form(R"(^(\d+)(?:-(\d+))?(?::(\d+)(?:-(\d+))?)?$)");
  std::smatch m;
  auto bad = [&](const std::string& why) { return make_error("--tcp " + text + ": " + why); };
  if (!std::regex_match(text, m, form)) return bad("expected LOCAL:REMOTE such as 8080:80 or 9000-9002:9000-9002");
  auto port = [](const std::ssub_match& s) { return s.matched ? std::stol(s.str()) : -1L; };
  long l1 = port(m[1]), l2 = port(m[2]), r1 = port(m[3]), r2 = port(m[4]);
  if (l2 < 0) l2 = l1;
  if (r1 < 0) { r1 = l1; r2 = l2; }
  if (r2 < 0) r2 = r1;
  for (long p : {l1, l2, r1, r2})
    if (p < 1 || p > 65535) return bad("ports are 1-65535");
  if (l2 < l1 || r2 < r1) return bad("a range ends before it starts");
  if (l2 - l1 != r2 - r1) return bad("the local and remote ranges must be the same length");
  std::vector<Mapping> out;
  for (long i = 0; i <= l2 - l1; ++i) out.push_back({static_cast<uint16_t>(l1 + i), static_cast<uint16_t>(r1 + i)});
  return out;
}

struct Listener {
  uv_tcp_t tcp;
  Mapping mapping;
  CommandContext* ctx;
  net::PeerLink* link;
  std::string workspace;
};

void on_connection(uv_stream_t* server, int status) {
  auto* l = static_cast<Listener*>(server->data);
  if (status != 0) return;
  auto* client = new uv_tcp_t;
  uv_tcp_init(server->loop, client);
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(client)) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(client), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    return;
  }
  uv_tcp_nodelay(client, 1);
  uint16_t remote = l->mapping.remote;
  std::string ws = l->workspace;
  auto* bridge = new net::StreamBridge(*l->link, reinterpret_cast<uv_stream_t*>(client),
                                       reinterpret_cast<uv_stream_t*>(client), [remote, ws](const std::string& reason) {
                                         // One failed connection says why and leaves the others alone.
                                         if (!reason.empty())
                                           std::cerr << "connection to " << ws << ":" << remote << " ended: " << reason
                                                     << "\n";
                                       });
  auto id = l->link->open("tcp", {{"port", remote}}, stream::Priority::bulk, bridge);
  if (id == 0) {
    bridge->abort("cannot open a stream");
    return;
  }
  bridge->start(id);
}

struct ForwardOptions {
  ClientOptions client;
  std::string workspace;
  std::vector<std::string> tcp;
  std::string bind = "127.0.0.1";
};

}  // namespace

void add_port_forward_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("port-forward", "Forward local TCP ports to ports inside a workspace");
  auto o = std::make_shared<ForwardOptions>();
  cmd->add_option("workspace", o->workspace, "Workspace name")->required();
  cmd->add_option("--tcp", o->tcp, "LOCAL:REMOTE port or range, e.g. 8080:80 or 9000-9002:9000-9002 (repeatable)")
      ->required();
  cmd->add_option("--bind", o->bind, "Local address to listen on")->capture_default_str();
  add_client_options(cmd, o->client);
  cmd->callback([o] {
    std::vector<Mapping> mappings;
    for (const auto& t : o->tcp) {
      auto m = parse_mapping(t);
      if (!m) {
        std::cerr << "airlock port-forward: " << m.error().message << "\n";
        throw CLI::RuntimeError(2);
      }
      mappings.insert(mappings.end(), m->begin(), m->end());
    }
    std::vector<std::unique_ptr<Listener>> listeners;
    int code = run_workspace_command(o->client, o->workspace, false,
                                     [&](CommandContext& ctx, net::PeerLink& link, const nlohmann::json&) {
      for (const auto& m : mappings) {
        auto l = std::make_unique<Listener>();
        l->mapping = m;
        l->ctx = &ctx;
        l->link = &link;
        l->workspace = o->workspace;
        uv_tcp_init(ctx.loop, &l->tcp);
        l->tcp.data = l.get();
        sockaddr_storage addr;
        int rc = o->bind.find(':') != std::string::npos
                     ? uv_ip6_addr(o->bind.c_str(), m.local, reinterpret_cast<sockaddr_in6*>(&addr))
                     : uv_ip4_addr(o->bind.c_str(), m.local, reinterpret_cast<sockaddr_in*>(&addr));
        if (rc == 0) rc = uv_tcp_bind(&l->tcp, reinterpret_cast<sockaddr*>(&addr), 0);
        if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&l->tcp), 128, on_connection);
        if (rc != 0) {
          std::cerr << "airlock port-forward: cannot listen on " << o->bind << ":" << m.local << ": " << uv_strerror(rc)
                    << "\n";
          uv_close(reinterpret_cast<uv_handle_t*>(&l->tcp), nullptr);
          listeners.push_back(std::move(l));
          ctx.finish(1);
          return;
        }
        std::printf("Forwarding %s:%u -> %s:%u\n", o->bind.c_str(), m.local, o->workspace.c_str(), m.remote);
        listeners.push_back(std::move(l));
      }
      // On the way out, stop listening first so the loop can wind down at once.
      ctx.finish = [&listeners, finish = ctx.finish](int code) {
        for (auto& l : listeners)
          if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&l->tcp))) uv_close(reinterpret_cast<uv_handle_t*>(&l->tcp), nullptr);
        finish(code);
      };
      std::printf("Ready!\n");
      std::fflush(stdout);
    });
    throw CLI::RuntimeError(code == 130 || code == 143 ? 0 : code);
  });
}

}  // namespace airlock::cli
