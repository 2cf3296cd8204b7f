#include "tests/support/deployment.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <stdexcept>

#include "common/crypto/crypto.hpp"
#include "tests/support/loopback.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace airlock::test {

namespace {

// Setup failures throw: the fixture runs inside doctest cases, which report the exception.
[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("test deployment: " + what); }

int64_t now_unix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  if (!f) fail("cannot write " + path.string());
}

}  // namespace

std::string relay_binary() { return AIRLOCK_BINARY_DIR "/relay/airlock-relay"; }
std::string agent_binary() { return AIRLOCK_BINARY_DIR "/agent/airlock-agent"; }
std::string cli_binary() { return AIRLOCK_BINARY_DIR "/cli/airlock"; }

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) fail("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (std::getenv("AIRLOCK_TEST_KEEP") == nullptr) fs::remove_all(path_, ec);
}

int free_port() {
  int port = free_loopback_port();
  if (port < 0) fail("cannot find a free port");
  return port;
}

Deployment::Deployment() : Deployment(Options{}) {}

Deployment::Deployment(Options options) : options_(std::move(options)), dir_("airlock-e2e") {
  relay_dir_ = dir_.path() / "relay";
  port_ = options_.port != 0 ? options_.port : free_port();
  start_relay();
  auto issuer = token::load_issuer_key((relay_dir_ / "issuer.key").string());
  if (!issuer) fail("cannot read the relay's issuer key: " + issuer.error().message);
  issuer_ = *issuer;
  auto owner = relay_->wait_for_match(R"(^AIRLOCK_OWNER_TOKEN=(\S+))", 5s);
  if (!owner) fail("relay printed no owner token:\n" + relay_->output());
  owner_token_ = *owner;
}

Deployment::~Deployment() {
  agents_.clear();  // agents first: they would only log the relay going away
  relay_.reset();
}

std::string Deployment::url() const {
  return std::string(options_.tls ? "wss" : "ws") + "://127.0.0.1:" + std::to_string(port_) + "/";
}

void Deployment::start_relay() {
  std::vector<std::string> args = {"--dev", "--state-dir", relay_dir_.string(), "--listen",
                                   "127.0.0.1:" + std::to_string(port_)};
  args.insert(args.end(), options_.relay_args.begin(), options_.relay_args.end());
  relay_ = Process::start(relay_binary(), args, {.env = {}, .cwd = "", .name = "relay"});
  if (!relay_) fail("cannot start " + relay_binary());
  if (!relay_->wait_for_line(R"(listening on 127\.0\.0\.1:\d+)", 20s)) fail("relay did not start:\n" + relay_->output());
}

void Deployment::stop_relay() {
  if (!relay_) return;
  relay_->signal(SIGTERM);
  if (!relay_->wait(15s)) relay_->kill();
  relay_.reset();
}

void Deployment::restart_relay() {
  stop_relay();
  start_relay();
}

std::pair<int, std::string> Deployment::http_get(const std::string& path, const std::string& bearer) const {
  int fd = connect_loopback(port_);
  if (fd < 0) return {0, "cannot connect"};
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!bearer.empty()) req += "Authorization: Bearer " + bearer + "\r\n";
  req += "\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return {0, "cannot send"};
  }
  std::string resp;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  std::smatch m;
  if (!std::regex_search(resp, m, std::regex(R"(^HTTP/1\.[01] (\d{3}))"))) return {0, resp};
  int status = std::stoi(m[1]);
  auto body_at = resp.find("\r\n\r\n");
  std::string head = body_at == std::string::npos ? resp : resp.substr(0, body_at);
  std::string body = body_at == std::string::npos ? "" : resp.substr(body_at + 4);
  // Chunked bodies (libwebsockets may send them): join the chunks.
  std::string lower = head;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.find("transfer-encoding: chunked") != std::string::npos) {
    std::string joined;
    size_t pos = 0;
    while (pos < body.size()) {
      size_t eol = body.find("\r\n", pos);
      if (eol == std::string::npos) break;
      size_t len = std::stoul(body.substr(pos, eol - pos), nullptr, 16);
      if (len == 0) break;
      joined += body.substr(eol + 2, len);
      pos = eol + 2 + len + 2;
    }
    body = joined;
  }
  return {status, body};
}

std::string Deployment::issuer_public_key() const { return crypto::key_to_base64(issuer_.public_key); }

std::string Deployment::mint_user(const std::string& sub, token::Role role, int64_t ttl_seconds,
                                  int64_t issued_seconds_ago) const {
  token::Claims c;
  c.sub = sub;
  c.email = sub + "@example.com";
  c.role = role;
  c.iat = now_unix() - issued_seconds_ago;
  c.exp = c.iat + ttl_seconds;
  return token::mint(issuer_, c);
}

std::string Deployment::mint_agent(const std::string& workspace, const std::string& owner) const {
  token::Claims c;
  c.sub = "agent-" + workspace;
  c.role = token::Role::agent;
  c.workspace_id = "ws-" + workspace;
  c.workspace_name = workspace;
  c.owner = owner;
  c.iat = now_unix();
  c.exp = c.iat + 3600;
  return token::mint(issuer_, c);
}

fs::path Deployment::agent_dir(const std::string& workspace) const { return dir_.path() / ("agent-" + workspace); }

Process& Deployment::start_agent(const std::string& workspace, AgentOptions options) {
  fs::path dir = agent_dir(workspace);
  fs::create_directories(dir);
  Process::Options po;
  po.name = "agent-" + workspace;
  po.env = {{"AIRLOCK_RELAY_URL", url()},
            {"AIRLOCK_AGENT_TOKEN", mint_agent(workspace, options.owner)},
            {"AIRLOCK_ISSUER_PUBLIC_KEY", issuer_public_key()},
            {"AIRLOCK_AGENT_STATE_DIR", (dir / "state").string()},
            {"AIRLOCK_AGENT_MANIFEST", ""}};
  if (!options.manifest_json.empty()) {
    write_file(dir / "manifest.json", options.manifest_json);
    po.env.back().second = (dir / "manifest.json").string();
  } else {
    po.env.pop_back();
  }
  if (options_.tls) po.env.emplace_back("AIRLOCK_CA", ca_file());
  for (auto& e : options.env) po.env.push_back(e);
  agents_.erase(workspace);
  auto p = Process::start(agent_binary(), options.args, po);
  if (!p) fail("cannot start " + agent_binary());
  Process& ref = *p;
  agents_[workspace] = std::move(p);
  return ref;
}

Process* Deployment::agent(const std::string& workspace) {
  auto it = agents_.find(workspace);
  return it == agents_.end() ? nullptr : it->second.get();
}

bool Deployment::wait_connected(const std::string& workspace, std::chrono::milliseconds timeout, size_t from_line) {
  Process* p = agent(workspace);
  return p && p->wait_for_line("connected to relay .* as workspace " + workspace, timeout, Process::Stream::any,
                               from_line);
}

std::vector<std::pair<std::string, std::string>> Deployment::cli_env(const std::string& token) const {
  std::vector<std::pair<std::string, std::string>> env = {{"AIRLOCK_URL", url()},
                                                          {"AIRLOCK_TOKEN", token.empty() ? owner_token_ : token}};
  if (options_.tls) env.emplace_back("AIRLOCK_CA", ca_file());
  return env;
}

std::unique_ptr<Process> Deployment::cli_start(const std::vector<std::string>& args, const std::string& token) const {
  Process::Options po;
  po.name = "airlock " + (args.empty() ? std::string() : args.front());
  po.env = cli_env(token);
  auto p = Process::start(cli_binary(), args, po);
  if (!p) fail("cannot start " + cli_binary());
  return p;
}

CliResult Deployment::cli(const std::vector<std::string>& args, const std::string& token,
                          std::chrono::milliseconds timeout) const {
  auto p = cli_start(args, token);
  CliResult r;
  auto code = p->wait(timeout);
  if (!code) p->kill();
  r.code = code ? *code : -1;
  p->wait_output_closed(2s);
  for (auto& line : p->lines()) (line.stream == Process::Stream::out ? r.out : r.err) += line.text + "\n";
  return r;
}

}  // namespace airlock::test
