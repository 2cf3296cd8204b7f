// bench_portforward: what a user feels of the relay path, next to what they would use without it.
// One run, one JSON object on stdout (progress on stderr).
//
//   throughput    bytes/s of one TCP download through `airlock port-forward` (relay --dev and an
//                 agent on loopback), through OpenSSH `ssh -L` to its own sshd on loopback, and
//                 over direct TCP; ratios port-forward/ssh and port-forward/direct. Each path is
//                 run a few times alternately and the best run counts, so a neighbour's burst of
//                 CPU does not decide the ratio; next to it the CPU the path's processes spent per
//                 byte, which a neighbour does not change at all.
//   ping          p50/p99 round trip of the `ping` stream, idle and while a `speedtest` download
//                 runs on the same tunnel (the probes are interactive, the download bulk).
//   memory        the relay's VmRSS growth per idle link with 1,000 and 10,000 links open (raw
//                 WebSocket clients from this process, each with its own key and a valid token),
//                 over ws:// and wss://.
//   packets       relayed packets per second: one peer sends small packets to another as fast as
//                 the link lets it, the other counts them (and the relay's CPU per packet).
//
// Binaries are found beside this one (../relay/airlock-relay, ../agent/airlock-agent,
// ../cli/airlock) or named by AIRLOCK_RELAY_BINARY, AIRLOCK_AGENT_BINARY, AIRLOCK_CLI_BINARY.
// AIRLOCK_BENCH_QUICK=1 makes the runs smaller (a smoke test); AIRLOCK_BENCH_ONLY=ping,memory
// runs only the parts named (throughput, ping, packets, memory); AIRLOCK_BENCH_RELAY_ARGS adds
// flags to every relay started (e.g. "--ws-rx-buffer-bytes 8KiB").
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/openssh.hpp"
#include "bench/stats.hpp"
#include "common/crypto/crypto.hpp"
#include "common/net/tunnel_node.hpp"
#include "common/net/uv.hpp"
#include "common/relay/handshake.hpp"
#include "common/token/token.hpp"
#include "common/util/bytes.hpp"
#include "common/util/log.hpp"
#include "tests/support/loopback.hpp"
#include "tests/support/proc.hpp"

namespace fs = std::filesystem;
using namespace airlock;
using namespace std::chrono;
using nlohmann::json;
using Clock = steady_clock;

namespace {

bool quick() { return std::getenv("AIRLOCK_BENCH_QUICK") != nullptr; }

// AIRLOCK_BENCH_ONLY=ping,packets runs only those parts (throughput, ping, packets, memory).
bool wanted(const std::string& part) {
  const char* only = std::getenv("AIRLOCK_BENCH_ONLY");
  if (!only || !*only) return true;
  std::string list = std::string(",") + only + ",";
  return list.find("," + part + ",") != std::string::npos;
}

// Targets printed next to the numbers.
constexpr double kTargetRatioVsSsh = 1.0;     // port-forward at least as fast as ssh -L
constexpr double kTargetWsKibPerConn = 8.0;    // relay memory per idle ws:// link
constexpr double kTargetWssKibPerConn = 14.5;  // ... per idle wss:// link (below this)

void note(const std::string& s) { std::cerr << "bench_portforward: " << s << std::endl; }

[[noreturn]] void die(const std::string& s) {
  note("error: " + s);
  std::exit(1);
}

double secs(Clock::duration d) { return duration<double>(d).count(); }

using test::cpu_seconds;
using test::read_file;
using test::vm_rss_kib;
using bench::percentile;

int free_port() {
  int port = test::free_loopback_port();
  if (port < 0) die("no free port");
  return port;
}

bool wait_port(int port, seconds timeout) {
  for (auto until = Clock::now() + timeout; Clock::now() < until; std::this_thread::sleep_for(20ms)) {
    int fd = test::connect_loopback(port);
    if (fd >= 0) {
      ::close(fd);
      return true;
    }
  }
  return false;
}

// ---- child processes ----------------------------------------------------------------------------

// A program run with its output in a log file; killed (its process group) when destroyed.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::vector<std::pair<std::string, std::string>>& env,
        const fs::path& log)
      : log_(log) {
    pid_ = fork();
    if (pid_ < 0) die("fork");
    if (pid_ == 0) {
      setpgid(0, 0);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int null = ::open("/dev/null", O_RDONLY);
      dup2(null, 0);
      dup2(fd, 1);
      dup2(fd, 2);
      for (auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~Child() { stop(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  std::string output() const { return read_file(log_); }
  // The first capture group (or the whole match) of a regex in the output, waiting for it.
  std::optional<std::string> wait_for(const std::string& pattern, milliseconds timeout) {
    std::regex re(pattern, std::regex::multiline);
    for (auto until = Clock::now() + timeout;; std::this_thread::sleep_for(10ms)) {
      std::smatch m;
      std::string text = output();
      if (std::regex_search(text, m, re)) return m.size() > 1 ? m[1].str() : m[0].str();
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return std::nullopt;
      }
      if (Clock::now() > until) return std::nullopt;
    }
  }
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 300; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
    kill(-pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  fs::path log_;
  pid_t pid_ = -1;
};

struct Binaries {
  std::string relay, agent, cli;
};

Binaries find_binaries() {
  fs::path build = fs::read_symlink("/proc/self/exe").parent_path().parent_path();
  Binaries b{(build / "relay" / "airlock-relay").string(), (build / "agent" / "airlock-agent").string(),
             (build / "cli" / "airlock").string()};
  if (const char* e = std::getenv("AIRLOCK_RELAY_BINARY")) b.relay = e;
  if (const char* e = std::getenv("AIRLOCK_AGENT_BINARY")) b.agent = e;
  if (const char* e = std::getenv("AIRLOCK_CLI_BINARY")) b.cli = e;
  for (auto* p : {&b.relay, &b.agent, &b.cli})
    if (!fs::exists(*p)) die("no " + *p + " (build airlock-relay, airlock-agent and airlock)");
  return b;
}

// airlock-relay --dev on a free loopback port with its own state directory.
struct Relay {
  fs::path dir;
  int port = 0;
  std::unique_ptr<Child> child;
  token::IssuerKey issuer{};
  std::string owner_token;

  Relay(const Binaries& bin, const fs::path& parent, const std::string& name, std::vector<std::string> extra = {}) {
    dir = parent / name;
    fs::create_directories(dir);
    port = free_port();
    std::vector<std::string> argv = {bin.relay, "--dev", "--state-dir", dir.string(), "--listen",
                                     "127.0.0.1:" + std::to_string(port), "--log-level", "warn"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    if (const char* more = std::getenv("AIRLOCK_BENCH_RELAY_ARGS")) {
      std::istringstream words(more);
      for (std::string w; words >> w;) argv.push_back(w);
    }
    child = std::make_unique<Child>(argv, std::vector<std::pair<std::string, std::string>>{}, dir / "log");
    auto token = child->wait_for(R"(AIRLOCK_OWNER_TOKEN=(\S+))", 20s);
    if (!token) die("relay did not start:\n" + child->output());
    owner_token = *token;
    if (!wait_port(port, 10s)) die("relay is not listening");
    auto key = token::load_issuer_key((dir / "issuer.key").string());
    if (!key) die("issuer key: " + key.error().message);
    issuer = *key;
  }
  std::string url(bool tls = false) const {
    return std::string(tls ? "wss" : "ws") + "://127.0.0.1:" + std::to_string(port) + "/";
  }
  std::string agent_token(const std::string& workspace) const {
    token::Claims c;
    c.sub = "agent-" + workspace;
    c.role = token::Role::agent;
    c.workspace_id = "ws-" + workspace;
    c.workspace_name = workspace;
    c.owner = "admin";
    c.iat = std::time(nullptr);
    c.exp = c.iat + 3600;
    return token::mint(issuer, c);
  }
};

// ---- bulk TCP source ----------------------------------------------------------------------------

// The "workspace" application: a client sends "<bytes>\n" and gets that many bytes, then EOF.
class BulkServer {
 public:
  BulkServer() : chunk_(256 * 1024, 0x5a) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = test::loopback_address(0);
    socklen_t len = sizeof a;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 64) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      die("bulk server: cannot listen");
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~BulkServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
    std::lock_guard lock(mutex_);
    for (auto& t : workers_) t.join();
  }
  int port() const { return port_; }

 private:
  void run() {
    while (!stop_) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      timeval tv{60, 0};
      ::setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      std::lock_guard lock(mutex_);
      workers_.emplace_back([this, c] { serve(c); });
    }
  }
  void serve(int c) {
    std::string req;
    char ch;
    while (::recv(c, &ch, 1, 0) == 1 && ch != '\n') req += ch;
    uint64_t want = std::strtoull(req.c_str(), nullptr, 10);
    while (want > 0) {
      ssize_t n = ::send(c, chunk_.data(), std::min<uint64_t>(want, chunk_.size()), MSG_NOSIGNAL);
      if (n <= 0) break;
      want -= static_cast<uint64_t>(n);
    }
    ::shutdown(c, SHUT_WR);
    char drain[4096];
    while (::recv(c, drain, sizeof drain, 0) > 0) {
    }
    ::close(c);
  }
  const std::vector<uint8_t> chunk_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::thread> workers_;
};

// Downloads `bytes` through a port; bytes per second, or 0 if it did not all arrive.
double download(int port, uint64_t bytes) {
  int fd = test::connect_loopback(port);
  if (fd < 0) return 0;
  timeval tv{60, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  auto t0 = Clock::now();
  std::string req = std::to_string(bytes) + "\n";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::vector<uint8_t> buf(256 * 1024);
  uint64_t got = 0;
  for (;;) {
    ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    got += static_cast<uint64_t>(n);
  }
  double t = secs(Clock::now() - t0);
  ::close(fd);
  if (got != bytes) {
    note("download through port " + std::to_string(port) + ": " + std::to_string(got) + " of " +
         std::to_string(bytes) + " bytes");
    return 0;
  }
  return static_cast<double>(bytes) / t;
}

// ---- OpenSSH -------------------------------------------------------------------------------------

// sshd -D of our own on a free loopback port (bench/openssh.hpp), and
// `ssh -N -L local:127.0.0.1:remote` through it.
struct SshForward {
  std::unique_ptr<Child> sshd, ssh;
  int local_port = 0;
  std::string error;

  SshForward(const fs::path& dir, int remote_port) {
    auto server = airlock::bench::prepare_loopback_sshd(dir, free_port());
    if (!server.error.empty()) {
      error = server.error;
      return;
    }
    sshd = std::make_unique<Child>(server.argv, std::vector<std::pair<std::string, std::string>>{}, server.log);
    if (!wait_port(server.port, 10s)) {
      error = "sshd did not start: " + sshd->output();
      return;
    }
    local_port = free_port();
    ssh = std::make_unique<Child>(
        std::vector<std::string>{"/usr/bin/ssh", "-F", "/dev/null", "-i", server.user_key.string(), "-o",
                                 "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                                 "-o", "ExitOnForwardFailure=yes", "-N", "-L",
                                 std::to_string(local_port) + ":127.0.0.1:" + std::to_string(remote_port), "-p",
                                 std::to_string(server.port), server.user + "@127.0.0.1"},
        std::vector<std::pair<std::string, std::string>>{}, dir / "ssh.log");
    if (!wait_port(local_port, 15s)) error = "ssh -L did not come up: " + ssh->output() + sshd->output();
  }
};

// ---- a tunnel client in this process (for ping on one tunnel with a bulk stream beside it) ------

class TunnelClient {
 public:
  TunnelClient(uv_loop_t* loop, const std::string& url, const std::string& token, const std::string& workspace)
      : token_(token), workspace_(workspace) {
    net::RelayClient::Options o;
    o.url = url;
    o.token = token;
    o.private_key = crypto::x25519_generate();
    node_ = std::make_unique<net::TunnelNode>(loop, std::move(o));
    node_->on_relay_state = [this](net::LinkState s, std::string_view why) {
      if (s == net::LinkState::connected)
        (void)node_->relay().send_control({{"type", "dial"}, {"id", 1}, {"workspace", workspace_}});
      else if (!ready_) error_ = std::string(why);
    };
    node_->on_control = [this](const json& m) {
      if (m.value("type", "") != "dial_ok") {
        error_ = m.dump();
        return;
      }
      auto key = crypto::key_from_base64(m.value("agent_key", ""));
      if (!key || link_) return;
      link_ = &node_->add_peer(*key, stream::Role::initiator);
      link_->on_ready = [this] { say_hello(); };
      node_->connect(*key);
    };
    if (auto s = node_->start(); !s) die(s.error().message);
  }
  ~TunnelClient() { node_->stop("done"); }
  bool ready() const { return ready_; }
  const std::string& error() const { return error_; }
  net::PeerLink& link() { return *link_; }

 private:
  struct Hello final : net::StreamHandler {
    TunnelClient* self;
    stream::StreamId id = 0;
    void on_data(ByteView d) override { self->link_->consume(id, d.size()); }
    void on_finished() override { self->ready_ = true; }
    void on_reset(uint32_t, std::string_view r) override { self->error_ = "hello refused: " + std::string(r); }
  };
  void say_hello() {
    hello_.self = this;
    hello_.id = link_->open("hello", {{"token", token_}}, stream::Priority::interactive, &hello_);
  }
  std::string token_, workspace_;
  std::unique_ptr<net::TunnelNode> node_;
  net::PeerLink* link_ = nullptr;
  Hello hello_;
  bool ready_ = false;
  std::string error_;
};

// Round trips of 16-byte probes on a `ping` stream, one at a time, `interval` apart.
class Prober final : public net::StreamHandler {
 public:
  Prober(uv_loop_t* loop, net::PeerLink& link) : link_(link), timer_(loop) {
    id_ = link_.open("ping", json::object(), stream::Priority::interactive, this);
  }
  void run(int count, milliseconds interval) {
    rtts_.clear();
    want_ = count;
    interval_ = interval;
    send();
  }
  bool done() const { return static_cast<int>(rtts_.size()) >= want_; }
  std::vector<double> rtts_ms() const { return rtts_; }
  void on_data(ByteView d) override {
    got_ += d.size();
    link_.consume(id_, d.size());
    if (got_ >= 16) {
      got_ -= 16;
      rtts_.push_back(duration<double, std::milli>(Clock::now() - sent_at_).count());
      if (!done()) timer_.start(interval_, [this] { send(); });
    }
  }

 private:
  void send() {
    uint8_t probe[16] = {};
    sent_at_ = Clock::now();
    link_.write(id_, ByteView(probe, sizeof probe));
  }
  net::PeerLink& link_;
  net::Timer timer_;
  stream::StreamId id_ = 0;
  size_t got_ = 0;
  int want_ = 0;
  milliseconds interval_{10};
  Clock::time_point sent_at_;
  std::vector<double> rtts_;
};

// A `speedtest` download on the same tunnel: bulk bytes consumed as they come.
class BulkSink final : public net::StreamHandler {
 public:
  BulkSink(net::PeerLink& link, milliseconds duration) : link_(link) {
    id_ = link_.open("speedtest", {{"direction", "down"}, {"duration_ms", duration.count()}}, stream::Priority::bulk,
                     this);
    start_ = Clock::now();
  }
  void on_data(ByteView d) override {
    bytes_ += d.size();
    link_.consume(id_, d.size());
  }
  void on_finished() override { finished_ = true; end_ = Clock::now(); }
  void on_reset(uint32_t, std::string_view) override { finished_ = true; end_ = Clock::now(); }
  bool finished() const { return finished_; }
  void stop() {
    if (!finished_) link_.detach(id_, "enough");
    finished_ = true;
  }
  double rate() const { return bytes_ / secs((finished_ ? end_ : Clock::now()) - start_); }

 private:
  net::PeerLink& link_;
  stream::StreamId id_ = 0;
  uint64_t bytes_ = 0;
  bool finished_ = false;
  Clock::time_point start_, end_;
};

json measure_ping(const Relay& relay) {
  net::Loop loop;
  TunnelClient client(loop, relay.url(), relay.owner_token, "bench");
  if (!net::run_until(loop, [&] { return client.ready() || !client.error().empty(); }, 20s) || !client.ready())
    return {{"error", "no tunnel: " + client.error()}};
  const int probes = quick() ? 50 : 300;
  const milliseconds interval = 10ms;
  Prober prober(loop, client.link());
  prober.run(probes, interval);
  net::run_until(loop, [&] { return prober.done(); }, 30s);
  auto idle = prober.rtts_ms();

  BulkSink bulk(client.link(), 60s);  // stopped once the probes are done
  net::run_for(loop, 500ms);  // the download is at full speed before the probes start
  prober.run(probes, interval);
  net::run_until(loop, [&] { return prober.done(); }, 60s);
  auto loaded = prober.rtts_ms();
  double bulk_rate = bulk.rate();
  bool bulk_running = !bulk.finished();
  bulk.stop();
  net::run_for(loop, 200ms);
  return {
      {"probes", probes},
      {"interval_ms", interval.count()},
      {"idle_p50_ms", percentile(idle, 0.5)},
      {"idle_p99_ms", percentile(idle, 0.99)},
      {"loaded_p50_ms", percentile(loaded, 0.5)},
      {"loaded_p99_ms", percentile(loaded, 0.99)},
      {"loaded_complete", static_cast<int>(loaded.size()) == probes},
      {"bulk_bytes_per_second", bulk_rate},
      {"bulk_ran_throughout", bulk_running},
  };
}

// ---- relayed packets per second -----------------------------------------------------------------

json measure_packets(const Relay& relay) {
  net::Loop loop;
  // The receiver registers as the agent of workspace "pps"; the sender dials it for a grant.
  net::RelayClient::Options ro;
  ro.url = relay.url();
  ro.token = relay.agent_token("pps");
  ro.private_key = crypto::x25519_generate();
  net::RelayClient receiver(loop, ro);
  uint64_t received = 0;
  receiver.on_packet = [&](const relay::PeerKey&, uint8_t, ByteView) { ++received; };
  net::RelayClient::Options so;
  so.url = relay.url();
  so.token = relay.owner_token;
  so.private_key = crypto::x25519_generate();
  net::RelayClient sender(loop, so);
  std::optional<relay::PeerKey> dst;
  sender.on_control = [&](const json& m) {
    if (m.value("type", "") == "dial_ok") dst = crypto::key_from_base64(m.value("agent_key", "")).value();
  };
  if (!receiver.start() || !net::run_until(loop, [&] { return receiver.connected(); }, 10s))
    return {{"error", "receiver did not connect"}};
  sender.on_state = [&](net::LinkState s, std::string_view) {
    if (s == net::LinkState::connected) (void)sender.send_control({{"type", "dial"}, {"id", 1}, {"workspace", "pps"}});
  };
  if (!sender.start() || !net::run_until(loop, [&] { return dst.has_value(); }, 10s))
    return {{"error", "sender got no grant"}};

  constexpr size_t kPacket = 128;
  Bytes packet(kPacket, 0x33);
  bool sending = true;
  uint64_t sent = 0;
  auto pump = [&] {
    while (sending && sender.writable() && sender.send_packet(*dst, 0, packet)) ++sent;
  };
  sender.on_writable = pump;
  const auto run_for = quick() ? 1s : 3s;
  double cpu0 = cpu_seconds(relay.child->pid());
  uint64_t received0 = received;
  auto t0 = Clock::now();
  pump();
  net::run_for(loop, run_for);
  double elapsed = secs(Clock::now() - t0);
  uint64_t got = received - received0;
  double cpu = cpu_seconds(relay.child->pid()) - cpu0;
  sending = false;
  net::run_until(loop, [&] { return received >= sent; }, 5s);
  sender.stop();
  receiver.stop();
  net::run_for(loop, 100ms);
  return {
      {"packet_bytes", kPacket},
      {"seconds", elapsed},
      {"packets_per_second", static_cast<double>(got) / elapsed},
      {"relay_cpu_us_per_packet", got ? cpu * 1e6 / static_cast<double>(got) : -1},
      {"all_delivered", received == sent},
  };
}

// ---- relay memory per idle link -----------------------------------------------------------------

// A minimal WebSocket client for the relay link: upgrade, read the server hello, answer with a
// client hello, read the welcome. Blocking; kept open (idle) until destroyed.
struct RawLink {
  int fd = -1;
  SSL* ssl = nullptr;

  ~RawLink() {
    if (ssl) SSL_free(ssl);
    if (fd >= 0) ::close(fd);
  }
  bool write_all(const void* data, size_t size) {
    auto* p = static_cast<const uint8_t*>(data);
    while (size > 0) {
      int n = ssl ? SSL_write(ssl, p, static_cast<int>(size)) : static_cast<int>(::send(fd, p, size, MSG_NOSIGNAL));
      if (n <= 0) return false;
      p += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }
  bool read_exact(uint8_t* out, size_t size) {
    while (size > 0) {
      int n = ssl ? SSL_read(ssl, out, static_cast<int>(size)) : static_cast<int>(::recv(fd, out, size, 0));
      if (n <= 0) return false;
      out += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }
  std::optional<Bytes> read_message() {
    uint8_t h[2];
    if (!read_exact(h, 2)) return std::nullopt;
    uint64_t len = h[1] & 0x7f;
    if (len == 126) {
      uint8_t e[2];
      if (!read_exact(e, 2)) return std::nullopt;
      len = load_be16(e);
    } else if (len == 127) {
      uint8_t e[8];
      if (!read_exact(e, 8)) return std::nullopt;
      len = load_be64(e);
    }
    if (len > relay::kMaxFrameSize) return std::nullopt;
    Bytes body(len);
    if (!read_exact(body.data(), len)) return std::nullopt;
    return body;
  }
  bool write_message(ByteView payload) {
    Bytes frame = {0x82};
    if (payload.size() < 126) {
      frame.push_back(static_cast<uint8_t>(0x80 | payload.size()));
    } else {
      frame.push_back(0x80 | 126);
      frame.push_back(static_cast<uint8_t>(payload.size() >> 8));
      frame.push_back(static_cast<uint8_t>(payload.size()));
    }
    uint8_t mask[4];
    crypto::random_bytes(mask);
    frame.insert(frame.end(), mask, mask + 4);
    for (size_t i = 0; i < payload.size(); ++i) frame.push_back(payload[i] ^ mask[i & 3]);
    return write_all(frame.data(), frame.size());
  }

  std::string open(int port, SSL_CTX* tls, const std::string& token) {
    fd = test::connect_loopback(port);
    if (fd < 0) return std::string("connect: ") + std::strerror(errno);
    timeval tv{20, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (tls) {
      ssl = SSL_new(tls);
      SSL_set_fd(ssl, fd);
      if (SSL_connect(ssl) != 1) return "TLS handshake failed";
    }
    std::string req = "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: airlock-relay.v1\r\n\r\n";
    if (!write_all(req.data(), req.size())) return "cannot send the upgrade";
    std::string head;
    uint8_t c;
    while (head.find("\r\n\r\n") == std::string::npos && head.size() < 4096) {
      if (!read_exact(&c, 1)) return "no upgrade answer";
      head += static_cast<char>(c);
    }
    if (head.find(" 101 ") == std::string::npos) return "upgrade refused: " + head.substr(0, head.find('\r'));
    auto hello_msg = read_message();
    if (!hello_msg) return "no server hello";
    auto hello = relay::decode(*hello_msg);
    if (!hello || !std::holds_alternative<relay::ServerHello>(*hello)) return "not a server hello";
    auto key = crypto::x25519_generate();
    auto reply = relay::make_client_hello(std::get<relay::ServerHello>(*hello), key, token, "");
    if (!reply) return reply.error().message;
    if (!write_message(*reply)) return "cannot send the client hello";
    auto welcome = read_message();
    if (!welcome || welcome->empty()) return "no welcome";
    if ((*welcome)[0] != 0x03)
      return "refused: " + std::string(welcome->begin() + 1, welcome->end());
    return "";
  }
};

json measure_memory(const Binaries& bin, const fs::path& dir, bool tls) {
  const std::vector<int> counts = quick() ? std::vector<int>{100, 1000} : std::vector<int>{1000, 10000};
  const int most = counts.back();
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  json out = {{"scheme", tls ? "wss" : "ws"}};
  if (rl.rlim_cur < static_cast<rlim_t>(most + 64)) {
    out["error"] = "RLIMIT_NOFILE hard limit " + std::to_string(rl.rlim_max) + " is below " + std::to_string(most + 64) +
                   ": cannot open " + std::to_string(most) + " links from one process";
  }
  Relay relay(bin, dir, tls ? "relay-mem-wss" : "relay-mem-ws", {"--max-connections", std::to_string(most + 100)});
  SSL_CTX* ctx = nullptr;
  if (tls) {
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  }
  std::this_thread::sleep_for(300ms);
  long base = vm_rss_kib(relay.child->pid());
  out["relay_rss_kib_at_start"] = base;
  std::vector<std::unique_ptr<RawLink>> links;
  links.reserve(static_cast<size_t>(most));
  json per = json::array();
  auto t0 = Clock::now();
  for (int n : counts) {
    std::string error;
    while (static_cast<int>(links.size()) < n && error.empty()) {
      if (static_cast<rlim_t>(links.size() + 64) >= rl.rlim_cur) {
        error = "out of file descriptors at " + std::to_string(links.size()) + " links (RLIMIT_NOFILE " +
                std::to_string(rl.rlim_cur) + ")";
        break;
      }
      auto link = std::make_unique<RawLink>();
      error = link->open(relay.port, ctx, relay.owner_token);
      if (error.empty()) links.push_back(std::move(link));
      else error = "link " + std::to_string(links.size() + 1) + ": " + error;
    }
    std::this_thread::sleep_for(500ms);  // the relay has finished with every hello
    long rss = vm_rss_kib(relay.child->pid());
    json row = {{"links", static_cast<int>(links.size())},
                {"relay_rss_kib", rss},
                {"kib_per_link", links.empty() ? -1.0 : static_cast<double>(rss - base) / static_cast<double>(links.size())},
                {"seconds_to_open", secs(Clock::now() - t0)}};
    if (!error.empty()) row["error"] = error;
    per.push_back(row);
    note(std::string(tls ? "wss" : "ws") + ": " + row.dump());
    if (!error.empty()) break;
  }
  out["runs"] = per;
  double target = tls ? kTargetWssKibPerConn : kTargetWsKibPerConn;
  out["target_kib_per_link"] = target;
  bool within = !per.empty();
  for (auto& r : per) {
    double kib = r["kib_per_link"].get<double>();
    within = within && !r.contains("error") && (tls ? kib < target : kib <= target);
  }
  out["within_target"] = within;
  links.clear();
  if (ctx) SSL_CTX_free(ctx);
  return out;
}

// ---- throughput ---------------------------------------------------------------------------------

// A process and everything it forked (sshd's per-connection children), alive now.
std::vector<pid_t> with_descendants(pid_t root) {
  std::vector<pid_t> out = {root};
  for (size_t i = 0; i < out.size(); ++i) {
    std::error_code ec;
    for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(out[i]) + "/task", ec)) {
      std::istringstream children(read_file(task.path() / "children"));
      for (pid_t c; children >> c;) out.push_back(c);
    }
  }
  return out;
}

double cpu_of(const std::vector<pid_t>& roots) {
  double total = 0;
  for (pid_t r : roots)
    for (pid_t p : with_descendants(r)) total += cpu_seconds(p);
  return total;
}

struct PathRun {
  double bytes_per_second = 0;
  double cpu_ns_per_byte = 0;  // CPU of the path's processes (not of this bench's client and server)
};

PathRun download_through(int port, uint64_t bytes, const std::vector<pid_t>& path) {
  double cpu0 = cpu_of(path);
  PathRun r;
  r.bytes_per_second = download(port, bytes);
  r.cpu_ns_per_byte = (cpu_of(path) - cpu0) * 1e9 / static_cast<double>(bytes);
  return r;
}

json summarize(const std::vector<PathRun>& runs) {
  std::vector<double> rates, cpus;
  for (auto& r : runs) {
    rates.push_back(r.bytes_per_second);
    cpus.push_back(r.cpu_ns_per_byte);
  }
  std::sort(rates.begin(), rates.end());
  std::sort(cpus.begin(), cpus.end());
  json j = {{"bytes_per_second_best", rates.back()},
            {"bytes_per_second_median", rates[rates.size() / 2]},
            {"mbit_per_second_best", rates.back() * 8 / 1e6}};
  if (cpus.back() > 0) j["cpu_ns_per_byte_median"] = cpus[cpus.size() / 2];
  return j;
}

json measure_throughput(const Binaries& bin, const Relay& relay, pid_t agent_pid, const fs::path& dir) {
  BulkServer server;
  const uint64_t bytes = quick() ? 64ull << 20 : 512ull << 20;
  const int rounds = quick() ? 1 : 3;

  // airlock port-forward
  int pf_port = free_port();
  Child pf({bin.cli, "port-forward", "bench", "--tcp", std::to_string(pf_port) + ":" + std::to_string(server.port())},
           {{"AIRLOCK_URL", relay.url()}, {"AIRLOCK_TOKEN", relay.owner_token}}, dir / "port-forward.log");
  if (!pf.wait_for("Ready!", 30s)) die("port-forward did not get ready:\n" + pf.output());

  SshForward ssh(dir / "ssh", server.port());
  if (!ssh.error.empty()) note("ssh -L unavailable: " + ssh.error);

  download(server.port(), 16 << 20);  // warm-up
  download(pf_port, 16 << 20);
  std::vector<PathRun> direct, airlock_pf, openssh;
  const std::vector<pid_t> pf_path = {relay.child->pid(), agent_pid, pf.pid()};
  for (int r = 0; r < rounds; ++r) {
    direct.push_back(download_through(server.port(), bytes, {}));
    airlock_pf.push_back(download_through(pf_port, bytes, pf_path));
    if (ssh.error.empty()) openssh.push_back(download_through(ssh.local_port, bytes, {ssh.sshd->pid(), ssh.ssh->pid()}));
    note("round " + std::to_string(r + 1) + ": direct " + std::to_string(direct.back().bytes_per_second * 8 / 1e6) +
         " Mbit/s, port-forward " + std::to_string(airlock_pf.back().bytes_per_second * 8 / 1e6) + " Mbit/s (" +
         std::to_string(airlock_pf.back().cpu_ns_per_byte) + " ns/B)" +
         (openssh.empty() ? "" : ", ssh -L " + std::to_string(openssh.back().bytes_per_second * 8 / 1e6) + " Mbit/s (" +
                                     std::to_string(openssh.back().cpu_ns_per_byte) + " ns/B)"));
  }
  json out = {
      {"bytes_per_run", bytes},
      {"runs_each", rounds},
      {"note", "best of the runs for bytes/s; cpu_ns_per_byte is the CPU the path's own processes spent "
               "(relay + agent + CLI; ssh + sshd), which a busy neighbour does not change"},
      {"direct_tcp", summarize(direct)},
      {"port_forward", summarize(airlock_pf)},
  };
  double d = out["direct_tcp"]["bytes_per_second_best"], p = out["port_forward"]["bytes_per_second_best"];
  out["port_forward_vs_direct_ratio"] = d > 0 ? p / d : 0;
  if (ssh.error.empty()) {
    out["ssh_L"] = summarize(openssh);
    double sp = out["ssh_L"]["bytes_per_second_best"];
    out["port_forward_vs_ssh_ratio"] = sp > 0 ? p / sp : 0;
    double pc = out["port_forward"]["cpu_ns_per_byte_median"], sc = out["ssh_L"]["cpu_ns_per_byte_median"];
    out["port_forward_vs_ssh_cpu_ratio"] = pc > 0 ? sc / pc : 0;  // >1: port-forward spends less CPU per byte
    out["target_port_forward_vs_ssh_ratio"] = kTargetRatioVsSsh;
    out["within_target"] = sp > 0 && p / sp >= kTargetRatioVsSsh;
  } else {
    out["ssh_L_error"] = ssh.error;
  }
  return out;
}

}  // namespace

int main() {
  signal(SIGPIPE, SIG_IGN);
  if (!std::getenv("AIRLOCK_LOG_LEVEL")) log::set_level(log::Level::warn);
  Binaries bin = find_binaries();
  char tmpl[] = "/tmp/airlock-bench-portforward-XXXXXX";
  if (!mkdtemp(tmpl)) die("mkdtemp");
  fs::path dir = tmpl;

  json out = {{"benchmark", "portforward"}, {"quick", quick()}, {"cpus", std::thread::hardware_concurrency()}};
  {
    Relay relay(bin, dir, "relay");
    Child agent({bin.agent},
                {{"AIRLOCK_RELAY_URL", relay.url()},
                 {"AIRLOCK_AGENT_TOKEN", relay.agent_token("bench")},
                 {"AIRLOCK_ISSUER_PUBLIC_KEY", crypto::key_to_base64(relay.issuer.public_key)},
                 {"AIRLOCK_AGENT_STATE_DIR", (dir / "agent").string()}},
                dir / "agent.log");
    if (!agent.wait_for("connected to relay", 20s)) die("agent did not connect:\n" + agent.output());

    if (wanted("throughput")) {
      note("throughput");
      out["throughput"] = measure_throughput(bin, relay, agent.pid(), dir);
    }
    if (wanted("ping")) {
      note("ping");
      out["ping"] = measure_ping(relay);
    }
    if (wanted("packets")) {
      note("packets");
      out["packets"] = measure_packets(relay);
    }
    out["relay_rss_kib_after"] = vm_rss_kib(relay.child->pid());
  }
  if (wanted("memory")) {
    note("memory (ws)");
    out["memory_ws"] = measure_memory(bin, dir, false);
    note("memory (wss)");
    out["memory_wss"] = measure_memory(bin, dir, true);
  }

  if (std::getenv("AIRLOCK_BENCH_KEEP") == nullptr) fs::remove_all(dir);
  std::cout << out.dump() << "\n";
  return 0;
}
