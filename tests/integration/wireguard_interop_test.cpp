// Our tunnel against Debian's real wireguard-go, in a private network namespace.
//
// Each case creates namespace airlock-wg-<pid>-<n>, starts wireguard-go on a TUN device in it with
// 10.77.0.1/24, configures it with `wg set`, and drives our sans-I/O Tunnel over a real UDP socket
// on the namespace's loopback (this thread enters the namespace with setns before creating it).
// Traffic never leaves the namespace. We are 10.77.0.2.
//
//   as initiator: we send an ICMP echo request we built; the kernel's echo reply comes back.
//   as responder: the kernel sends a UDP datagram into the device, wireguard-go initiates, we
//                 receive the datagram, then ping the kernel through the same session.
//
// Skipped, with the reason, only where there is no /dev/net/tun or we are not root. Everything
// (wireguard-go, the namespace) is cleaned up by destructors, also when a check fails.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto/crypto.hpp"
#include "common/tunnel/tunnel.hpp"

using namespace airlock;
using namespace airlock::tunnel;
using namespace std::chrono_literals;

namespace {

constexpr const char* kOurAddress = "10.77.0.2";
constexpr const char* kTheirAddress = "10.77.0.1";
constexpr uint16_t kWireGuardPort = 51820;

std::string skip_reason() {
  if (geteuid() != 0) return "needs root to create a network namespace and a TUN device";
  if (access("/dev/net/tun", F_OK) != 0) return "no /dev/net/tun";
  return {};
}

// Runs a shell command; returns its exit status and, if asked, its standard output.
int run(const std::string& command, std::string* output = nullptr) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (!p) return -1;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  if (output) *output = out;
  if (status != 0) MESSAGE("`", command, "` exited ", status, ": ", out);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// --- IPv4 / ICMP / UDP, just enough to build and check packets --------------------------------------

uint16_t internet_checksum(const uint8_t* data, size_t size) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < size; i += 2) sum += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
  if (size % 2) sum += static_cast<uint32_t>(data[size - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

uint32_t ipv4(const char* text) {
  in_addr a{};
  REQUIRE(inet_pton(AF_INET, text, &a) == 1);
  return ntohl(a.s_addr);
}

Bytes ipv4_packet(uint32_t src, uint32_t dst, uint8_t protocol, ByteView body) {
  Bytes p(20 + body.size());
  p[0] = 0x45;
  store_be16(&p[2], static_cast<uint16_t>(p.size()));
  store_be16(&p[4], 0x1234);
  p[8] = 64;
  p[9] = protocol;
  store_be32(&p[12], src);
  store_be32(&p[16], dst);
  store_be16(&p[10], internet_checksum(p.data(), 20));
  std::copy(body.begin(), body.end(), p.begin() + 20);
  return p;
}

Bytes icmp_echo_request(uint16_t id, uint16_t seq) {
  Bytes icmp(8 + 32);
  icmp[0] = 8;  // echo request
  store_be16(&icmp[4], id);
  store_be16(&icmp[6], seq);
  for (size_t i = 8; i < icmp.size(); ++i) icmp[i] = static_cast<uint8_t>('a' + i % 26);
  store_be16(&icmp[2], internet_checksum(icmp.data(), icmp.size()));
  return ipv4_packet(ipv4(kOurAddress), ipv4(kTheirAddress), 1, icmp);
}

// A decrypted payload as an IPv4 packet: the tunnel's zero padding cut off by the total length.
struct Ipv4View {
  uint32_t src = 0, dst = 0;
  uint8_t protocol = 0;
  ByteView body;
};
std::optional<Ipv4View> parse_ipv4(ByteView payload) {
  if (payload.size() < 20 || payload[0] != 0x45) return std::nullopt;
  const uint16_t total = load_be16(&payload[2]);
  if (total < 20 || total > payload.size()) return std::nullopt;
  if (internet_checksum(payload.data(), 20) != 0) return std::nullopt;
  for (size_t i = total; i < payload.size(); ++i)
    if (payload[i] != 0) return std::nullopt;  // padding is zeros
  return Ipv4View{load_be32(&payload[12]), load_be32(&payload[16]), payload[9], payload.subspan(20, total - 20)};
}

bool is_echo_reply(ByteView payload, uint16_t id, uint16_t seq) {
  auto ip = parse_ipv4(payload);
  if (!ip || ip->protocol != 1 || ip->src != ipv4(kTheirAddress) || ip->dst != ipv4(kOurAddress)) return false;
  ByteView icmp = ip->body;
  return icmp.size() >= 8 && icmp[0] == 0 && internet_checksum(icmp.data(), icmp.size()) == 0 &&
         load_be16(&icmp[4]) == id && load_be16(&icmp[6]) == seq;
}

// --- the namespace, wireguard-go and our side ----------------------------------------------------------

Endpoint udp_endpoint(uint32_t address, uint16_t port) {
  uint8_t b[6];
  store_be32(b, address);
  store_be16(b + 4, port);
  return Endpoint(ByteView(b, 6));
}

sockaddr_in to_sockaddr(const Endpoint& e) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  if (e.bytes().size() == 6) {
    sa.sin_addr.s_addr = htonl(load_be32(e.bytes().data()));
    sa.sin_port = htons(load_be16(e.bytes().data() + 4));
  }
  return sa;
}

class WireGuardGo {
 public:
  WireGuardGo() {
    static int serial = 0;
    const std::string id = std::to_string(getpid()) + "-" + std::to_string(++serial);
    ns_ = "airlock-wg-" + id;
    dev_ = "alwg" + std::to_string((getpid() * 10 + serial) % 100000000);
    dir_ = "/tmp/" + ns_;
    mkdir(dir_.c_str(), 0700);
    REQUIRE(run("ip netns add " + ns_) == 0);
    ns_created_ = true;
    REQUIRE(run(in_ns("ip link set lo up")) == 0);

    private_key_ = crypto::x25519_generate();
    public_key_ = crypto::x25519_public(private_key_);
    {
      std::ofstream key(dir_ + "/private.key");
      key << crypto::key_to_base64(private_key_) << "\n";
    }
    chmod((dir_ + "/private.key").c_str(), 0600);

    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      int log = open((dir_ + "/wireguard-go.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (log >= 0) dup2(log, 1), dup2(log, 2);
      setenv("WG_PROCESS_FOREGROUND", "1", 1);
      setenv("LOG_LEVEL", "verbose", 1);
      execlp("ip", "ip", "netns", "exec", ns_.c_str(), "wireguard-go", "-f", dev_.c_str(), (char*)nullptr);
      _exit(127);
    }
    // wireguard-go is ready when its device exists and its control socket answers.
    bool up = false;
    for (int i = 0; i < 100 && !up; ++i) {
      std::this_thread::sleep_for(50ms);
      up = system((in_ns("wg show " + dev_) + " >/dev/null 2>&1").c_str()) == 0;
    }
    if (!up) MESSAGE("wireguard-go log:\n", log());
    REQUIRE_MESSAGE(up, "wireguard-go did not come up");
    REQUIRE(run(in_ns("ip addr add " + std::string(kTheirAddress) + "/24 dev " + dev_)) == 0);
    REQUIRE(run(in_ns("ip link set " + dev_ + " up")) == 0);
  }

  ~WireGuardGo() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status;
      for (int i = 0; i < 40 && waitpid(pid_, &status, WNOHANG) == 0; ++i) std::this_thread::sleep_for(50ms);
      if (waitpid(pid_, &status, WNOHANG) == 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
      }
    }
    if (ns_created_ && system(("ip netns del " + ns_ + " >/dev/null 2>&1").c_str()) != 0)
      MESSAGE("could not delete namespace ", ns_);
    if (system(("rm -rf " + dir_).c_str()) != 0) MESSAGE("could not remove ", dir_);
  }

  void configure_peer(const Key& our_public_key, uint16_t our_port) {
    REQUIRE(run(in_ns("wg set " + dev_ + " private-key " + dir_ + "/private.key listen-port " +
                      std::to_string(kWireGuardPort) + " peer " + crypto::key_to_base64(our_public_key) +
                      " allowed-ips " + kOurAddress + "/32 endpoint 127.0.0.1:" + std::to_string(our_port))) == 0);
  }

  std::string in_ns(const std::string& command) const { return "ip netns exec " + ns_ + " " + command; }
  std::string wg_show(const std::string& what) const {
    std::string out;
    run(in_ns("wg show " + dev_ + " " + what), &out);
    return out;
  }
  std::string log() const {
    std::ifstream f(dir_ + "/wireguard-go.log");
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }
  const std::string& netns() const { return ns_; }
  const Key& public_key() const { return public_key_; }

 private:
  std::string ns_, dev_, dir_;
  bool ns_created_ = false;
  pid_t pid_ = -1;
  crypto::SecretKey private_key_;
  Key public_key_{};
};

// Puts this thread into a network namespace for its lifetime.
class InNamespace {
 public:
  explicit InNamespace(const std::string& name) {
    original_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    REQUIRE(original_ >= 0);
    int target = open(("/var/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(target >= 0);
    const int rc = setns(target, CLONE_NEWNET);
    close(target);
    REQUIRE(rc == 0);
  }
  ~InNamespace() {
    if (original_ >= 0) {
      setns(original_, CLONE_NEWNET);
      close(original_);
    }
  }

 private:
  int original_ = -1;
};

class UdpSocket {
 public:
  explicit UdpSocket(uint32_t address, uint16_t port = 0) {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(address);
    sa.sin_port = htons(port);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  }
  ~UdpSocket() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }
  uint16_t port() const {
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    return ntohs(sa.sin_port);
  }

 private:
  int fd_ = -1;
};

Now wall_now() { return {std::chrono::steady_clock::now(), std::chrono::system_clock::now()}; }

// Our side: the Tunnel driven over a UDP socket, the way the agent's libuv glue drives it.
struct OurSide {
  crypto::SecretKey key = crypto::x25519_generate();
  Tunnel tunnel{key};
  UdpSocket socket{ipv4("127.0.0.1")};
  std::vector<Event> events;
  std::vector<Outcome> outcomes;

  void flush() {
    Datagram d;
    while (tunnel.poll_datagram(d)) {
      sockaddr_in to = to_sockaddr(d.endpoint);
      REQUIRE(sendto(socket.fd(), d.bytes.data(), d.bytes.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) ==
              static_cast<ssize_t>(d.bytes.size()));
    }
    Event e;
    while (tunnel.poll_event(e)) events.push_back(e);
  }

  // Runs the I/O loop until done() or the timeout.
  bool drive_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    Bytes buffer(TRANSPORT_MAX_SIZE + 1);
    for (;;) {
      flush();
      if (done()) return true;
      const auto now = std::chrono::steady_clock::now();
      if (now >= end) return false;
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(end - now);
      if (auto deadline = tunnel.next_deadline())
        wait = std::min(wait, std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - now) + 1ms);
      pollfd pfd{socket.fd(), POLLIN, 0};
      poll(&pfd, 1, static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(wait.count(), 100))));
      for (;;) {
        sockaddr_in from{};
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(socket.fd(), buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n < 0) break;
        outcomes.push_back(tunnel.receive(ByteView(buffer.data(), static_cast<size_t>(n)),
                                          udp_endpoint(ntohl(from.sin_addr.s_addr), ntohs(from.sin_port)), wall_now()));
      }
      if (auto deadline = tunnel.next_deadline(); deadline && *deadline <= std::chrono::steady_clock::now())
        tunnel.tick(wall_now());
    }
  }

  size_t count(Event::Kind kind) const {
    return std::count_if(events.begin(), events.end(), [&](const Event& e) { return e.kind == kind; });
  }
  bool has_payload(const std::function<bool(ByteView)>& match) const {
    return std::any_of(events.begin(), events.end(),
                       [&](const Event& e) { return e.kind == Event::Kind::payload && match(e.payload); });
  }
};

// `wg show` agrees: a handshake with our key, and bytes both ways.
void check_wg_show(const WireGuardGo& wg, const Key& our_key) {
  const std::string ours = crypto::key_to_base64(our_key);
  std::string handshakes = wg.wg_show("latest-handshakes");
  std::string transfer = wg.wg_show("transfer");
  MESSAGE("wg show latest-handshakes: ", handshakes, "wg show transfer: ", transfer);
  std::istringstream h(handshakes);
  std::string key;
  long long when = 0;
  h >> key >> when;
  CHECK(key == ours);
  CHECK(when > 0);
  std::istringstream t(transfer);
  long long rx = 0, tx = 0;
  t >> key >> rx >> tx;
  CHECK(key == ours);
  CHECK(rx > 0);
  CHECK(tx > 0);
}

}  // namespace

TEST_CASE("our tunnel as initiator: handshake with wireguard-go and an ICMP echo through it") {
  if (auto reason = skip_reason(); !reason.empty()) {
    MESSAGE("skipped: ", reason);
    return;
  }
  WireGuardGo wg;
  InNamespace inside(wg.netns());
  OurSide us;
  wg.configure_peer(us.tunnel.public_key(), us.socket.port());
  REQUIRE(us.tunnel.add_peer(wg.public_key(), std::nullopt, udp_endpoint(ipv4("127.0.0.1"), kWireGuardPort)).ok());

  CHECK(us.tunnel.send(wg.public_key(), icmp_echo_request(0xa1a1, 1), wall_now()) == SendOutcome::staged);
  const bool replied =
      us.drive_until([&] { return us.has_payload([](ByteView p) { return is_echo_reply(p, 0xa1a1, 1); }); }, 10s);
  if (!replied) MESSAGE("wireguard-go log:\n", wg.log());
  REQUIRE(replied);
  CHECK(us.count(Event::Kind::handshake_complete) == 1);
  CHECK(us.tunnel.stats().initiations_sent == 1);
  CHECK(us.tunnel.stats().count(Outcome::handshake_response) == 1);

  // A few more round trips on the same session.
  for (uint16_t seq = 2; seq <= 5; ++seq) {
    CHECK(us.tunnel.send(wg.public_key(), icmp_echo_request(0xa1a1, seq), wall_now()) == SendOutcome::sent);
    CHECK(us.drive_until([&] { return us.has_payload([&](ByteView p) { return is_echo_reply(p, 0xa1a1, seq); }); }, 5s));
  }
  for (Outcome o : us.outcomes) CHECK_MESSAGE(accepted(o), "dropped: ", outcome_name(o));
  check_wg_show(wg, us.tunnel.public_key());
}

TEST_CASE("our tunnel as responder: wireguard-go initiates when the kernel sends into its device") {
  if (auto reason = skip_reason(); !reason.empty()) {
    MESSAGE("skipped: ", reason);
    return;
  }
  WireGuardGo wg;
  InNamespace inside(wg.netns());
  OurSide us;
  wg.configure_peer(us.tunnel.public_key(), us.socket.port());
  // We do not know wireguard-go's endpoint: we learn it from its initiation.
  REQUIRE(us.tunnel.add_peer(wg.public_key()).ok());

  // A datagram from the kernel of the namespace to 10.77.0.2 is routed into wireguard-go's device.
  UdpSocket sender(INADDR_ANY);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(ipv4(kOurAddress));
  to.sin_port = htons(9999);
  const std::string marker = "hello from the kernel side";
  auto kernel_datagram = [&](ByteView p) {
    auto ip = parse_ipv4(p);
    if (!ip || ip->protocol != 17 || ip->src != ipv4(kTheirAddress) || ip->body.size() < 8) return false;
    ByteView data = ip->body.subspan(8);
    return load_be16(&ip->body[2]) == 9999 && as_chars(data) == marker;
  };
  bool received = false;
  for (int attempt = 0; attempt < 10 && !received; ++attempt) {
    sendto(sender.fd(), marker.data(), marker.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    received = us.drive_until([&] { return us.has_payload(kernel_datagram); }, 2s);
  }
  if (!received) MESSAGE("wireguard-go log:\n", wg.log());
  REQUIRE(received);
  CHECK(us.tunnel.stats().initiations_sent == 0);
  CHECK(us.tunnel.stats().count(Outcome::handshake_initiation) >= 1);
  CHECK(us.tunnel.stats().responses_sent >= 1);
  CHECK(us.count(Event::Kind::handshake_complete) >= 1);  // confirmed by wireguard-go's data

  // The session wireguard-go started carries our echo request and the kernel's reply.
  CHECK(us.tunnel.send(wg.public_key(), icmp_echo_request(0xb2b2, 1), wall_now()) == SendOutcome::sent);
  const bool replied =
      us.drive_until([&] { return us.has_payload([](ByteView p) { return is_echo_reply(p, 0xb2b2, 1); }); }, 5s);
  if (!replied) MESSAGE("wireguard-go log:\n", wg.log());
  CHECK(replied);
  CHECK(us.tunnel.stats().initiations_sent == 0);
  check_wg_show(wg, us.tunnel.public_key());
}
