// RelayClient: the peer side of a relay link, a WebSocket client of its own on the caller's libuv
// loop (a socket watched by uv_poll, OpenSSL for wss://), with the frame codec and the handshake
// of common/relay.
//
// Why not libwebsockets here (the relay still uses it): lws 4.1's client masks every outgoing
// byte in a loop that reloads its mask index from memory, and parses every incoming byte through
// a per-byte state machine. On a bulk transfer that was ~58% of the agent's and the CLI's CPU
// (perf, bench_portforward), which capped port-forward well below `ssh -L`. A relay link needs
// little of WebSocket: one upgrade, binary messages of at most 65570 bytes, ping/pong and close.
// Here outgoing frames are built and masked in place (the relay frame is encoded with headroom
// for the WebSocket header), several go out in one writev(), and incoming messages are handed on
// as views into the read buffer, without a copy.
#include "common/net/relay_client.hpp"

#include <arpa/inet.h>
#include <signal.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <vector>

#include "common/net/lws.hpp"
#include "common/net/uv.hpp"
#include "common/relay/handshake.hpp"
#include "common/util/log.hpp"

namespace airlock::net {

using namespace std::chrono;
using Clock = steady_clock;

namespace {

// ---- WebSocket framing (RFC 6455), client side ---------------------------------------------------

constexpr uint8_t kOpContinuation = 0x0;
constexpr uint8_t kOpText = 0x1;
constexpr uint8_t kOpBinary = 0x2;
constexpr uint8_t kOpClose = 0x8;
constexpr uint8_t kOpPing = 0x9;
constexpr uint8_t kOpPong = 0xa;
constexpr size_t kMaxClientHeader = 14;  // 2 + 8 (length) + 4 (mask)
constexpr size_t kMaxControlPayload = 125;
constexpr std::string_view kAcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

constexpr size_t kReadBufferSize = 256 * 1024;   // holds several whole relay frames
constexpr size_t kReadPerEvent = 1024 * 1024;    // then yield the loop to other sockets
constexpr size_t kWritevBytes = 256 * 1024;      // one writev() gathers frames up to this
constexpr int kWritevFrames = 64;
constexpr size_t kMaxUpgradeAnswer = 8192;
constexpr size_t kNotSentLowWater = 128 * 1024;  // TCP_NOTSENT_LOWAT: two whole relay frames
constexpr size_t kControlQueueLimit = 1024 * 1024;  // control frames waiting to go out

size_t ws_header_size(size_t payload) { return 2 + (payload < 126 ? 0 : payload < 65536 ? 2 : 8) + 4; }

// dst = src XOR the 4-byte mask repeated (dst may be src: masking in place). Every byte a client
// sends is masked (RFC 6455), so this runs over each packet, and it is where the packet is copied
// into its frame: one pass instead of a copy and then a masking pass. Four 16-byte vectors per
// round kept in registers (SSE2 on x86-64; -O2 does not vectorise the byte loop by itself).
void mask_copy(uint8_t* dst, const uint8_t* src, size_t n, const uint8_t mask[4]) {
  using V = uint8_t __attribute__((vector_size(16)));
  V m;
  for (int k = 0; k < 16; ++k) m[k] = mask[k & 3];
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    V a, b, c, d;
    std::memcpy(&a, src + i, 16);
    std::memcpy(&b, src + i + 16, 16);
    std::memcpy(&c, src + i + 32, 16);
    std::memcpy(&d, src + i + 48, 16);
    a ^= m;
    b ^= m;
    c ^= m;
    d ^= m;
    std::memcpy(dst + i, &a, 16);
    std::memcpy(dst + i + 16, &b, 16);
    std::memcpy(dst + i + 32, &c, 16);
    std::memcpy(dst + i + 48, &d, 16);
  }
  for (; i + 16 <= n; i += 16) {
    V a;
    std::memcpy(&a, src + i, 16);
    a ^= m;
    std::memcpy(dst + i, &a, 16);
  }
  for (; i < n; ++i) dst[i] = src[i] ^ mask[i & 3];
}
void apply_mask(uint8_t* data, size_t n, const uint8_t mask[4]) { mask_copy(data, data, n, mask); }

// Writes the header of a final, masked client frame into out (ws_header_size(payload) bytes).
void write_ws_header(uint8_t* out, uint8_t opcode, size_t payload, const uint8_t mask[4]) {
  out[0] = static_cast<uint8_t>(0x80 | opcode);
  size_t at = 2;
  if (payload < 126) {
    out[1] = static_cast<uint8_t>(0x80 | payload);
  } else if (payload < 65536) {
    out[1] = 0x80 | 126;
    store_be16(out + 2, static_cast<uint16_t>(payload));
    at = 4;
  } else {
    out[1] = 0x80 | 127;
    store_be64(out + 2, payload);
    at = 10;
  }
  std::memcpy(out + at, mask, 4);
}

// One frame header as received from the server.
struct FrameHead {
  bool fin = false;
  uint8_t opcode = 0;
  size_t header = 0;   // bytes of header
  uint64_t length = 0; // payload bytes
};

// nullopt: not enough bytes yet. An error for what no server may send (reserved bits, a mask).
Result<std::optional<FrameHead>> parse_frame_head(const uint8_t* p, size_t n) {
  if (n < 2) return std::optional<FrameHead>();
  FrameHead h;
  h.fin = p[0] & 0x80;
  h.opcode = p[0] & 0x0f;
  if (p[0] & 0x70) return make_error("relay sent a WebSocket frame with reserved bits set");
  if (p[1] & 0x80) return make_error("relay sent a masked WebSocket frame");
  uint64_t len = p[1] & 0x7f;
  h.header = 2;
  if (len == 126) {
    if (n < 4) return std::optional<FrameHead>();
    len = load_be16(p + 2);
    h.header = 4;
  } else if (len == 127) {
    if (n < 10) return std::optional<FrameHead>();
    len = load_be64(p + 2);
    h.header = 10;
  }
  h.length = len;
  return std::optional<FrameHead>(h);
}

std::string websocket_accept(std::string_view key) {
  std::string text = std::string(key) + std::string(kAcceptGuid);
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha1(), nullptr);
  return crypto::base64_encode(ByteView(digest, len));
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The value of an HTTP header (case-insensitive name) in a response head, or "".
std::string header_value(std::string_view head, std::string_view name) {
  std::string l = lower(head);
  std::string needle = "\r\n" + lower(name) + ":";
  size_t at = l.find(needle);
  if (at == std::string::npos) return "";
  size_t start = at + needle.size();
  size_t end = head.find("\r\n", start);
  std::string_view v = head.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return std::string(v);
}

std::string key_b64(const relay::PeerKey& k) { return crypto::key_to_base64(k); }

std::string tls_error_text() {
  char buf[256] = "";
  unsigned long e = ERR_get_error();
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf[0] ? buf : "unknown TLS error";
}

// One WebSocket frame ready for the wire. Its bytes are not zero-filled first: whoever builds it
// writes every one of them (header, then payload), and most frames are 64 KiB packets.
class WireFrame {
 public:
  explicit WireFrame(size_t size) : data_(new uint8_t[size]), size_(size) {}
  uint8_t* data() { return data_.get(); }
  size_t size() const { return size_; }

 private:
  std::unique_ptr<uint8_t[]> data_;
  size_t size_;
};

// Frames ready for the wire, in order, with their byte count.
struct WireQueue {
  std::deque<WireFrame> items;
  size_t bytes = 0;
  bool empty() const { return items.empty(); }
  void push(WireFrame b) {
    bytes += b.size();
    items.push_back(std::move(b));
  }
  void pop() {
    bytes -= items.front().size();
    items.pop_front();
  }
  void clear() {
    std::deque<WireFrame>().swap(items);
    bytes = 0;
  }
};

}  // namespace

struct RelayClient::Impl {
  enum class Phase { idle, connecting, hello, up, backoff, stopped };
  // Where the current connection is (Phase::connecting covers everything before the server hello).
  enum class Stage { none, resolving, tcp, tls, upgrade, open };

  RelayClient& self;
  uv_loop_t* loop;
  Options opts;
  WsUrl url;
  std::string host_header;
  ClientTls tls_ctx;
  Phase phase = Phase::idle;
  Clock::time_point phase_since = Clock::now();
  Clock::time_point last_rx = Clock::now();
  Clock::time_point last_tx = Clock::now();

  // ---- the connection ----
  Stage stage = Stage::none;
  uint64_t conn_id = 0;  // tells a late resolver answer from an old attempt to go away
  int fd = -1;
  uv_poll_t* poll = nullptr;
  int poll_events = 0;
  SSL* ssl = nullptr;
  bool tls_wants_write = false;  // an SSL call asked for writability
  std::string ws_key;
  std::string upgrade_request;
  size_t upgrade_sent = 0;
  std::string upgrade_answer;
  bool teardown_scheduled = false;
  bool close_sent = false;

  // Incoming bytes: [in_pos, in_len) not yet parsed.
  Bytes in;
  size_t in_pos = 0, in_len = 0;
  Bytes fragments;          // a fragmented message being put together
  bool in_fragmented = false;
  bool parsing = false;

  // Outgoing wire frames: WebSocket control and relay frames first, then interactive, then bulk.
  // A frame partly written stays at the front of its queue and goes on first next time.
  WireQueue control_q, interactive_q, bulk_q;
  WireQueue* partial_q = nullptr;
  size_t partial_off = 0;
  // Mask keys come from a block of CSPRNG output, 4 bytes per frame.
  uint8_t mask_pool[256];
  size_t mask_pos = sizeof mask_pool;

  bool blocked = false;  // a sender was told "not writable" and waits for on_writable
  bool receiving = true;

  std::string error_text;    // from the relay's error frame
  std::string peer_close;    // from the relay's close frame
  std::string local_reason;  // why we closed it ourselves

  int attempt = 0;
  std::optional<Clock::time_point> restart_until;
  milliseconds restart_in{0};
  bool restart_first = false;

  struct PendingPing {
    relay::PingData data;
    Clock::time_point sent;
    std::function<void(Result<microseconds>)> done;
  };
  std::vector<PendingPing> pings;

  Timer tick;
  Timer reconnect_timer;
  Timer soon;  // the teardown, which must not run inside the caller's stack
  Timer kick;  // reading on where epoll will not say so: TLS records already decrypted, a resume
  std::shared_ptr<int> life = std::make_shared<int>(0);  // expires when the client is destroyed

  Impl(RelayClient& s, uv_loop_t* l, Options o)
      : self(s), loop(l), opts(std::move(o)), tick(l), reconnect_timer(l), soon(l), kick(l) {}
  ~Impl() { close_transport(); }

  // Runs a user callback; false if it destroyed the client (then touch nothing).
  template <typename F>
  bool call(F&& f) {
    std::weak_ptr<int> alive = life;
    f();
    return !alive.expired();
  }

  void set_phase(Phase p) {
    phase = p;
    phase_since = Clock::now();
  }

  size_t data_bytes() const { return interactive_q.bytes + bulk_q.bytes; }
  bool writable() const { return phase == Phase::up && data_bytes() < opts.send_buffer_bytes; }

  // ---- outgoing frames ------------------------------------------------------------------------

  void next_mask(uint8_t out[4]) {
    if (mask_pos + 4 > sizeof mask_pool) {
      crypto::random_bytes(mask_pool);
      mask_pos = 0;
    }
    std::memcpy(out, mask_pool + mask_pos, 4);
    mask_pos += 4;
  }

  // A relay frame as one masked binary WebSocket message, built in one buffer.
  WireFrame wire_frame(const relay::Frame& f) {
    const size_t n = relay::encoded_size(f);
    const size_t h = ws_header_size(n);
    WireFrame b(h + n);
    uint8_t mask[4];
    next_mask(mask);
    write_ws_header(b.data(), kOpBinary, n, mask);
    if (const auto* p = std::get_if<relay::SendPacket>(&f)) {
      // The packet is nearly all of the frame: it is masked as it is copied in, after its header.
      relay::encode_into(relay::SendPacket{p->dst, p->flags, {}}, b.data() + h);
      apply_mask(b.data() + h, relay::kPacketHeaderSize, mask);
      uint8_t shifted[4];
      for (size_t k = 0; k < 4; ++k) shifted[k] = mask[(relay::kPacketHeaderSize + k) & 3];
      mask_copy(b.data() + h + relay::kPacketHeaderSize, p->packet.data(), p->packet.size(), shifted);
    } else {
      relay::encode_into(f, b.data() + h);
      apply_mask(b.data() + h, n, mask);
    }
    return b;
  }
  WireFrame wire_message(uint8_t opcode, ByteView payload) {
    const size_t h = ws_header_size(payload.size());
    WireFrame b(h + payload.size());
    uint8_t mask[4];
    next_mask(mask);
    write_ws_header(b.data(), opcode, payload.size(), mask);
    mask_copy(b.data() + h, payload.data(), payload.size(), mask);
    return b;
  }

  void queue_control_frame(const relay::Frame& f) {
    control_q.push(wire_frame(f));
    want_write();
  }

  // ---- connecting -----------------------------------------------------------------------------

  Status prepare() {
    if (url.tls && !tls_ctx) {
      auto t = make_client_tls(opts.ca_file);
      if (!t) return t.error();
      tls_ctx = std::move(*t);
    }
    return Ok{};
  }

  void connect_now() {
    if (phase == Phase::stopped) return;
    set_phase(Phase::connecting);
    error_text.clear();
    peer_close.clear();
    local_reason.clear();
    close_sent = false;
    teardown_scheduled = false;
    ++conn_id;
    LOG_DEBUG("relay-link", "connecting to %s", opts.url.c_str());
    sockaddr_storage addr{};
    if (uv_ip4_addr(url.host.c_str(), url.port, reinterpret_cast<sockaddr_in*>(&addr)) == 0 ||
        uv_ip6_addr(url.host.c_str(), url.port, reinterpret_cast<sockaddr_in6*>(&addr)) == 0) {
      start_tcp(reinterpret_cast<sockaddr*>(&addr));
      return;
    }
    // A name: resolve off the loop. The request outlives this client if it must.
    struct Resolve {
      uv_getaddrinfo_t req;
      std::weak_ptr<int> alive;
      Impl* impl;
      uint64_t conn;
    };
    auto* r = new Resolve{{}, life, this, conn_id};
    r->req.data = r;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    stage = Stage::resolving;
    int rc = uv_getaddrinfo(
        loop, &r->req,
        [](uv_getaddrinfo_t* req, int status, addrinfo* res) {
          std::unique_ptr<Resolve> r(static_cast<Resolve*>(req->data));
          std::unique_ptr<addrinfo, void (*)(addrinfo*)> list(res, uv_freeaddrinfo);
          if (r->alive.expired()) return;
          Impl* d = r->impl;
          if (d->conn_id != r->conn || d->stage != Stage::resolving) return;
          if (status != 0 || !res) {
            d->link_down("could not connect to " + d->opts.url + ": cannot resolve " + d->url.host + ": " +
                         uv_strerror(status));
            return;
          }
          sockaddr_storage a{};
          std::memcpy(&a, res->ai_addr, res->ai_addrlen);
          reinterpret_cast<sockaddr_in*>(&a)->sin_port = htons(static_cast<uint16_t>(d->url.port));
          d->start_tcp(reinterpret_cast<sockaddr*>(&a));
        },
        url.host.c_str(), nullptr, &hints);
    if (rc != 0) {
      delete r;
      link_down("could not connect to " + opts.url + ": cannot resolve " + url.host + ": " + uv_strerror(rc));
    }
  }

  void start_tcp(const sockaddr* addr) {
    fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return link_down("could not connect to " + opts.url + ": socket: " + std::strerror(errno));
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Bulk data waits in our queues, where interactive frames can pass it, not in the kernel's
    // send buffer (FIFO, autotuned to megabytes): the socket takes more only once little of what
    // it holds is still unsent.
    int lowat = static_cast<int>(kNotSentLowWater);
    ::setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
    socklen_t len = addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    if (::connect(fd, addr, len) != 0 && errno != EINPROGRESS)
      return link_down("could not connect to " + opts.url + ": " + std::strerror(errno));
    poll = new uv_poll_t;
    if (uv_poll_init_socket(loop, poll, fd) != 0) {
      delete poll;
      poll = nullptr;
      return link_down("could not connect to " + opts.url + ": cannot watch the socket");
    }
    poll->data = this;
    poll_events = 0;
    stage = Stage::tcp;
    update_poll();
  }

  void begin_upgrade() {
    uint8_t nonce[16];
    crypto::random_bytes(nonce);
    ws_key = crypto::base64_encode(nonce);
    upgrade_request = "GET " + url.path + " HTTP/1.1\r\nHost: " + host_header +
                      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + ws_key +
                      "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " +
                      std::string(relay::kSubprotocol) + "\r\nUser-Agent: airlock\r\n\r\n";
    upgrade_sent = 0;
    upgrade_answer.clear();
    stage = Stage::upgrade;
  }

  // Checks the server's answer to the upgrade; extra bytes after it are WebSocket data.
  bool finish_upgrade(size_t head_end) {
    std::string head = upgrade_answer.substr(0, head_end);
    auto fail = [&](const std::string& why) {
      link_down("could not connect to " + opts.url + ": " + why);
      return false;
    };
    std::string status_line = head.substr(0, head.find("\r\n"));
    if (status_line.rfind("HTTP/1.1 101", 0) != 0) return fail("the relay answered \"" + status_line + "\"");
    if (header_value(head, "Sec-WebSocket-Accept") != websocket_accept(ws_key))
      return fail("the relay's Sec-WebSocket-Accept does not match the key");
    if (header_value(head, "Sec-WebSocket-Protocol") != relay::kSubprotocol)
      return fail("the relay did not agree to the " + std::string(relay::kSubprotocol) + " subprotocol");
    stage = Stage::open;
    in.resize(kReadBufferSize);
    in_pos = 0;
    in_len = upgrade_answer.size() - (head_end + 4);
    std::memcpy(in.data(), upgrade_answer.data() + head_end + 4, in_len);
    upgrade_answer = std::string();
    upgrade_request = std::string();
    last_rx = Clock::now();
    return true;
  }

  // ---- socket I/O -----------------------------------------------------------------------------

  // >0 bytes, 0 on EOF, -1 would block (for TLS: asked to wait), -2 error (error_detail set).
  std::string io_error;
  ssize_t raw_read(uint8_t* buf, size_t n) {
    if (ssl) {
      ERR_clear_error();
      int r = SSL_read(ssl, buf, static_cast<int>(std::min<size_t>(n, INT32_MAX)));
      if (r > 0) return r;
      int e = SSL_get_error(ssl, r);
      if (e == SSL_ERROR_WANT_READ) return -1;
      if (e == SSL_ERROR_WANT_WRITE) {
        tls_wants_write = true;
        return -1;
      }
      if (e == SSL_ERROR_ZERO_RETURN) return 0;
      if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) return 0;  // EOF without close_notify
      io_error = "TLS: " + tls_error_text();
      return -2;
    }
    ssize_t r = ::recv(fd, buf, n, 0);
    if (r >= 0) return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return -1;
    io_error = std::strerror(errno);
    return -2;
  }
  // Bytes written, -1 would block, -2 error.
  ssize_t raw_write(const uint8_t* buf, size_t n) {
    if (ssl) {
      ERR_clear_error();
      int r = SSL_write(ssl, buf, static_cast<int>(std::min<size_t>(n, INT32_MAX)));
      if (r > 0) return r;
      int e = SSL_get_error(ssl, r);
      if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) return -1;
      io_error = "TLS: " + tls_error_text();
      return -2;
    }
    ssize_t r = ::send(fd, buf, n, MSG_NOSIGNAL);
    if (r >= 0) return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return -1;
    io_error = std::strerror(errno);
    return -2;
  }

  bool has_output() const {
    return partial_q || !control_q.empty() || (phase == Phase::up && (!interactive_q.empty() || !bulk_q.empty()));
  }

  void update_poll() {
    if (!poll) return;
    int ev = 0;
    switch (stage) {
      case Stage::tcp: ev = UV_WRITABLE; break;
      case Stage::tls: ev = UV_READABLE | (tls_wants_write ? UV_WRITABLE : 0); break;
      case Stage::upgrade: ev = upgrade_sent < upgrade_request.size() ? UV_WRITABLE : UV_READABLE; break;
      case Stage::open:
        if (receiving && !teardown_scheduled) ev |= UV_READABLE;
        if (has_output() || tls_wants_write) ev |= UV_WRITABLE;
        break;
      default: break;
    }
    if (ev == poll_events) return;
    poll_events = ev;
    if (ev) uv_poll_start(poll, ev, on_poll);
    else uv_poll_stop(poll);
  }
  void want_write() {
    if (stage == Stage::open) update_poll();
  }

  static void on_poll(uv_poll_t* h, int status, int events) {
    auto* d = static_cast<Impl*>(h->data);
    std::weak_ptr<int> alive = d->life;
    if (status < 0 && d->stage != Stage::tcp) {
      d->transport_failed(std::string("socket error: ") + uv_strerror(status));
      return;
    }
    switch (d->stage) {
      case Stage::tcp: d->on_connected(); break;
      case Stage::tls: d->drive_tls(); break;
      case Stage::upgrade: d->drive_upgrade(events); break;
      case Stage::open:
        if (events & UV_WRITABLE || d->tls_wants_write) {
          d->tls_wants_write = false;
          if (!d->flush()) return;
        }
        if (alive.expired()) return;
        if ((events & UV_READABLE) && d->stage == Stage::open) d->read_some();
        break;
      default: break;
    }
    if (!alive.expired()) d->update_poll();
  }

  void on_connected() {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return link_down("could not connect to " + opts.url + ": " + std::strerror(err));
    if (url.tls) {
      ssl = SSL_new(tls_ctx.get());
      SSL_set_fd(ssl, fd);
      SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
      in6_addr ip6;
      in_addr ip4;
      bool is_ip = inet_pton(AF_INET, url.host.c_str(), &ip4) == 1 || inet_pton(AF_INET6, url.host.c_str(), &ip6) == 1;
      if (opts.insecure_skip_verify) {
        SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
      } else if (is_ip) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), url.host.c_str());
      } else {
        SSL_set1_host(ssl, url.host.c_str());
      }
      if (!is_ip) SSL_set_tlsext_host_name(ssl, url.host.c_str());
      stage = Stage::tls;
      drive_tls();
    } else {
      begin_upgrade();
      drive_upgrade(UV_WRITABLE);
    }
    update_poll();
  }

  void drive_tls() {
    ERR_clear_error();
    int r = SSL_connect(ssl);
    if (r == 1) {
      tls_wants_write = false;
      begin_upgrade();
      drive_upgrade(UV_WRITABLE);
      return;
    }
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      tls_wants_write = e == SSL_ERROR_WANT_WRITE;
      update_poll();
      return;
    }
    std::string why;
    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      why = std::string("the relay's certificate is not trusted: ") + X509_verify_cert_error_string(verify);
      ERR_clear_error();
    } else {
      why = "TLS handshake failed: " + tls_error_text();
    }
    link_down("could not connect to " + opts.url + ": " + why);
  }

  void drive_upgrade(int events) {
    if (upgrade_sent < upgrade_request.size()) {
      ssize_t n = raw_write(reinterpret_cast<const uint8_t*>(upgrade_request.data()) + upgrade_sent,
                            upgrade_request.size() - upgrade_sent);
      if (n == -2) return link_down("could not connect to " + opts.url + ": " + io_error);
      if (n > 0) upgrade_sent += static_cast<size_t>(n);
      if (upgrade_sent < upgrade_request.size()) return update_poll();
    }
    for (;;) {
      char buf[4096];
      ssize_t n = raw_read(reinterpret_cast<uint8_t*>(buf), sizeof buf);
      if (n == -1) break;
      if (n == 0) return link_down("could not connect to " + opts.url + ": the relay closed the connection");
      if (n == -2) return link_down("could not connect to " + opts.url + ": " + io_error);
      upgrade_answer.append(buf, static_cast<size_t>(n));
      size_t end = upgrade_answer.find("\r\n\r\n");
      if (end != std::string::npos) {
        if (!finish_upgrade(end)) return;
        kick_soon();  // the server hello may have come with the answer, or wait inside OpenSSL
        return;
      }
      if (upgrade_answer.size() > kMaxUpgradeAnswer)
        return link_down("could not connect to " + opts.url + ": the relay's HTTP answer is too long");
    }
    update_poll();
  }

  // Hands on what the buffer holds and reads on, from the loop rather than the caller's stack.
  void kick_soon() {
    kick.start(milliseconds(0), [this] {
      std::weak_ptr<int> alive = life;
      if (stage != Stage::open || teardown_scheduled || !receiving) return;
      if (!parse_frames() || alive.expired()) return;
      read_some();
      if (!alive.expired()) update_poll();
    });
  }

  // Reads what the socket has (up to kReadPerEvent) and hands on every whole message.
  void read_some() {
    std::weak_ptr<int> alive = life;
    size_t total = 0;
    while (stage == Stage::open && receiving && total < kReadPerEvent) {
      if (in_pos == in_len) in_pos = in_len = 0;
      if (in.size() - in_len < 16 * 1024 && in_pos > 0) {
        std::memmove(in.data(), in.data() + in_pos, in_len - in_pos);
        in_len -= in_pos;
        in_pos = 0;
      }
      if (in_len == in.size()) break;  // full of an unfinished frame: parse_frames() makes room
      const size_t room = in.size() - in_len;
      ssize_t n = raw_read(in.data() + in_len, room);
      if (n == -1) return;  // drained: epoll says when more comes
      if (n == 0) return link_down("connection closed");
      if (n == -2) return transport_failed(io_error);
      in_len += static_cast<size_t>(n);
      total += static_cast<size_t>(n);
      last_rx = Clock::now();
      if (!parse_frames() || alive.expired()) return;
      // A plain socket that filled less than the room offered is empty now; asking again would
      // only get EAGAIN (half of all reads on a download). Epoll is level-triggered: more data
      // wakes us. (SSL_read returns one record at a time, so over TLS a short read says nothing.)
      if (!ssl && static_cast<size_t>(n) < room) break;
    }
    // Stopped before the socket ran dry: decrypted TLS records wait inside OpenSSL, where epoll
    // cannot see them.
    if (ssl && stage == Stage::open && receiving && SSL_pending(ssl) > 0) kick_soon();
  }

  // Hands on every whole message in the buffer; false if the link went down (or the client was
  // destroyed: then nothing of it may be touched, so the caller checks `alive` too).
  bool parse_frames() {
    if (parsing) return true;
    parsing = true;
    std::weak_ptr<int> alive = life;
    bool ok = parse_loop();
    if (alive.expired()) return false;
    parsing = false;
    return ok;
  }

  bool parse_loop() {
    std::weak_ptr<int> alive = life;
    while (stage == Stage::open && receiving && !teardown_scheduled && in_pos < in_len) {
      auto head = parse_frame_head(in.data() + in_pos, in_len - in_pos);
      if (!head) return protocol_failure(head.error().message);
      if (!*head) break;
      const FrameHead& h = **head;
      const bool control = h.opcode & 0x8;
      if (control && (h.length > kMaxControlPayload || !h.fin))
        return protocol_failure("relay sent a malformed WebSocket control frame");
      if (!control && (in_fragmented ? fragments.size() : 0) + h.length > relay::kMaxFrameSize)
        return protocol_failure("relay sent a frame larger than " + std::to_string(relay::kMaxFrameSize) + " bytes");
      if (in_len - in_pos < h.header + h.length) {
        // Not all here yet: make sure the buffer can hold the whole frame.
        if (in_pos > 0 && in.size() - in_pos < h.header + h.length) {
          std::memmove(in.data(), in.data() + in_pos, in_len - in_pos);
          in_len -= in_pos;
          in_pos = 0;
        }
        break;
      }
      ByteView payload(in.data() + in_pos + h.header, h.length);
      in_pos += h.header + h.length;
      int rc = 0;
      switch (h.opcode) {
        case kOpBinary:
        case kOpContinuation:
          if ((h.opcode == kOpBinary) == in_fragmented)
            return protocol_failure("relay sent a WebSocket continuation out of order");
          if (h.fin && !in_fragmented) {
            rc = on_frame(payload);
          } else {
            fragments.insert(fragments.end(), payload.begin(), payload.end());
            in_fragmented = !h.fin;
            if (h.fin) {
              Bytes whole = std::move(fragments);
              fragments = Bytes();
              rc = on_frame(whole);
            }
          }
          break;
        case kOpText:
          local_reason = "relay sent a text message; relay frames are binary";
          rc = -1;
          break;
        case kOpPing:
          control_q.push(wire_message(kOpPong, payload));
          break;
        case kOpPong:
          break;
        case kOpClose:
          if (payload.size() >= 2) {
            peer_close = "code " + std::to_string(load_be16(payload.data()));
            if (payload.size() > 2) peer_close += ": " + std::string(as_chars(payload.subspan(2)));
          }
          send_close(payload.size() >= 2 ? load_be16(payload.data()) : 1000, "");
          schedule_teardown();
          return false;
        default:
          return protocol_failure("relay sent WebSocket opcode " + std::to_string(h.opcode));
      }
      if (alive.expired()) return false;
      if (rc < 0) {
        schedule_teardown();
        return false;
      }
    }
    return stage == Stage::open;
  }

  bool protocol_failure(const std::string& why) {
    local_reason = why;
    send_close(1002, "");
    schedule_teardown();
    return false;
  }

  void transport_failed(const std::string& why) { link_down("connection failed: " + why); }

  // Writes queued frames until the socket would block; false if the link went down.
  bool flush() {
    while (stage == Stage::open && has_output()) {
      WireQueue* q = partial_q;
      if (!q) q = !control_q.empty() ? &control_q : !interactive_q.empty() ? &interactive_q : &bulk_q;
      if (q->empty()) break;
      ssize_t n;
      if (ssl) {
        WireFrame& f = q->items.front();
        n = raw_write(f.data() + partial_off, f.size() - partial_off);
      } else {
        iovec iov[kWritevFrames];
        int count = 0;
        size_t bytes = 0;
        size_t off = partial_off;
        for (auto& f : q->items) {
          if (count == kWritevFrames || (count > 0 && bytes >= kWritevBytes)) break;
          iov[count].iov_base = f.data() + off;
          iov[count].iov_len = f.size() - off;
          bytes += f.size() - off;
          off = 0;
          ++count;
        }
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = static_cast<size_t>(count);
        n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) n = -1;
          else {
            io_error = std::strerror(errno);
            n = -2;
          }
        }
      }
      if (n == -1) break;
      if (n == -2) {
        local_reason = "writing to the relay failed: " + io_error;
        transport_failed(io_error);
        return false;
      }
      last_tx = Clock::now();
      size_t left = static_cast<size_t>(n);
      while (left > 0) {
        WireFrame& f = q->items.front();
        size_t rest = f.size() - partial_off;
        if (left < rest) {
          partial_off += left;
          partial_q = q;
          left = 0;
          break;
        }
        left -= rest;
        partial_off = 0;
        partial_q = nullptr;
        q->pop();
      }
      if (partial_q) break;  // the socket took less than offered: it is full
    }
    if (blocked && phase == Phase::up && data_bytes() <= opts.send_buffer_bytes / 2) {
      blocked = false;
      if (self.on_writable && !call([&] { self.on_writable(); })) return false;
    }
    return true;
  }

  // Best effort: a close frame if the socket takes it now.
  void send_close(uint16_t code, std::string_view reason) {
    if (close_sent || stage != Stage::open) return;
    close_sent = true;
    uint8_t payload[2 + kMaxControlPayload];
    store_be16(payload, code);
    size_t n = std::min(reason.size(), kMaxControlPayload - 2);
    std::memcpy(payload + 2, reason.data(), n);
    // Whatever is half written goes first, or the stream would be corrupt.
    WireFrame frame = wire_message(kOpClose, ByteView(payload, 2 + n));
    if (partial_q) {
      WireFrame& f = partial_q->items.front();
      while (partial_off < f.size()) {
        ssize_t w = raw_write(f.data() + partial_off, f.size() - partial_off);
        if (w <= 0) return;
        partial_off += static_cast<size_t>(w);
      }
    }
    (void)raw_write(frame.data(), frame.size());
  }

  void schedule_teardown() {
    if (teardown_scheduled) return;
    teardown_scheduled = true;
    update_poll();
    soon.start(milliseconds(0), [this] { link_down("connection closed"); });
  }

  void close_transport() {
    if (ssl) {
      SSL_free(ssl);
      ssl = nullptr;
    }
    if (poll) {
      poll->data = reinterpret_cast<void*>(static_cast<intptr_t>(fd));  // the close callback closes the fd
      uv_close(reinterpret_cast<uv_handle_t*>(poll), [](uv_handle_t* h) {
        int fd = static_cast<int>(reinterpret_cast<intptr_t>(h->data));
        if (fd >= 0) ::close(fd);
        delete reinterpret_cast<uv_poll_t*>(h);
      });
      poll = nullptr;
      fd = -1;
    } else if (fd >= 0) {
      ::close(fd);
      fd = -1;
    }
    poll_events = 0;
    stage = Stage::none;
    tls_wants_write = false;
    in = Bytes();
    in_pos = in_len = 0;
    fragments = Bytes();
    in_fragmented = false;
    parsing = false;
    partial_q = nullptr;
    partial_off = 0;
    upgrade_request = std::string();
    upgrade_answer = std::string();
  }

  // The link is gone (refused, failed, closed): tell the application and plan the next attempt.
  void link_down(std::string reason) {
    soon.stop();
    kick.stop();
    teardown_scheduled = false;
    close_transport();
    ++conn_id;
    control_q.clear();
    interactive_q.clear();
    bulk_q.clear();
    blocked = false;
    if (!error_text.empty()) reason = "relay: " + error_text;
    else if (!local_reason.empty()) reason = local_reason;
    else if (!peer_close.empty()) reason = "relay closed the link: " + peer_close;
    error_text.clear();
    local_reason.clear();
    peer_close.clear();
    auto pending = std::move(pings);
    pings.clear();
    const bool stopped = phase == Phase::stopped;
    if (!stopped) set_phase(Phase::backoff);
    LOG_INFO("relay-link", "link to %s down: %s", opts.url.c_str(), reason.c_str());
    for (auto& p : pending) {
      if (!call([&] { p.done(make_error("relay link closed before the pong: " + reason)); })) return;
    }
    if (self.on_state && !call([&] { self.on_state(LinkState::disconnected, reason); })) return;
    if (phase != Phase::backoff || !opts.reconnect) return;
    schedule_reconnect();
  }

  void schedule_reconnect() {
    milliseconds delay;
    auto now = Clock::now();
    double jitter = 0.5 + 0.5 * (crypto::random_u32() / 4294967296.0);
    if (restart_until && now < *restart_until) {
      // The relay said it is restarting: come back when it said, then retry briskly.
      delay = restart_first ? restart_in + milliseconds(static_cast<int64_t>(restart_in.count() * 0.25 * jitter))
                            : milliseconds(static_cast<int64_t>(500 * jitter));
      restart_first = false;
    } else {
      restart_until.reset();
      int64_t base = opts.backoff_initial.count() << std::min(attempt, 16);
      base = std::min<int64_t>(base, opts.backoff_max.count());
      delay = milliseconds(static_cast<int64_t>(base * jitter));
    }
    ++attempt;
    LOG_DEBUG("relay-link", "reconnecting in %lld ms", static_cast<long long>(delay.count()));
    reconnect_timer.start(delay, [this] { connect_now(); });
  }

  // Closes the link on purpose: a close frame if possible, then down with `reason` (asynchronously,
  // so a callback may call this and go on).
  void close_link(std::string reason) {
    if (local_reason.empty()) local_reason = std::move(reason);
    if (stage == Stage::none) return;
    if (stage == Stage::open) {
      flush_quietly();
      send_close(1000, "");
    }
    schedule_teardown();
  }
  void flush_quietly() {
    // Queued control frames (a pong, a last control message) go if the socket takes them now.
    while (!control_q.empty() && !partial_q) {
      WireFrame& f = control_q.items.front();
      ssize_t n = raw_write(f.data(), f.size());
      if (n <= 0) return;
      if (static_cast<size_t>(n) < f.size()) {
        partial_q = &control_q;
        partial_off = static_cast<size_t>(n);
        return;
      }
      control_q.pop();
    }
  }

  void on_tick() {
    auto now = Clock::now();
    if ((phase == Phase::connecting || phase == Phase::hello) && now - phase_since > opts.handshake_timeout) {
      close_link("relay handshake did not finish within " + std::to_string(opts.handshake_timeout.count()) + " ms");
    }
    if (phase == Phase::up) {
      if (now - last_tx >= opts.keepalive_interval) queue_control_frame(relay::KeepAlive{});
      if (receiving && now - last_rx > opts.idle_timeout)
        close_link("nothing heard from the relay for " + std::to_string(duration_cast<seconds>(now - last_rx).count()) + " s");
    }
    for (size_t i = 0; i < pings.size();) {
      if (now - pings[i].sent > opts.ping_timeout) {
        auto p = std::move(pings[i]);
        pings.erase(pings.begin() + static_cast<std::ptrdiff_t>(i));
        if (!call([&] { p.done(make_error("no pong from the relay within " + std::to_string(opts.ping_timeout.count()) + " ms")); }))
          return;
      } else {
        ++i;
      }
    }
  }

  // ---- relay frames ---------------------------------------------------------------------------
  // Returns -1 to close the link.
  int on_frame(ByteView bytes) {
    auto decoded = relay::decode(bytes);
    if (!decoded) {
      local_reason = "relay sent a malformed frame: " + decoded.error().message;
      return -1;
    }
    relay::Frame& frame = *decoded;
    if (phase == Phase::connecting) {
      auto* hello = std::get_if<relay::ServerHello>(&frame);
      if (!hello) return protocol_error(frame, "a server hello");
      if (opts.expected_relay_key && !crypto::equal_ct(*opts.expected_relay_key, hello->relay_key)) {
        local_reason = "relay key " + key_b64(hello->relay_key) + " is not the expected " + key_b64(*opts.expected_relay_key);
        return -1;
      }
      auto reply = relay::make_client_hello(*hello, opts.private_key, opts.token, opts.meta.dump());
      if (!reply) {
        local_reason = reply.error().message;
        return -1;
      }
      self.relay_key_ = hello->relay_key;
      control_q.push(wire_message(kOpBinary, *reply));
      want_write();
      set_phase(Phase::hello);
      return 0;
    }
    if (phase == Phase::hello) {
      if (auto* e = std::get_if<relay::ErrorFrame>(&frame)) {
        error_text = std::string(e->text);
        return 0;
      }
      auto* welcome = std::get_if<relay::ServerWelcome>(&frame);
      if (!welcome) return protocol_error(frame, "a server welcome");
      self.observed_address_ = std::string(welcome->observed_address);
      self.welcome_info_ = nlohmann::json::parse(welcome->info, nullptr, false);
      set_phase(Phase::up);
      attempt = 0;
      restart_until.reset();
      blocked = false;
      last_tx = last_rx = Clock::now();
      LOG_INFO("relay-link", "connected to %s as %s (seen from %s)", opts.url.c_str(),
               log::short_key(key_b64(self.public_key_)).c_str(), self.observed_address_.c_str());
      if (self.on_state && !call([&] { self.on_state(LinkState::connected, "hello accepted"); })) return 0;
      if (phase == Phase::up && self.on_writable && !call([&] { self.on_writable(); })) return 0;
      return 0;
    }
    return dispatch(frame);
  }

  int protocol_error(const relay::Frame& got, std::string_view expected) {
    local_reason = "relay sent " + std::string(relay::frame_type_name(relay::frame_type(got))) + " where " +
                   std::string(expected) + " belongs";
    return -1;
  }

  int dispatch(relay::Frame& frame) {
    switch (relay::frame_type(frame)) {
      case relay::FrameType::recv_packet: {
        auto& p = std::get<relay::RecvPacket>(frame);
        if (self.on_packet) call([&] { self.on_packet(p.src, p.flags, p.packet); });
        return 0;
      }
      case relay::FrameType::control: {
        auto json = nlohmann::json::parse(std::get<relay::Control>(frame).json, nullptr, false);
        if (self.on_control) call([&] { self.on_control(json); });
        return 0;
      }
      case relay::FrameType::peer_gone: {
        auto& g = std::get<relay::PeerGone>(frame);
        if (self.on_peer_gone) call([&] { self.on_peer_gone(g.key, g.reason, g.text); });
        return 0;
      }
      case relay::FrameType::peer_present: {
        auto& p = std::get<relay::PeerPresent>(frame);
        if (self.on_peer_present) call([&] { self.on_peer_present(p.key); });
        return 0;
      }
      case relay::FrameType::ping:
        queue_control_frame(relay::Pong{std::get<relay::Ping>(frame).data});
        return 0;
      case relay::FrameType::pong: {
        auto& data = std::get<relay::Pong>(frame).data;
        for (size_t i = 0; i < pings.size(); ++i) {
          if (pings[i].data == data) {
            auto p = std::move(pings[i]);
            pings.erase(pings.begin() + static_cast<std::ptrdiff_t>(i));
            auto rtt = duration_cast<microseconds>(Clock::now() - p.sent);
            call([&] { p.done(rtt); });
            return 0;
          }
        }
        return 0;
      }
      case relay::FrameType::keep_alive:
        return 0;
      case relay::FrameType::restarting: {
        auto& r = std::get<relay::Restarting>(frame);
        restart_in = milliseconds(r.reconnect_in_ms);
        restart_until = Clock::now() + milliseconds(r.reconnect_in_ms) + milliseconds(r.try_for_ms);
        restart_first = true;
        attempt = 0;
        LOG_INFO("relay-link", "relay is restarting: reconnecting in %u ms", r.reconnect_in_ms);
        if (self.on_restarting) call([&] { self.on_restarting(restart_in); });
        return 0;
      }
      case relay::FrameType::error:
        error_text = std::string(std::get<relay::ErrorFrame>(frame).text);
        return 0;
      default:
        return protocol_error(frame, "a relay-to-peer frame");
    }
  }
};

RelayClient::RelayClient(uv_loop_t* loop, Options options) : impl_(std::make_unique<Impl>(*this, loop, std::move(options))) {
  public_key_ = crypto::x25519_public(impl_->opts.private_key);
}

RelayClient::~RelayClient() {
  impl_->life.reset();
  impl_.reset();  // closes the socket; the uv handles finish closing on the loop
}

Status RelayClient::start() {
  auto& d = *impl_;
  if (d.phase != Impl::Phase::idle && d.phase != Impl::Phase::stopped) return Ok{};
  auto url = parse_ws_url(d.opts.url);
  if (!url) return url.error();
  d.url = *url;
  d.host_header = d.url.host_header();
  if (d.opts.token.empty()) return make_error("no token: the relay refuses links without one");
  if (auto s = d.prepare(); !s) return s;
  // A relay that goes away must not kill the program: OpenSSL writes with write(), which raises
  // SIGPIPE on a closed connection. (libwebsockets, which this client replaced, did the same.)
  struct sigaction current{};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) ::signal(SIGPIPE, SIG_IGN);
  d.attempt = 0;
  d.tick.start(seconds(1), [&d] { d.on_tick(); }, seconds(1));
  d.set_phase(Impl::Phase::idle);
  d.connect_now();
  return Ok{};
}

void RelayClient::stop(std::string_view reason) {
  auto& d = *impl_;
  if (d.phase == Impl::Phase::stopped) return;
  d.set_phase(Impl::Phase::stopped);
  d.reconnect_timer.stop();
  d.tick.stop();
  if (d.stage != Impl::Stage::none) d.close_link(std::string(reason));
}

bool RelayClient::connected() const { return impl_->phase == Impl::Phase::up; }
bool RelayClient::writable() const { return impl_->writable(); }
size_t RelayClient::queued_bytes() const { return impl_->data_bytes(); }

Status RelayClient::send_packet(const relay::PeerKey& dst, uint8_t flags, ByteView bytes) {
  auto& d = *impl_;
  if (bytes.empty()) return make_error("packet is empty");
  if (bytes.size() > relay::kMaxPacketSize)
    return make_error("packet of " + std::to_string(bytes.size()) + " bytes exceeds the " +
                      std::to_string(relay::kMaxPacketSize) + "-byte limit");
  if (flags & ~relay::kFlagsKnown) return make_error("packet flags set reserved bits");
  if (d.phase != Impl::Phase::up) return make_error("relay link is down");
  if (!d.writable()) {
    d.blocked = true;
    return make_error("relay link is busy: wait for on_writable");
  }
  (flags & relay::kFlagInteractive ? d.interactive_q : d.bulk_q).push(d.wire_frame(relay::SendPacket{dst, flags, bytes}));
  if (!d.writable()) d.blocked = true;
  d.want_write();
  return Ok{};
}

Status RelayClient::send_control(const nlohmann::json& message) {
  auto& d = *impl_;
  if (!message.is_object()) return make_error("control message must be a JSON object");
  std::string text = message.dump();
  if (text.size() > relay::kMaxControlSize)
    return make_error("control message of " + std::to_string(text.size()) + " bytes exceeds the " +
                      std::to_string(relay::kMaxControlSize) + "-byte limit");
  if (d.phase != Impl::Phase::up) return make_error("relay link is down");
  if (d.control_q.bytes > kControlQueueLimit) return make_error("relay link's control queue is full");
  d.queue_control_frame(relay::Control{text});
  return Ok{};
}

void RelayClient::ping(std::function<void(Result<microseconds>)> done) {
  auto& d = *impl_;
  if (d.phase != Impl::Phase::up) {
    done(make_error("relay link is down"));
    return;
  }
  relay::PingData data;
  crypto::random_bytes(data);
  d.pings.push_back({data, Clock::now(), std::move(done)});
  d.queue_control_frame(relay::Ping{data});
}

void RelayClient::set_receiving(bool on) {
  auto& d = *impl_;
  if (d.receiving == on) return;
  d.receiving = on;
  d.last_rx = Clock::now();
  if (d.stage != Impl::Stage::open) return;
  d.update_poll();
  // Messages already read wait in the buffer (or in OpenSSL): hand them on from the loop.
  if (on) d.kick_soon();
}

}  // namespace airlock::net
