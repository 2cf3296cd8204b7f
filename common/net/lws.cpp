#include "common/net/lws.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <mutex>

#include <openssl/err.h>

#include "common/util/log.hpp"

namespace airlock::net {

struct LwsContext::Slot {
  void* owner = nullptr;
  lws_context* context = nullptr;  // lws writes nullptr here when its teardown has finished
  uv_check_t reaper;  // calls lws_context_destroy(), last thing in a loop turn (see ~LwsContext)
  uv_timer_t waker;   // keeps the loop turning while the teardown lasts
  int handles_open = 0;
  bool destroy_called = false;
  ClientTls client_tls;  // lws's vhost points at it until the context is gone
};

Result<ClientTls> make_client_tls(const std::string& ca_file) {
  ClientTls ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return make_error("cannot create a TLS client context");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  const bool loaded = ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx.get()) == 1
                                      : SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr) == 1;
  if (!loaded) {
    char why[256] = "no reason given";
    if (unsigned long e = ERR_get_error()) ERR_error_string_n(e, why, sizeof why);
    ERR_clear_error();
    return make_error(ca_file.empty() ? std::string("cannot load the system's trusted certificates: ") + why
                                      : "cannot load the CA file " + ca_file + ": " + why);
  }
  return ctx;
}

Result<std::unique_ptr<LwsContext>> LwsContext::create(uv_loop_t* loop, lws_context_creation_info info, void* owner,
                                                       ClientTls client_tls) {
  route_lws_logs();
  auto* slot = new Slot;
  slot->owner = owner;
  if (client_tls) {
    // lws 4.1 takes a provided client SSL_CTX only with its SSL global init on.
    info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.provided_client_ssl_ctx = client_tls.get();
    slot->client_tls = std::move(client_tls);
  }
  void* loops[1] = {loop};
  info.options |= LWS_SERVER_OPTION_LIBUV;
  info.foreign_loops = loops;
  info.user = slot;
  info.pcontext = &slot->context;
  slot->context = lws_create_context(&info);
  if (!slot->context) {
    // lws may have added handles to the loop before failing: leak the slot rather than free memory
    // lws could still write to (pcontext) while it unwinds.
    slot->owner = nullptr;
    return make_error("libwebsockets could not create its context (see the lws log lines above)");
  }
  uv_check_init(loop, &slot->reaper);
  uv_timer_init(loop, &slot->waker);
  slot->reaper.data = slot->waker.data = slot;
  slot->handles_open = 2;
  return std::unique_ptr<LwsContext>(new LwsContext(slot));
}

LwsContext::~LwsContext() {
  slot_->owner = nullptr;
  // Destroy on a later loop turn (we may be inside an lws callback of this very context). lws's
  // destroy is a state machine: with a foreign loop each call closes what it can and returns, and
  // a later call moves on once those uv handle closes have completed; the last call frees the
  // context (uv handles live inside it) and writes nullptr through pcontext. So: call it, wait
  // until no handle on the loop is still closing, call again, until the context is gone.
  //
  // The calls are made from a check handle, right before libuv runs the turn's close callbacks,
  // because lws 4.1 closes its event pipe's fd twice: in lws_context_destroy(), and again in the
  // pipe handle's close callback. An fd opened in between (a socket of another link, a file
  // OpenSSL reads while verifying a certificate) would get that number and be closed under its
  // owner; between the check phase and those callbacks nothing on the loop opens anything.
  uv_timer_start(&slot_->waker, [](uv_timer_t*) {}, 0, 5);
  uv_check_start(&slot_->reaper, [](uv_check_t* c) {
    auto* slot = static_cast<Slot*>(c->data);
    if (slot->context) {
      bool closing = false;
      uv_walk(
          c->loop,
          [](uv_handle_t* h, void* arg) {
            if (uv_is_closing(h)) *static_cast<bool*>(arg) = true;
          },
          &closing);
      if (!closing) {
        slot->destroy_called = true;
        lws_context_destroy(slot->context);
      }
    }
    if (slot->context) return;  // still tearing down; again on the next turn
    uv_check_stop(&slot->reaper);
    uv_timer_stop(&slot->waker);
    auto closed = [](uv_handle_t* h) {
      auto* s = static_cast<Slot*>(h->data);
      if (--s->handles_open == 0) delete s;
    };
    uv_close(reinterpret_cast<uv_handle_t*>(&slot->reaper), closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&slot->waker), closed);
  });
}

lws_context* LwsContext::get() const { return slot_->context; }

void* LwsContext::owner(lws_context* context) {
  if (!context) return nullptr;
  auto* slot = static_cast<Slot*>(lws_context_user(context));
  return slot ? slot->owner : nullptr;
}

void* LwsContext::owner(lws* wsi) { return wsi ? owner(lws_get_context(wsi)) : nullptr; }

namespace {

void emit_lws_log(int level, const char* line) {
  std::string_view text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  // lws stamps its own time; drop a leading "[2026/...] X: " if present.
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find("] ");
    if (close != std::string_view::npos) text.remove_prefix(close + 2);
  }
  auto lvl = level == LLL_ERR ? log::Level::warn : log::Level::debug;
  if (!log::enabled(lvl)) return;
  log::write(lvl, "lws", "%.*s", static_cast<int>(text.size()), text.data());
}

}  // namespace

void route_lws_logs() {
  static std::once_flag once;
  std::call_once(once, [] {
    int levels = LLL_ERR;
    if (log::enabled(log::Level::debug)) levels |= LLL_WARN | LLL_NOTICE;
    lws_set_log_level(levels, emit_lws_log);
  });
}

std::string WsUrl::host_header() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if ((tls && port != 443) || (!tls && port != 80)) h += ":" + std::to_string(port);
  return h;
}

Result<WsUrl> parse_ws_url(std::string_view url) {
  WsUrl out;
  std::string_view rest;
  if (url.rfind("wss://", 0) == 0) {
    out.tls = true;
    rest = url.substr(6);
  } else if (url.rfind("ws://", 0) == 0) {
    rest = url.substr(5);
  } else {
    return make_error("relay URL \"" + std::string(url) + "\" must start with ws:// or wss://");
  }
  size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  out.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  std::string_view port_text;
  if (!hostport.empty() && hostport.front() == '[') {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) return make_error("relay URL \"" + std::string(url) + "\" has an unclosed [");
    out.host = std::string(hostport.substr(1, close - 1));
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return make_error("relay URL \"" + std::string(url) + "\" has junk after ]");
      port_text = after.substr(1);
    }
  } else {
    size_t colon = hostport.rfind(':');
    if (colon != std::string_view::npos) {
      out.host = std::string(hostport.substr(0, colon));
      port_text = hostport.substr(colon + 1);
    } else {
      out.host = std::string(hostport);
    }
  }
  if (out.host.empty()) return make_error("relay URL \"" + std::string(url) + "\" has no host");
  if (port_text.empty()) {
    out.port = out.tls ? 443 : 80;
  } else {
    int port = 0;
    for (char c : port_text) {
      if (c < '0' || c > '9' || port > 65535) return make_error("relay URL \"" + std::string(url) + "\" has a bad port");
      port = port * 10 + (c - '0');
    }
    if (port < 1 || port > 65535) return make_error("relay URL \"" + std::string(url) + "\" has a bad port");
    out.port = port;
  }
  return out;
}

std::string peer_address(lws* wsi) {
  int fd = lws_get_socket_fd(wsi);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (fd < 0 || getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "unknown";
  char ip[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
    return std::string(ip) + ":" + std::to_string(ntohs(sin->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
      inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], ip, sizeof ip);
      return std::string(ip) + ":" + std::to_string(ntohs(sin6->sin6_port));
    }
    inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(sin6->sin6_port));
  }
  return "unknown";
}

}  // namespace airlock::net
