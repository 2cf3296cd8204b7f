// The path a user travels, with the three real programs on loopback: airlock-relay --dev, an
// airlock-agent per workspace, and the airlock CLI. What a user checks: ping, port-forward
// (a large transfer arrives intact, many connections at once, a refused port), who may reach which
// workspace, a relay restart, wss://, speedtest.
//
// The "workspace" service behind port-forward is ContentServer below: a tiny HTTP server in this
// process on 127.0.0.1 (the agent runs on the same machine) whose bodies are a fixed-seed byte
// pattern, so the reader can check every byte, and whose SHA-256 of what it sent is compared with
// the SHA-256 of what arrived through the tunnel.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <atomic>
#include <csignal>
#include <chrono>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "tests/support/deployment.hpp"
#include "tests/support/loopback.hpp"

using namespace airlock;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

// 1 GiB in the normal build; ASan makes every program about 3x slower, so less there.
constexpr uint64_t kLargeTransfer = kSanitized ? 128ull << 20 : 1ull << 30;

// ---- content ------------------------------------------------------------------------------------

// Byte i of the body with a given seed: the bytes of splitmix64(seed, i / 8), little-endian.
// Fast to make and to check, and no two seeds (or offsets) look alike.
uint64_t pattern_word(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + index + 1;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Fills out with the pattern's bytes [offset, offset + size); offset must be a multiple of 8.
void fill_pattern(uint64_t seed, uint64_t offset, uint8_t* out, size_t size) {
  uint64_t word = offset / 8;
  size_t i = 0;
  for (; i + 8 <= size; i += 8, ++word) {
    uint64_t w = pattern_word(seed, word);
    std::memcpy(out + i, &w, 8);
  }
  if (i < size) {
    uint64_t w = pattern_word(seed, word);
    std::memcpy(out + i, &w, size - i);
  }
}

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t size) { EVP_DigestUpdate(ctx_, data, size); }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
      out += digits[md[i] >> 4];
      out += digits[md[i] & 15];
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

// ---- sockets ------------------------------------------------------------------------------------

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd >= 0) ::close(fd);
      fd = std::exchange(o.fd, -1);
    }
    return *this;
  }
};

void set_timeouts(int fd, std::chrono::seconds t) {
  timeval tv{static_cast<time_t>(t.count()), 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

bool send_all(int fd, const void* data, size_t size) {
  auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// ---- the workspace's HTTP server ----------------------------------------------------------------

// Answers `GET /bytes/<size>/<seed>` with <size> bytes of the pattern, then closes. Every
// connection gets its own thread; what each response sent is recorded (size and SHA-256).
class ContentServer {
 public:
  struct Served {
    uint64_t seed = 0;
    uint64_t bytes = 0;
    std::string sha256;
    bool complete = false;
  };

  ContentServer() {
    listen_.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = test::loopback_address(0);
    socklen_t len = sizeof a;
    if (::bind(listen_.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_.fd, 256) != 0 ||
        ::getsockname(listen_.fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("content server: cannot listen");
    port_ = ntohs(a.sin_port);
    if (::pipe(stop_) != 0) throw std::runtime_error("content server: pipe");
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~ContentServer() {
    stopping_ = true;
    (void)!::write(stop_[1], "x", 1);
    acceptor_.join();
    {
      std::lock_guard lock(mutex_);
      for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : workers_) t.join();
    ::close(stop_[0]);
    ::close(stop_[1]);
  }
  ContentServer(const ContentServer&) = delete;
  ContentServer& operator=(const ContentServer&) = delete;

  int port() const { return port_; }
  std::vector<Served> served() const {
    std::lock_guard lock(mutex_);
    return served_;
  }
  std::optional<Served> served_seed(uint64_t seed) const {
    std::lock_guard lock(mutex_);
    for (const auto& s : served_)
      if (s.seed == seed) return s;
    return std::nullopt;
  }

 private:
  void accept_loop() {
    for (;;) {
      pollfd p[2] = {{listen_.fd, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) continue;
      if (p[1].revents || stopping_) return;
      int fd = ::accept4(listen_.fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::lock_guard lock(mutex_);
      open_.push_back(fd);
      workers_.emplace_back([this, fd] { serve(fd); });
    }
  }

  void serve(int fd) {
    set_timeouts(fd, 60s);
    std::string request;
    char buf[4096];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 8192) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      request.append(buf, static_cast<size_t>(n));
    }
    unsigned long long size = 0, seed = 0;
    if (std::sscanf(request.c_str(), "GET /bytes/%llu/%llu ", &size, &seed) == 2) {
      std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                         std::to_string(size) + "\r\nConnection: close\r\n\r\n";
      Served s{seed, 0, "", false};
      Sha256 sha;
      bool ok = send_all(fd, head.data(), head.size());
      std::vector<uint8_t> chunk(256 * 1024);
      while (ok && s.bytes < size) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(chunk.size(), size - s.bytes));
        fill_pattern(seed, s.bytes, chunk.data(), n);
        sha.update(chunk.data(), n);
        ok = send_all(fd, chunk.data(), n);
        if (ok) s.bytes += n;
      }
      s.complete = ok;
      s.sha256 = sha.hex();
      std::lock_guard lock(mutex_);
      served_.push_back(s);
    } else {
      const char* bad = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      send_all(fd, bad, std::strlen(bad));
    }
    ::shutdown(fd, SHUT_WR);
    // Wait for the client's close so our FIN is not turned into a reset by unread bytes.
    while (::recv(fd, buf, sizeof buf, 0) > 0) {
    }
    std::lock_guard lock(mutex_);
    std::erase(open_, fd);
    ::close(fd);
  }

  Fd listen_;
  int port_ = 0;
  int stop_[2] = {-1, -1};
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  mutable std::mutex mutex_;
  std::vector<std::thread> workers_;
  std::vector<int> open_;
  std::vector<Served> served_;
};

// What a client read from `GET /bytes/<size>/<seed>` through a forwarded port.
struct Fetched {
  std::string error;       // empty when the response was read to the end
  int status = 0;          // HTTP status
  uint64_t body_bytes = 0;
  std::string sha256;      // of the body
  bool pattern_ok = false; // the body is exactly the pattern (checked byte for byte when asked)
  double seconds = 0;
};

Fetched fetch(int port, uint64_t size, uint64_t seed, bool check_pattern,
              std::chrono::seconds timeout = 60s) {
  Fetched f;
  auto start = Clock::now();
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  set_timeouts(s.fd, timeout);
  sockaddr_in a = test::loopback_address(port);
  if (::connect(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    f.error = std::string("connect: ") + std::strerror(errno);
    return f;
  }
  std::string req = "GET /bytes/" + std::to_string(size) + "/" + std::to_string(seed) +
                    " HTTP/1.1\r\nHost: workspace\r\nConnection: close\r\n\r\n";
  if (!send_all(s.fd, req.data(), req.size())) {
    f.error = "send failed";
    return f;
  }
  std::vector<uint8_t> buf(256 * 1024), expect(buf.size() + 8);
  std::string head;
  Sha256 sha;
  f.pattern_ok = check_pattern;
  uint64_t content_length = UINT64_MAX;
  for (;;) {
    ssize_t n = ::recv(s.fd, buf.data(), buf.size(), 0);
    if (n < 0) {
      f.error = std::string("recv: ") + std::strerror(errno);
      break;
    }
    if (n == 0) break;
    size_t off = 0;
    if (content_length == UINT64_MAX) {
      head.append(reinterpret_cast<char*>(buf.data()), static_cast<size_t>(n));
      auto end = head.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      std::sscanf(head.c_str(), "HTTP/1.%*d %d", &f.status);
      auto cl = head.find("Content-Length: ");
      content_length = cl == std::string::npos ? 0 : std::stoull(head.substr(cl + 16));
      // What followed the header in this read is body.
      size_t body_in_head = head.size() - (end + 4);
      off = static_cast<size_t>(n) - body_in_head;
    }
    const uint8_t* body = buf.data() + off;
    size_t len = static_cast<size_t>(n) - off;
    if (len == 0) continue;
    sha.update(body, len);
    if (f.pattern_ok) {
      // Compare against the pattern from the word boundary at or before this offset.
      uint64_t from = f.body_bytes & ~7ull;
      size_t skip = static_cast<size_t>(f.body_bytes - from);
      fill_pattern(seed, from, expect.data(), skip + len);
      if (std::memcmp(expect.data() + skip, body, len) != 0) f.pattern_ok = false;
    }
    f.body_bytes += len;
  }
  f.sha256 = sha.hex();
  f.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (f.error.empty() && f.body_bytes != content_length)
    f.error = "body ended after " + std::to_string(f.body_bytes) + " of " +
              (content_length == UINT64_MAX ? std::string("?") : std::to_string(content_length)) + " bytes";
  return f;
}

// A running `airlock port-forward WS --tcp L:R ...` that has said "Ready!".
struct Forward {
  std::unique_ptr<test::Process> process;
  std::vector<int> local_ports;
};

Forward start_forward(const test::Deployment& d, const std::string& workspace, const std::vector<int>& remotes,
                      const std::string& token = "") {
  Forward f;
  std::vector<std::string> args = {"port-forward", workspace};
  for (int remote : remotes) {
    int local = test::free_port();
    f.local_ports.push_back(local);
    args.push_back("--tcp");
    args.push_back(std::to_string(local) + ":" + std::to_string(remote));
  }
  f.process = d.cli_start(args, token);
  auto ready = f.process->wait_for_line("^Ready!$", 30s, test::Process::Stream::out);
  REQUIRE_MESSAGE(ready, f.process->output());
  return f;
}

// The CLI ends on SIGTERM with status 0 and no complaint.
void stop_forward(Forward& f) {
  f.process->signal(SIGTERM);
  auto code = f.process->wait(10s);
  CHECK_MESSAGE(code == std::optional<int>(0), f.process->output());
}

std::string err_lines(const test::Process& p) {
  std::string out;
  for (const auto& l : p.lines())
    if (l.stream == test::Process::Stream::err) out += l.text + "\n";
  return out;
}

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void start_demo(test::Deployment& d, const std::string& workspace = "demo", const std::string& owner = "admin") {
  test::Deployment::AgentOptions o;
  o.owner = owner;
  d.start_agent(workspace, o);
  REQUIRE_MESSAGE(d.wait_connected(workspace), d.agent(workspace)->output());
}

}  // namespace

TEST_CASE("ping reaches the workspace through the relay and prints a summary") {
  test::Deployment d;
  start_demo(d);

  auto r = d.cli({"ping", "demo", "-c", "3", "-i", "50ms"});
  INFO(r.all());
  CHECK(r.code == 0);
  CHECK(r.out.find("pong from demo seq=3") != std::string::npos);
  CHECK(r.out.find("3 sent, 3 received, 0% loss") != std::string::npos);
}

TEST_CASE("port-forward: a large transfer arrives intact, and 100 connections at once all complete") {
  test::Deployment d;
  start_demo(d);
  ContentServer server;
  Forward fwd = start_forward(d, "demo", {server.port()});

  {  // one large transfer
    auto t0 = Clock::now();
    Fetched f = fetch(fwd.local_ports[0], kLargeTransfer, 42, false);
    INFO(fwd.process->output());
    REQUIRE_MESSAGE(f.error.empty(), f.error);
    CHECK(f.status == 200);
    CHECK(f.body_bytes == kLargeTransfer);
    auto sent = server.served_seed(42);
    REQUIRE(sent);
    CHECK(sent->complete);
    CHECK(sent->bytes == kLargeTransfer);
    CHECK(f.sha256 == sent->sha256);
    MESSAGE("port-forward: " << (kLargeTransfer >> 20) << " MiB in " << since(t0) << " s ("
                             << kLargeTransfer * 8 / f.seconds / 1e6 << " Mbit/s)");
  }

  {  // 100 concurrent connections
    constexpr int kConnections = 100;
    constexpr uint64_t kEach = kSanitized ? 256 * 1024 : 1024 * 1024;
    std::vector<Fetched> results(kConnections);
    std::vector<std::thread> threads;
    auto t0 = Clock::now();
    for (int i = 0; i < kConnections; ++i)
      threads.emplace_back([&, i] { results[i] = fetch(fwd.local_ports[0], kEach + i, 1000 + i, true); });
    for (auto& t : threads) t.join();
    INFO(fwd.process->output());
    int good = 0;
    for (int i = 0; i < kConnections; ++i) {
      const Fetched& f = results[i];
      CHECK_MESSAGE(f.error.empty(), "connection " << i << ": " << f.error);
      CHECK_MESSAGE(f.pattern_ok, "connection " << i << ": content differs");
      CHECK(f.body_bytes == kEach + i);
      if (f.error.empty() && f.pattern_ok && f.body_bytes == kEach + i) ++good;
    }
    CHECK(good == kConnections);
    MESSAGE(kConnections << " connections of ~" << (kEach >> 10) << " KiB in " << since(t0) << " s");
    // Each connection ended cleanly: the CLI said nothing about any of them.
    CHECK_MESSAGE(err_lines(*fwd.process).find("ended:") == std::string::npos, fwd.process->output());
  }
  stop_forward(fwd);
}

TEST_CASE("port-forward: a refused remote port fails that connection clearly; the others keep working") {
  test::Deployment d;
  start_demo(d);
  ContentServer server;
  int closed_port = test::free_port();  // nothing listens there
  Forward fwd = start_forward(d, "demo", {server.port(), closed_port});

  // A long transfer is running on the good port while connections to the closed one fail.
  Fetched big;
  // A jthread: a failed REQUIRE below unwinds through its join instead of std::terminate.
  std::jthread runner([&] { big = fetch(fwd.local_ports[0], 64ull << 20, 7, true); });
  for (int i = 0; i < 3; ++i) {
    Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    set_timeouts(s.fd, 20s);
    sockaddr_in a = test::loopback_address(fwd.local_ports[1]);
    REQUIRE(::connect(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    char c;
    // The CLI closes the local connection: EOF (or a reset), not a hang.
    ssize_t n = ::recv(s.fd, &c, 1, 0);
    CHECK_MESSAGE(n <= 0, "read " << n << " bytes from a refused port");
    CHECK_MESSAGE(!(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)), "the refused connection was left open");
  }
  auto line = fwd.process->wait_for_line("connection to demo:" + std::to_string(closed_port) + " ended: .*refused", 10s,
                                         test::Process::Stream::err);
  CHECK_MESSAGE(line, fwd.process->output());
  if (line) MESSAGE("the CLI said: " << *line);

  runner.join();
  INFO(fwd.process->output());
  CHECK_MESSAGE(big.error.empty(), big.error);
  CHECK(big.pattern_ok);
  // And a new connection to the good port after the failures works too.
  Fetched after = fetch(fwd.local_ports[0], 1 << 20, 8, true);
  CHECK_MESSAGE(after.error.empty(), after.error);
  CHECK(after.pattern_ok);
  CHECK(fwd.process->running());
  stop_forward(fwd);
}

TEST_CASE("roles: a member reaches their own workspace only, an auditor none; bad tokens are refused with a reason") {
  test::Deployment d;
  start_demo(d, "alices", "alice");
  start_demo(d, "bobs", "bob");
  auto ping_as = [&](const std::string& workspace, const std::string& token) {
    std::vector<std::string> args = {"ping", workspace, "-c", "1", "-i", "50ms"};
    return d.cli(args, token, 30s);
  };

  {
    INFO("a member reaches their own workspace");
    auto r = ping_as("alices", d.mint_user("alice", token::Role::member));
    INFO(r.all());
    CHECK(r.code == 0);
    CHECK(r.out.find("1 sent, 1 received") != std::string::npos);
  }
  {
    INFO("a member reaches no one else's");
    auto r = ping_as("bobs", d.mint_user("alice", token::Role::member));
    INFO(r.all());
    CHECK(r.code != 0);
    CHECK(r.err.find("member alice may not reach bob's workspace bobs") != std::string::npos);
    CHECK(r.out.find("pong") == std::string::npos);
  }
  {
    INFO("the owner role reaches every workspace");
    auto r = ping_as("bobs", d.owner_token());
    INFO(r.all());
    CHECK(r.code == 0);
  }
  {
    INFO("an auditor reaches none, not even a workspace it would own");
    auto r = ping_as("alices", d.mint_user("alice", token::Role::auditor));
    INFO(r.all());
    CHECK(r.code != 0);
    CHECK(r.err.find("role auditor may not reach workspaces") != std::string::npos);
  }
  {
    INFO("an expired token is refused");
    auto r = ping_as("alices", d.mint_user("alice", token::Role::member, 60, 3600));
    INFO(r.all());
    CHECK(r.code != 0);
    CHECK(r.err.find("token expired at") != std::string::npos);
  }
  {
    INFO("a token signed by another issuer is refused");
    token::Claims c;
    c.sub = "alice";
    c.role = token::Role::owner;
    c.iat = std::time(nullptr);
    c.exp = c.iat + 3600;
    auto r = ping_as("alices", token::mint(token::IssuerKey::generate(), c));
    INFO(r.all());
    CHECK(r.code != 0);
    CHECK(r.err.find("token signature does not verify") != std::string::npos);
  }
  {
    INFO("an unknown workspace");
    auto r = ping_as("nosuch", d.owner_token());
    INFO(r.all());
    CHECK(r.code != 0);
    CHECK(r.err.find("nosuch") != std::string::npos);
  }
}

TEST_CASE("relay restart: the agent reconnects by itself and new pings work") {
  test::Deployment d;
  start_demo(d);
  auto r = d.cli({"ping", "demo", "-c", "1", "-i", "50ms"});
  REQUIRE_MESSAGE(r.code == 0, r.all());

  size_t from = d.agent("demo")->line_count();
  auto t0 = Clock::now();
  d.restart_relay();
  REQUIRE_MESSAGE(d.wait_connected("demo", 30s, from), d.agent("demo")->output());
  MESSAGE("the agent was back " << since(t0) << " s after the restart began");

  r = d.cli({"ping", "demo", "-c", "2", "-i", "50ms"});
  INFO(r.all());
  CHECK(r.code == 0);
  CHECK(r.out.find("2 sent, 2 received, 0% loss") != std::string::npos);
}

// A port-forward running across a relay restart: its relay link and the agent's both come back,
// it dials the workspace again, and the tunnel's streams resume. Which of the two reconnects
// first is a race; each order is forced here by stopping (SIGSTOP) the other one meanwhile.
void restart_under_port_forward(bool agent_first) {
  test::Deployment d;
  start_demo(d);
  ContentServer server;
  Forward fwd = start_forward(d, "demo", {server.port()});
  Fetched before = fetch(fwd.local_ports[0], 4 << 20, 1, true);
  REQUIRE_MESSAGE(before.error.empty(), before.error);

  test::Process& late = agent_first ? *fwd.process : *d.agent("demo");
  size_t agent_from = d.agent("demo")->line_count();
  size_t cli_from = fwd.process->line_count();
  late.signal(SIGSTOP);
  d.restart_relay();
  if (agent_first) {
    CHECK_MESSAGE(d.wait_connected("demo", 30s, agent_from), d.agent("demo")->output());
  } else {
    // The port-forward is back and has been told the workspace is not there (yet).
    CHECK_MESSAGE(fwd.process->wait_for_line("workspace demo is not connected", 30s, test::Process::Stream::err,
                                             cli_from),
                  fwd.process->output());
  }
  late.signal(SIGCONT);
  REQUIRE_MESSAGE(d.wait_connected("demo", 30s, agent_from), d.agent("demo")->output());

  Fetched after = fetch(fwd.local_ports[0], 4 << 20, 2, true, 10s);
  INFO(fwd.process->output());
  CHECK_MESSAGE(after.error.empty(), after.error);
  CHECK(after.pattern_ok);
  stop_forward(fwd);
}

TEST_CASE("relay restart: an open port-forward carries on (the agent is back first)") {
  restart_under_port_forward(true);
}

// Fails until the CLI dials again when a dial after a reconnect finds the workspace not yet back
// (cli/workspace_connection.cpp gives up after one "workspace demo is not connected").
TEST_CASE("relay restart: an open port-forward carries on (the port-forward is back first)" * doctest::may_fail()) {
  restart_under_port_forward(false);
}

TEST_CASE("wss://: ping and a port-forward transfer over TLS") {
  test::Deployment::Options options;
  options.tls = true;
  test::Deployment d(options);
  CHECK(d.url().rfind("wss://", 0) == 0);
  start_demo(d);

  auto r = d.cli({"ping", "demo", "-c", "2", "-i", "50ms"});
  INFO(r.all());
  CHECK(r.code == 0);
  CHECK(r.out.find("2 sent, 2 received, 0% loss") != std::string::npos);

  ContentServer server;
  Forward fwd = start_forward(d, "demo", {server.port()});
  constexpr uint64_t kSize = kSanitized ? 16ull << 20 : 128ull << 20;
  Fetched f = fetch(fwd.local_ports[0], kSize, 99, false);
  INFO(fwd.process->output());
  REQUIRE_MESSAGE(f.error.empty(), f.error);
  auto sent = server.served_seed(99);
  REQUIRE(sent);
  CHECK(f.sha256 == sent->sha256);
  CHECK(f.body_bytes == kSize);
  MESSAGE("wss:// port-forward: " << (kSize >> 20) << " MiB at " << kSize * 8 / f.seconds / 1e6 << " Mbit/s");
  stop_forward(fwd);
}

TEST_CASE("speedtest prints JSON with a positive rate in both directions") {
  test::Deployment d;
  start_demo(d);
  for (std::string direction : {"down", "up"}) {
    CAPTURE(direction);
    auto r = d.cli({"speedtest", "demo", "-t", "1s", "-o", "json", "-d", direction});
    INFO(r.all());
    REQUIRE(r.code == 0);
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    REQUIRE_MESSAGE(j.is_object(), "stdout is not one JSON object");
    CHECK(j.value("direction", "") == direction);
    CHECK(j.value("workspace", "") == "demo");
    CHECK(j.value("bytes", 0ull) > 0);
    CHECK(j.value("seconds", 0.0) > 0.5);
    CHECK(j.value("mbits_per_second", 0.0) > 0);
    MESSAGE("speedtest " << direction << ": " << j.value("mbits_per_second", 0.0) << " Mbit/s");
  }
}
