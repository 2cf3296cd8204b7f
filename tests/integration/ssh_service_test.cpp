// The agent's ssh service against stock OpenSSH: ssh, scp, sftp, rsync, tmux-driven interactive
// sessions, -L / -W / -R forwards, keepalives, host key persistence and the file-transfer policy.
//
// The server runs on a libuv loop in a background thread and listens on a unix socket; every
// accepted connection is handed to SshServer::serve(), as the agent hands it a tunnel stream.
// OpenSSH reaches it through a ProxyCommand, and proxy_command() is the only place that says
// how: set AIRLOCK_SSH_TEST_PROXY (e.g. "airlock proxy ws1") to run the same client commands
// through the real relay and agent.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <libssh/libssh.h>
#include <uv.h>

#include "agent/ssh/ssh_server.hpp"
#include "common/util/log.hpp"
#include "tests/support/deployment.hpp"
#include "tests/support/ssh_client.hpp"

namespace fs = std::filesystem;
using airlock::agent::AuditNote;
using airlock::agent::Identity;
using airlock::agent::ssh::SshConfig;
using airlock::agent::ssh::SshServer;
using namespace std::chrono_literals;
using airlock::test::Background;
using airlock::test::EchoServer;
using airlock::test::echo_through;
using airlock::test::free_tcp_port;
using airlock::test::interrupt_when_ready;
using airlock::test::make_random_file;
using airlock::test::read_file;
using airlock::test::run;
using airlock::test::RunResult;
using airlock::test::sha256_of;
using airlock::test::SshClient;
using airlock::test::TempDir;
using airlock::test::Tmux;
using airlock::test::wait_until;
using airlock::test::write_file;

namespace {

constexpr const char* kBlockedMessage = "file transfer is disabled in this workspace by policy";

// The SSH server under test, on its own loop thread.
class Harness {
 public:
  explicit Harness(const fs::path& dir, SshConfig config = {}) : dir_(dir) {
    socket_path_ = (dir / "ssh.sock").string();
    if (config.host_key_path.empty()) config.host_key_path = (dir / "state" / "ssh_host_ed25519_key").string();
    config.audit = [this](const Identity& who, AuditNote note) {
      std::lock_guard lock(mutex_);
      notes_.push_back({who, std::move(note)});
    };
    host_key_path_ = config.host_key_path;
    std::promise<std::string> ready;
    auto started = ready.get_future();
    thread_ = std::thread([this, config = std::move(config), &ready]() mutable { loop_main(std::move(config), ready); });
    std::string error = started.get();
    if (!error.empty()) thread_.join();
    REQUIRE_MESSAGE(error.empty(), error);
    running_ = true;
  }

  ~Harness() {
    if (!running_) return;
    uv_async_send(&stop_);
    thread_.join();
  }

  const std::string& socket_path() const { return socket_path_; }
  const std::string& host_key_path() const { return host_key_path_; }
  const std::string& fingerprint() const { return fingerprint_; }

  std::vector<AuditNote> notes(const std::string& type = "") {
    std::lock_guard lock(mutex_);
    std::vector<AuditNote> out;
    for (const auto& [who, note] : notes_)
      if (type.empty() || note.event_type == type) out.push_back(note);
    return out;
  }
  std::vector<Identity> note_identities() {
    std::lock_guard lock(mutex_);
    std::vector<Identity> out;
    for (const auto& [who, note] : notes_) out.push_back(who);
    return out;
  }

  // Runs fn on the loop thread and waits for it.
  void call(std::function<void(SshServer&)> fn) {
    std::promise<void> done;
    {
      std::lock_guard lock(mutex_);
      calls_.push_back([&] {
        fn(*server_);
        done.set_value();
      });
    }
    uv_async_send(&call_);
    done.get_future().get();
  }

  size_t active_sessions() {
    size_t n = 0;
    call([&](SshServer& s) { n = s.active_sessions(); });
    return n;
  }

 private:
  void loop_main(SshConfig config, std::promise<std::string>& ready) {
    uv_loop_init(&loop_);
    auto server = SshServer::create(&loop_, std::move(config));
    if (!server) {
      ready.set_value(server.error().message);
      uv_loop_close(&loop_);
      return;
    }
    server_ = std::move(*server);
    fingerprint_ = server_->host_key_fingerprint();

    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", socket_path_.c_str());
    ::unlink(socket_path_.c_str());
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 || ::listen(listen_fd_, 16) != 0) {
      server_.reset();
      uv_run(&loop_, UV_RUN_DEFAULT);
      uv_loop_close(&loop_);
      ready.set_value("cannot listen on " + socket_path_);
      return;
    }
    uv_poll_init(&loop_, &listener_, listen_fd_);
    listener_.data = this;
    uv_poll_start(&listener_, UV_READABLE, [](uv_poll_t* h, int, int) {
      auto* self = static_cast<Harness*>(h->data);
      int fd;
      while ((fd = ::accept4(self->listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        Identity who{"user-1", "dev@example.com", "member", "198.51.100.7", "peerkey="};
        auto served = self->server_->serve(fd, who);
        (void)served;
      }
    });
    uv_async_init(&loop_, &stop_, [](uv_async_t* h) {
      auto* self = static_cast<Harness*>(h->data);
      self->server_.reset();
      uv_close(reinterpret_cast<uv_handle_t*>(&self->listener_), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(&self->stop_), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(&self->call_), nullptr);
      ::close(self->listen_fd_);
    });
    stop_.data = this;
    uv_async_init(&loop_, &call_, [](uv_async_t* h) {
      auto* self = static_cast<Harness*>(h->data);
      std::vector<std::function<void()>> calls;
      {
        std::lock_guard lock(self->mutex_);
        calls.swap(self->calls_);
      }
      for (auto& c : calls) c();
    });
    call_.data = this;
    ready.set_value("");
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }

  fs::path dir_;
  std::string socket_path_;
  std::string host_key_path_;
  std::string fingerprint_;
  std::thread thread_;
  bool running_ = false;
  uv_loop_t loop_{};
  uv_poll_t listener_{};
  uv_async_t stop_{};
  uv_async_t call_{};
  int listen_fd_ = -1;
  std::unique_ptr<SshServer> server_;
  std::mutex mutex_;
  std::vector<std::pair<Identity, AuditNote>> notes_;
  std::vector<std::function<void()>> calls_;
};

// THE way OpenSSH reaches the server: everything else in these tests is plain OpenSSH usage.
std::string proxy_command(const Harness& harness) {
  if (const char* proxy = std::getenv("AIRLOCK_SSH_TEST_PROXY"); proxy != nullptr && *proxy != '\0') return proxy;
  return "socat - UNIX-CONNECT:" + harness.socket_path();
}

int connect_unix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", path.c_str());
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  return fd;
}

// This machine's host name if every address it resolves to is 127.0.0.1, else "".
std::string loopback_host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (::getaddrinfo(name, nullptr, &hints, &result) != 0) return "";
  bool loopback = result != nullptr;
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(ai->ai_addr);
    if (ai->ai_family != AF_INET || v4->sin_addr.s_addr != htonl(INADDR_LOOPBACK)) loopback = false;
  }
  ::freeaddrinfo(result);
  return loopback ? name : "";
}

bool process_gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

}  // namespace

TEST_CASE("exec: stdout, stderr and the exit status reach the client; audit notes are recorded") {
  TempDir dir;
  Harness harness(dir.path());
  SshClient client(dir.path(), proxy_command(harness));

  RunResult r = run(client.ssh + " ws 'echo hi; echo oops >&2; exit 3'");
  CHECK(r.exit_code == 3);
  CHECK(r.out == "hi\n");
  CHECK(r.err == "oops\n");

  // An exec that reads its stdin until EOF: the client's EOF must reach it.
  r = run("printf 'one\\ntwo\\n' > " + (dir.path() / "in").string() + "; " + client.ssh + " ws 'wc -l' < " +
          (dir.path() / "in").string());
  CHECK(r.exit_code == 0);
  CHECK(r.out.find('2') != std::string::npos);

  // A process killed by a signal is reported as exit-signal.
  r = run(client.ssh + " ws 'kill -TERM $$'");
  CHECK(r.exit_code == 255);

  CHECK(wait_until([&] { return harness.notes("session_end").size() >= 3; }));
  auto execs = harness.notes("exec");
  REQUIRE(execs.size() >= 1);
  CHECK(execs[0].details["command"] == "echo hi; echo oops >&2; exit 3");
  CHECK(execs[0].details["service"] == "ssh");
  CHECK(harness.notes("session_start").size() >= 3);
  for (const Identity& who : harness.note_identities()) CHECK(who.user_email == "dev@example.com");
  CHECK(wait_until([&] { return harness.active_sessions() == 0; }));
}

TEST_CASE("env: SetEnv from the client, the manifest's env and working directory") {
  TempDir dir;
  fs::create_directories(dir.path() / "work");
  SshConfig config;
  config.env = {{"AIRLOCK_MANIFEST_VAR", "from-manifest"}};
  config.directory = (dir.path() / "work").string();
  Harness harness(dir.path(), config);
  SshClient client(dir.path(), proxy_command(harness));

  RunResult r = run(client.ssh + " -o SetEnv=AIRLOCK_TEST_VAR=hello ws 'echo $AIRLOCK_TEST_VAR $AIRLOCK_MANIFEST_VAR; pwd; printenv TERM || echo no-term'");
  CHECK(r.exit_code == 0);
  CHECK(r.out == "hello from-manifest\n" + (dir.path() / "work").string() + "\nno-term\n");

  // With a pty, TERM comes from the client's pty-req.
  r = run("TERM=vt220 " + client.ssh + " -tt ws 'echo term=$TERM'");
  CHECK(r.out.find("term=vt220") != std::string::npos);
}

TEST_CASE("Ctrl-C on a pty interrupts the remote process") {
  TempDir dir;
  Harness harness(dir.path());
  SshClient client(dir.path(), proxy_command(harness));

  // The ^C is sent once the trap is set ("ready" came back).
  RunResult r = interrupt_when_ready(client.ssh + " -tt ws",
                                     "trap 'echo got-INT; exit 7' INT; echo ready; while :; do sleep 0.1; done",
                                     dir.path() / "ctrl-c.out", 90s);
  INFO("exit ", r.exit_code, " after ", r.seconds, " s; stdout: ", r.out, "; stderr: ", r.err);
  CHECK(r.out.find("ready") != std::string::npos);
  CHECK(r.out.find("got-INT") != std::string::npos);
  CHECK(r.out.find("ssh_rc=7") != std::string::npos);

  // A plain `sleep 100` dies of the SIGINT; the session ends long before 100 s.
  r = interrupt_when_ready(client.ssh + " -tt ws", "echo ready; sleep 100; echo survived", dir.path() / "sleep.out", 60s);
  CHECK(r.exit_code != -1);
  CHECK(r.out.find("ready") != std::string::npos);  // the ^C came while the remote command ran
  CHECK(r.out.find("survived") == std::string::npos);
  CHECK(r.seconds < 30);
}

TEST_CASE("interactive ssh -tt under tmux: typing, resize and exit") {
  TempDir dir;
  Harness harness(dir.path());
  SshClient client(dir.path(), proxy_command(harness));
  Tmux tmux(dir.path());

  REQUIRE(tmux.start(client.ssh + " -tt ws", 100, 30));
  tmux.type_line("echo hello-$((6*7))");
  CHECK(tmux.wait_for("hello-42"));
  CHECK(tmux.wait_for_size(100, 30));
  tmux.resize(120, 40);
  CHECK(tmux.wait_for_size(120, 40));
  tmux.type_line("exit");
  // The pane's ssh exits when the shell does, which ends the tmux session.
  CHECK(wait_until([&] { return !tmux.has_session(); }, 15s));
  CHECK(harness.notes("shell").size() == 1);
}

// 16 MB here, straight to the service; ssh_relay_test moves 100 MB the whole way through the relay.
TEST_CASE("scp, sftp and rsync move 16 MB both ways intact") {
  TempDir dir;
  Harness harness(dir.path());
  SshClient client(dir.path(), proxy_command(harness));
  const fs::path source = dir.path() / "source.bin";
  constexpr size_t kBulkBytes = 16 << 20;
  constexpr double kMegabytes = static_cast<double>(kBulkBytes) / (1 << 20);
  REQUIRE(make_random_file(source, kBulkBytes));
  const std::string expected = sha256_of(source);
  REQUIRE(expected.size() > 60);

  auto transfer = [&](const std::string& name, const std::string& command, const fs::path& result) {
    RunResult r = run(command, 300s);
    CHECK_MESSAGE(r.exit_code == 0, name << ": " << r.err);
    CHECK_MESSAGE(sha256_of(result) == expected, name);
    MESSAGE(name << ": " << kMegabytes / r.seconds << " MB/s (" << r.seconds << " s)");
    fs::remove(result);
  };
  const fs::path remote = dir.path() / "remote.bin";  // "inside the workspace" is this machine
  const fs::path back = dir.path() / "back.bin";

  REQUIRE(run(client.scp() + " " + source.string() + " ws:" + remote.string()).exit_code == 0);  // warm-up
  fs::remove(remote);
  transfer("scp upload", client.scp() + " " + source.string() + " ws:" + remote.string(), remote);
  fs::copy_file(source, remote);
  transfer("scp download", client.scp() + " ws:" + remote.string() + " " + back.string(), back);
  transfer("scp -O upload", client.scp() + " -O " + source.string() + " ws:" + remote.string(), remote);
  fs::copy_file(source, remote);
  transfer("scp -O download", client.scp() + " -O ws:" + remote.string() + " " + back.string(), back);

  write_file(dir.path() / "put.batch", "put " + source.string() + " " + remote.string() + "\n");
  transfer("sftp put", client.sftp() + " -b " + (dir.path() / "put.batch").string() + " ws", remote);
  fs::copy_file(source, remote);
  write_file(dir.path() / "get.batch", "get " + remote.string() + " " + back.string() + "\n");
  transfer("sftp get", client.sftp() + " -b " + (dir.path() / "get.batch").string() + " ws", back);

  transfer("rsync upload", client.rsync() + " " + source.string() + " ws:" + remote.string(), remote);
  fs::copy_file(source, remote);
  transfer("rsync download", client.rsync() + " ws:" + remote.string() + " " + back.string(), back);

  CHECK(wait_until([&] { return harness.notes("sftp_end").size() == harness.notes("sftp_start").size(); }));
  CHECK(harness.notes("sftp_start").size() >= 4);
}

TEST_CASE("ssh -L and ssh -W reach a port inside the workspace; ssh -R listens inside it") {
  TempDir dir;
  Harness harness(dir.path());
  SshClient client(dir.path(), proxy_command(harness));
  EchoServer echo;

  // -W is a direct-tcpip channel on stdio, with half-close in both directions.
  RunResult r = run("printf hello-W | " + client.ssh + " -W 127.0.0.1:" + std::to_string(echo.port()) + " ws", 30s);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "hello-W");

  // A name (not a numeric address, not "localhost") is resolved off the loop first: the
  // machine's own name, where it resolves to loopback only.
  if (std::string name = loopback_host_name(); !name.empty()) {
    r = run("printf hello-name | " + client.ssh + " -W " + name + ":" + std::to_string(echo.port()) + " ws", 30s);
    CHECK(r.exit_code == 0);
    CHECK(r.out == "hello-name");
  }

  // A closed port is refused at open time, as sshd does: ssh exits 255 at once ("open failed").
  r = run(client.ssh + " -W 127.0.0.1:" + std::to_string(free_tcp_port()) + " ws < /dev/null", 30s);
  CHECK_MESSAGE(r.exit_code == 255, r.err);
  CHECK(r.seconds < 10);

  {
    int local = free_tcp_port();
    Background forward(client.ssh + " -N -o ExitOnForwardFailure=yes -L " + std::to_string(local) + ":127.0.0.1:" +
                       std::to_string(echo.port()) + " ws");
    CHECK(echo_through(local, "hello-L") == "hello-L");
    std::string big(1 << 20, 'x');
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    CHECK(echo_through(local, big) == big);
  }
  {
    int remote = free_tcp_port();
    Background forward(client.ssh + " -N -o ExitOnForwardFailure=yes -R " + std::to_string(remote) + ":127.0.0.1:" +
                       std::to_string(echo.port()) + " ws");
    CHECK(echo_through(remote, "hello-R") == "hello-R");
    CHECK(echo_through(remote, "again-R") == "again-R");
  }
  CHECK(harness.notes("port_forward").size() >= 3);
}

TEST_CASE("port policy applies to direct-tcpip") {
  TempDir dir;
  EchoServer echo;
  SshConfig config;
  config.policy.ports.deny.push_back({static_cast<uint16_t>(echo.port()), static_cast<uint16_t>(echo.port())});
  Harness harness(dir.path(), config);
  SshClient client(dir.path(), proxy_command(harness));
  RunResult r = run("printf x | " + client.ssh + " -W 127.0.0.1:" + std::to_string(echo.port()) + " ws", 30s);
  CHECK(r.exit_code == 255);  // "open failed", not a timeout
  CHECK(r.out.empty());
  CHECK(harness.notes("port_forward_blocked").size() == 1);
}

TEST_CASE("keepalives: the server answers the client's and sends its own") {
  TempDir dir;
  SshConfig config;
  config.keepalive_interval = 1s;
  Harness harness(dir.path(), config);
  SshClient client(dir.path(), proxy_command(harness));

  // The client gives up after one unanswered keepalive: it must get answers.
  RunResult r = run(client.ssh + " -o ServerAliveInterval=1 -o ServerAliveCountMax=1 ws 'sleep 4; echo ok'", 60s);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "ok\n");

  r = run(client.ssh + " -v ws 'sleep 3'", 60s);
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("keepalive@openssh.com") != std::string::npos);
}

TEST_CASE("the host key persists in the state directory across server restarts") {
  TempDir dir;
  std::string first_fingerprint;
  {
    Harness harness(dir.path());
    first_fingerprint = harness.fingerprint();
    SshClient client(dir.path(), proxy_command(harness));
    CHECK(run(client.ssh + " ws true").exit_code == 0);
    struct stat st {};
    REQUIRE(::stat(harness.host_key_path().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
  }
  CHECK(read_file(dir.path() / "known_hosts").find("ssh-ed25519") != std::string::npos);
  {
    Harness harness(dir.path());
    CHECK(harness.fingerprint() == first_fingerprint);
    SshClient client(dir.path(), proxy_command(harness), "", "yes");
    RunResult r = run(client.ssh + " ws 'echo same-key'");
    CHECK(r.exit_code == 0);
    CHECK(r.out == "same-key\n");
  }
  {
    // Control: a server with another state directory is rejected by the same known_hosts.
    TempDir other;
    SshConfig config;
    config.host_key_path = (other.path() / "key").string();
    Harness harness(dir.path(), config);
    CHECK(harness.fingerprint() != first_fingerprint);
    SshClient client(dir.path(), proxy_command(harness), "", "yes");
    CHECK(run(client.ssh + " ws true").exit_code == 255);
  }
}

TEST_CASE("block_file_transfer refuses scp, sftp and rsync with a visible reason") {
  TempDir dir;
  SshConfig config;
  config.policy.block_file_transfer = true;
  Harness harness(dir.path(), config);
  SshClient client(dir.path(), proxy_command(harness));
  const fs::path source = dir.path() / "source.txt";
  write_file(source, "secret\n");
  const std::string target = " ws:" + (dir.path() / "copy.txt").string();

  struct Attempt {
    std::string name;
    std::string command;
  };
  write_file(dir.path() / "put.batch", "put " + source.string() + " " + (dir.path() / "copy.txt").string() + "\n");
  std::vector<Attempt> attempts = {
      {"scp", client.scp() + " " + source.string() + target},
      {"scp -O", client.scp() + " -O " + source.string() + target},
      {"scp -O download", client.scp() + " -O" + target + " " + (dir.path() / "back.txt").string()},
      {"sftp", client.sftp() + " -b " + (dir.path() / "put.batch").string() + " ws"},
      {"rsync", client.rsync() + " " + source.string() + target},
      {"exec sftp-server", client.ssh + " ws /usr/lib/openssh/sftp-server"},
  };
  for (const Attempt& attempt : attempts) {
    RunResult r = run(attempt.command, 60s);
    CHECK_MESSAGE(r.exit_code > 0, attempt.name);  // refused, not killed by the timeout (-1)
    CHECK_MESSAGE(r.err.find(kBlockedMessage) != std::string::npos, attempt.name << " stderr: " << r.err);
  }
  CHECK_FALSE(fs::exists(dir.path() / "copy.txt"));
  CHECK_FALSE(fs::exists(dir.path() / "back.txt"));

  RunResult r = run(client.ssh + " ws 'scp -t /tmp'");
  CHECK(r.exit_code == 1);

  // Everything else still works.
  r = run(client.ssh + " ws 'echo still-ok'");
  CHECK(r.out == "still-ok\n");

  auto blocked = harness.notes("file_transfer_blocked");
  CHECK(blocked.size() >= attempts.size() + 1);
  bool saw_rsync = false;
  for (const AuditNote& note : blocked)
    if (note.details["command"].get<std::string>().find("rsync --server") != std::string::npos) saw_rsync = true;
  CHECK(saw_rsync);
  CHECK(harness.notes("sftp_start").empty());
}

TEST_CASE("the signal request reaches a process that has no pty") {
  // OpenSSH's client never sends "signal"; libssh's client does.
  TempDir dir;
  Harness harness(dir.path());
  int fd = connect_unix(harness.socket_path());
  ssh_session session = ssh_new();
  REQUIRE(session != nullptr);
  ssh_options_set(session, SSH_OPTIONS_FD, &fd);
  ssh_options_set(session, SSH_OPTIONS_HOST, "ws");
  ssh_options_set(session, SSH_OPTIONS_USER, "dev");
  REQUIRE(ssh_connect(session) == SSH_OK);
  CHECK(ssh_userauth_none(session, nullptr) == SSH_AUTH_SUCCESS);
  ssh_channel channel = ssh_channel_new(session);
  REQUIRE(ssh_channel_open_session(channel) == SSH_OK);
  REQUIRE(ssh_channel_request_exec(channel, "trap 'echo got-INT; exit 9' INT; echo ready; while :; do sleep 0.1; done") ==
          SSH_OK);
  std::string output;
  char buffer[256];
  auto read_until = [&](const std::string& needle) {
    auto deadline = std::chrono::steady_clock::now() + 15s;
    while (output.find(needle) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      int n = ssh_channel_read_timeout(channel, buffer, sizeof(buffer), 0, 500);
      if (n > 0) output.append(buffer, static_cast<size_t>(n));
      if (n < 0 || ssh_channel_is_eof(channel)) break;
    }
    return output.find(needle) != std::string::npos;
  };
  CHECK(read_until("ready"));
  CHECK(ssh_channel_request_send_signal(channel, "INT") == SSH_OK);
  CHECK(read_until("got-INT"));
  CHECK(ssh_channel_get_exit_status(channel) == 9);
  ssh_channel_close(channel);
  ssh_channel_free(channel);
  ssh_disconnect(session);
  ssh_free(session);
  ::close(fd);  // libssh leaves a caller's fd open; the stream's end is what the server sees
  CHECK(wait_until([&] { return harness.active_sessions() == 0; }));
}

TEST_CASE("a client that goes away hangs up its processes, with or without a pty") {
  TempDir dir;
  Harness harness(dir.path());
  SshClient client(dir.path(), proxy_command(harness));
  for (const char* tty : {"-T", "-tt"}) {
    CAPTURE(tty);
    fs::path pid_file = dir.path() / (std::string("pid") + tty);
    pid_t pid = 0;
    {
      Background session(client.ssh + " " + tty + " ws 'echo $$ > " + pid_file.string() + "; exec sleep 1000'");
      REQUIRE(wait_until([&] { return !read_file(pid_file).empty(); }, 15s));
      pid = std::stoi(read_file(pid_file));
      CHECK_FALSE(process_gone(pid));
    }  // the client is killed here: the stream closes
    CHECK(wait_until([&] { return process_gone(pid); }, 15s));
  }
  CHECK(wait_until([&] { return harness.active_sessions() == 0; }));
}

TEST_CASE("garbage on the stream closes that one session; the server keeps serving") {
  TempDir dir;
  Harness harness(dir.path());
  SshClient client(dir.path(), proxy_command(harness));
  for (const std::string& garbage : {std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                                    std::string("SSH-2.0-evil\r\n") + std::string(70000, '\xff'),
                                    std::string(5000, '\0')}) {
    int fd = connect_unix(harness.socket_path());
    (void)!::write(fd, garbage.data(), garbage.size());
    pollfd p{fd, POLLIN, 0};
    bool closed = false;
    auto deadline = std::chrono::steady_clock::now() + 15s;
    while (!closed && std::chrono::steady_clock::now() < deadline) {
      if (::poll(&p, 1, 200) > 0) {
        char buffer[4096];
        ssize_t n = ::read(fd, buffer, sizeof(buffer));
        closed = n <= 0;
      }
    }
    CHECK(closed);
    ::close(fd);
  }
  RunResult r = run(client.ssh + " ws 'echo alive'");
  CHECK(r.out == "alive\n");
  CHECK(wait_until([&] { return harness.active_sessions() == 0; }));
}
