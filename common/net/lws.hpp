// libwebsockets on a caller's libuv loop, with RAII.
//
// An LwsContext joins lws to a foreign uv loop (LWS_SERVER_OPTION_LIBUV + foreign_loops). Its
// owner (a server or client object) is reachable from any wsi through owner(); the destructor
// detaches the owner at once, so callbacks that arrive during lws's asynchronous teardown see
// nullptr and must do nothing. lws_context_destroy() itself runs on the next loop turn, never
// inside an lws callback, and the bookkeeping is freed once lws reports the context fully gone.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <libwebsockets.h>
#include <uv.h>

#include "common/util/result.hpp"

namespace airlock::net {

class LwsContext {
 public:
  // info.options gets LWS_SERVER_OPTION_LIBUV; info.foreign_loops, info.user and info.pcontext are
  // set here. info.protocols must outlive the context (use static arrays).
  static Result<std::unique_ptr<LwsContext>> create(uv_loop_t* loop, lws_context_creation_info info, void* owner);
  ~LwsContext();
  LwsContext(const LwsContext&) = delete;
  LwsContext& operator=(const LwsContext&) = delete;

  lws_context* get() const;

  // The owner given to create(), or nullptr once the LwsContext is being destroyed.
  static void* owner(lws_context* context);
  static void* owner(lws* wsi);

 private:
  struct Slot;
  explicit LwsContext(Slot* slot) : slot_(slot) {}
  Slot* slot_;
};

// Routes libwebsockets' own log lines into Airlock's log (component "lws"); once per process.
void route_lws_logs();

// ws://host[:port][/path] or wss://...; IPv6 hosts in brackets.
struct WsUrl {
  bool tls = false;
  std::string host;  // without brackets
  int port = 0;
  std::string path = "/";
  std::string host_header() const;  // host[:port] as it goes in Host:
};
Result<WsUrl> parse_ws_url(std::string_view url);

// "ip:port" (IPv6 as "[ip]:port") of the socket's peer.
std::string peer_address(lws* wsi);

}  // namespace airlock::net
