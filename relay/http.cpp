// protocol[0]: plain HTTP on the relay's port.
//   GET /healthz             "ok" (503 "shutting down" while draining)
//   GET /metrics             Prometheus text exposition
//   GET /api/v2/workspaces   connected workspaces and their agents; Bearer token, owner or
//                            template-admin; 401/403 with {"error": "..."} otherwise
//   GET /api/v2/workspaces/{name | owner/name | id}
//                            one workspace: its agents and the status document its agent pushed
//                            (lifecycle, apps and health, metadata, listening ports, stats);
//                            owner, template-admin, auditor, or the member who owns it
// A WebSocket upgrade without the relay subprotocol lands here too and is refused.
#include <ctime>
#include <variant>

#include <nlohmann/json.hpp>

#include "common/util/log.hpp"
#include "relay/relay.hpp"

namespace airlock::relayd {

using nlohmann::json;
using namespace std::chrono;

namespace {

std::string rfc3339(system_clock::time_point t) {
  std::time_t s = system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string header(lws* wsi, lws_token_indexes h) {
  int n = lws_hdr_total_length(wsi, h);
  if (n <= 0 || n > 8192) return "";
  std::string out(static_cast<size_t>(n) + 1, '\0');
  int got = lws_hdr_copy(wsi, out.data(), n + 1, h);
  if (got < 0) return "";
  out.resize(static_cast<size_t>(got));
  return out;
}

std::string error_json(const std::string& message) { return json{{"error", message}}.dump() + "\n"; }

}  // namespace

Relay::HttpResponse Relay::route_http(std::string_view method, std::string_view path, std::string_view authorization) {
  if (method != "GET") return {405, "application/json", error_json("only GET is served here")};
  if (path == "/healthz") {
    if (shutting_down_) return {503, "text/plain; charset=utf-8", "shutting down\n"};
    return {200, "text/plain; charset=utf-8", "ok\n"};
  }
  if (path == "/metrics") return {200, std::string(metrics::Registry::kContentType), registry_.render()};
  if (path == "/api/v2/workspaces" || path == "/api/v2/workspaces/") return workspaces_api(authorization);
  constexpr std::string_view kWorkspace = "/api/v2/workspaces/";
  if (path.substr(0, kWorkspace.size()) == kWorkspace) return workspace_api(path.substr(kWorkspace.size()), authorization);
  return {404, "application/json", error_json("no such endpoint: " + std::string(path))};
}

// The bearer token's claims, or the 401 answer.
std::variant<token::Claims, Relay::HttpResponse> Relay::authenticate(std::string_view authorization) const {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size() || authorization.substr(0, kBearer.size()) != kBearer)
    return HttpResponse{401, "application/json", error_json("send Authorization: Bearer <token>")};
  auto claims = token::verify(authorization.substr(kBearer.size()), config_.issuer_public,
                              duration_cast<seconds>(system_clock::now().time_since_epoch()).count());
  if (!claims) return HttpResponse{401, "application/json", error_json(claims.error().message)};
  return *claims;
}

json Relay::workspace_json(const Workspace& ws) {
  json agents = json::array();
  for (const auto& key : ws.agents) {
    if (Peer* a = find(key))
      agents.push_back({{"key", a->key_b64}, {"connected_at", rfc3339(a->connected_wall)}, {"source", a->source}});
  }
  return {{"id", ws.ref.id}, {"name", ws.ref.name}, {"owner", ws.ref.owner}, {"agents", agents}};
}

Relay::HttpResponse Relay::workspaces_api(std::string_view authorization) {
  auto who = authenticate(authorization);
  if (auto* r = std::get_if<HttpResponse>(&who)) return *r;
  const auto& claims = std::get<token::Claims>(who);
  if (auto ok = relay::may_list_workspaces(claims); !ok) return {403, "application/json", error_json(ok.error().message)};
  json list = json::array();
  for (const auto& [id, ws] : workspaces_) {
    json entry = workspace_json(ws);
    if (ws.status.is_object()) entry["lifecycle"] = ws.status.value("lifecycle", json(nullptr));
    list.push_back(std::move(entry));
  }
  return {200, "application/json", json{{"workspaces", list}, {"count", list.size()}}.dump() + "\n"};
}

Relay::HttpResponse Relay::workspace_api(std::string_view reference, std::string_view authorization) {
  auto who = authenticate(authorization);
  if (auto* r = std::get_if<HttpResponse>(&who)) return *r;
  const auto& claims = std::get<token::Claims>(who);
  std::string error;
  Workspace* ws = find_workspace(std::string(reference), claims, error);
  if (!ws) return {404, "application/json", error_json(error)};
  if (auto ok = relay::may_read_workspace(claims, ws->ref); !ok) return {403, "application/json", error_json(ok.error().message)};
  json out = workspace_json(*ws);
  out["status"] = ws->status;
  out["status_updated_at"] = ws->status.is_null() ? json(nullptr) : json(rfc3339(ws->status_at));
  return {200, "application/json", out.dump(2) + "\n"};
}

int Relay::http_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  auto* self = static_cast<Relay*>(net::LwsContext::owner(wsi));
  auto* session = static_cast<HttpSession*>(user);
  switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
      return -1;  // a WebSocket without the airlock-relay.v1 subprotocol
    case LWS_CALLBACK_HTTP: {
      if (!self || !session) return -1;
      std::string method = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0 ? "GET" : "OTHER";
      std::string path(static_cast<const char*>(in), len);
      if (path.empty()) path = header(wsi, WSI_TOKEN_GET_URI);
      if (size_t q = path.find('?'); q != std::string::npos) path.resize(q);
      HttpResponse r = self->route_http(method, path, header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION));
      std::string label = r.status == 404 ? "other" : path;
      self->metrics_.http(label, r.status).inc();
      uint8_t buf[LWS_PRE + 1024];
      uint8_t* start = buf + LWS_PRE;
      uint8_t* p = start;
      uint8_t* end = buf + sizeof buf - 1;
      if (lws_add_http_common_headers(wsi, static_cast<unsigned>(r.status), r.content_type.c_str(), r.body.size(), &p, end))
        return 1;
      static const char kNoStore[] = "no-store";
      if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, reinterpret_cast<const uint8_t*>(kNoStore),
                                       sizeof kNoStore - 1, &p, end))
        return 1;
      if (r.status == 401) {
        static const char kChallenge[] = "Bearer realm=\"airlock\"";
        if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_WWW_AUTHENTICATE,
                                         reinterpret_cast<const uint8_t*>(kChallenge), sizeof kChallenge - 1, &p, end))
          return 1;
      }
      if (lws_finalize_write_http_header(wsi, start, &p, end)) return 1;
      session->body = new std::string(std::move(r.body));
      session->sent = 0;
      lws_callback_on_writable(wsi);
      return 0;
    }
    case LWS_CALLBACK_HTTP_WRITEABLE: {
      if (!session || !session->body) return 0;
      constexpr size_t kChunk = 16 * 1024;
      std::string& body = *session->body;
      size_t n = std::min(kChunk, body.size() - session->sent);
      std::vector<uint8_t> out(LWS_PRE + n);
      if (n) std::memcpy(out.data() + LWS_PRE, body.data() + session->sent, n);
      bool last = session->sent + n == body.size();
      if (lws_write(wsi, out.data() + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != static_cast<int>(n))
        return 1;
      session->sent += n;
      if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
      }
      delete session->body;
      session->body = nullptr;
      return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    case LWS_CALLBACK_CLOSED_HTTP:
      if (session) {
        delete session->body;
        session->body = nullptr;
      }
      return 0;
    default:
      return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

}  // namespace airlock::relayd
