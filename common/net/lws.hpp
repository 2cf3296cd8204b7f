// libwebsockets on a caller's libuv loop, with RAII.
//
// An LwsContext joins lws to a foreign uv loop (LWS_SERVER_OPTION_LIBUV + foreign_loops). Its
// owner (a server or client object) is reachable from any wsi through owner(); the destructor
// detaches the owner at once, so callbacks that arrive during lws's asynchronous teardown see
// nullptr and must do nothing. lws_context_destroy() itself runs on the next loop turn, never
// inside an lws callback, and the bookkeeping is freed once lws reports the context fully gone.
//
// A client context's TLS configuration (SSL_CTX) is ours, not lws's: lws 4.1 finds the client
// SSL_CTX it made through an OpenSSL ex-data index kept in a process-wide variable that every new
// context re-allocates, so with several contexts in one process it frees only the newest one's.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <libwebsockets.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "common/util/result.hpp"

namespace airlock::net {

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using ClientTls = std::unique_ptr<SSL_CTX, SslCtxFree>;

// The TLS configuration for client links: TLS 1.2 or later, peers verified against ca_file alone,
// or against the system store when ca_file is empty. lws still sets the expected host name and
// the verify callback on each connection.
Result<ClientTls> make_client_tls(const std::string& ca_file);

class LwsContext {
 public:
  // info.options gets LWS_SERVER_OPTION_LIBUV; info.foreign_loops, info.user and info.pcontext are
  // set here. info.protocols must outlive the context (use static arrays). client_tls, if given,
  // is what the context's client connections use; it is freed only after lws has let go of it.
  static Result<std::unique_ptr<LwsContext>> create(uv_loop_t* loop, lws_context_creation_info info, void* owner,
                                                    ClientTls client_tls = nullptr);
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
