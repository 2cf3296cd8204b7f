// The agent's pty service with real shells: PtySessions runs on a libuv loop in a background
// thread, viewers connect through socketpairs as the agent's stream bridge would, and speak the
// framing protocol from the test thread.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <uv.h>
#include <vterm.h>

#include "agent/pty/pty_sessions.hpp"
#include "cli/pty_terminal.hpp"
#include "common/pty/cell_writer.hpp"
#include "common/pty/protocol.hpp"
#include "common/pty/screen.hpp"

using namespace std::chrono_literals;
using airlock::Bytes;
using airlock::ByteView;
using airlock::agent::AuditNote;
using airlock::agent::Identity;
using airlock::agent::pty::PtyConfig;
using airlock::agent::pty::PtySessions;
using airlock::agent::pty::PtySessionStats;
namespace proto = airlock::pty;

namespace {

using Clock = std::chrono::steady_clock;

// A libuv loop on its own thread; run() executes a function there and returns its result.
class LoopThread {
 public:
  LoopThread() {
    uv_loop_init(&loop_);
    uv_async_init(&loop_, &async_, [](uv_async_t* async) { static_cast<LoopThread*>(async->data)->drain(); });
    async_.data = this;
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }
  ~LoopThread() {
    run([this] {
      uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
      // Anything still open is a leak of the code under test; close it so the loop can end.
      uv_walk(
          &loop_,
          [](uv_handle_t* handle, void* arg) {
            if (!uv_is_closing(handle)) {
              *static_cast<int*>(arg) += 1;
              uv_close(handle, nullptr);
            }
          },
          &leaked_);
    });
    thread_.join();
    uv_loop_close(&loop_);
  }
  uv_loop_t* get() { return &loop_; }
  int leaked() const { return leaked_; }

  template <typename F>
  auto run(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    {
      std::lock_guard lock(mutex_);
      tasks_.emplace_back([&task] { task(); });
    }
    uv_async_send(&async_);
    return result.get();
  }

 private:
  void drain() {
    std::deque<std::function<void()>> tasks;
    {
      std::lock_guard lock(mutex_);
      tasks.swap(tasks_);
    }
    for (auto& task : tasks) task();
  }

  uv_loop_t loop_;
  uv_async_t async_;
  std::thread thread_;
  std::mutex mutex_;
  std::deque<std::function<void()>> tasks_;
  int leaked_ = 0;
};

// A viewer as a client: frames over its end of the socketpair, output collected as text.
class Viewer {
 public:
  explicit Viewer(int fd) : fd_(fd) {}
  Viewer(const Viewer&) = delete;
  Viewer& operator=(const Viewer&) = delete;
  ~Viewer() { close(); }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void send_raw(const Bytes& bytes) {
    size_t at = 0;
    while (at < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      REQUIRE(n > 0);
      at += static_cast<size_t>(n);
    }
  }
  void type(std::string_view text) {
    Bytes frame;
    proto::encode_input(airlock::as_bytes(text), frame);
    send_raw(frame);
  }
  void resize(uint16_t cols, uint16_t rows) {
    Bytes frame;
    proto::encode_resize(cols, rows, frame);
    send_raw(frame);
  }

  // Reads what is there within `timeout`; false once the agent closed the connection.
  bool pump(std::chrono::milliseconds timeout) {
    if (eof || fd_ < 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return true;
    uint8_t buffer[65536];
    ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n <= 0) {
      eof = true;
      return false;
    }
    decoder_.push(ByteView(buffer, static_cast<size_t>(n)));
    for (;;) {
      auto next = decoder_.next();
      REQUIRE_MESSAGE(next.ok(), next.error().message);
      if (!next->has_value()) break;
      auto& frame = **next;
      if (auto* out = std::get_if<proto::Output>(&frame)) output.append(airlock::as_chars(out->data));
      if (auto* s = std::get_if<proto::SessionInfo>(&frame)) info = *s;
      if (auto* e = std::get_if<proto::ExitStatus>(&frame)) exit = *e;
      if (auto* c = std::get_if<proto::Closing>(&frame)) error = c->reason;
    }
    return true;
  }
  bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout = 15s) {
    auto deadline = Clock::now() + timeout;
    while (!done()) {
      if (Clock::now() > deadline) return false;
      if (!pump(50ms) && !done()) return done();
    }
    return true;
  }
  bool wait_output(std::string_view needle, std::chrono::milliseconds timeout = 15s) {
    return wait_for([&] { return output.find(needle) != std::string::npos; }, timeout);
  }
  // Until nothing arrived for `quiet`.
  void settle(std::chrono::milliseconds quiet = 700ms) {
    auto deadline = Clock::now() + 15s;
    size_t seen = output.size();
    auto last_change = Clock::now();
    while (Clock::now() < deadline && Clock::now() - last_change < quiet) {
      if (!pump(50ms)) break;
      if (output.size() != seen) {
        seen = output.size();
        last_change = Clock::now();
      }
    }
  }

  std::string output;
  std::optional<proto::SessionInfo> info;
  std::optional<proto::ExitStatus> exit;
  std::optional<std::string> error;
  bool eof = false;

 private:
  int fd_;
  proto::FrameDecoder decoder_{proto::Sender::agent};
};

int g_open_handles = 0;

Identity tester() { return Identity{"user-1", "ada@example.com", "member", "127.0.0.1", "key"}; }

PtyConfig test_config() {
  PtyConfig config;
  config.shell = "/bin/bash";
  // Keep the test user's history file out of it, and the prompt predictable.
  config.env = {{"HISTFILE", "/dev/null"}, {"AIRLOCK_TEST", "workspace-env"}};
  return config;
}

// The service on its loop thread, with the audit notes it reported.
class Service {
 public:
  explicit Service(PtyConfig config = test_config()) {
    config.audit = [this](const Identity& who, AuditNote note) {
      std::lock_guard lock(mutex_);
      notes_.push_back({who.user_id, std::move(note)});
    };
    loop.run([&] { sessions_ = std::make_unique<PtySessions>(loop.get(), std::move(config)); });
  }
  ~Service() {
    loop.run([&] { sessions_.reset(); });
    // Every handle the service opened is closed (or closing) once it is gone.
    g_open_handles = loop.run([&] {
      int open = 0;
      uv_walk(
          loop.get(),
          [](uv_handle_t* handle, void* arg) {
            if (!uv_is_closing(handle) && handle->type != UV_ASYNC) ++*static_cast<int*>(arg);
          },
          &open);
      return open;
    });
  }

  // Attaches the agent's end of a new socketpair; returns the client's end.
  int attach_fd(const nlohmann::json& args) {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    auto status = loop.run([&] { return sessions_->attach(fds[0], args, tester()); });
    last_attach_error = status.ok() ? "" : status.error().message;
    return fds[1];
  }
  Viewer attach(const nlohmann::json& args) { return Viewer(attach_fd(args)); }
  Viewer attach(const std::string& id, uint16_t cols = 80, uint16_t rows = 24, std::string command = "") {
    nlohmann::json args = {{"session", id}, {"cols", cols}, {"rows", rows}};
    if (!command.empty()) args["command"] = command;
    return attach(args);
  }

  size_t count() {
    return loop.run([&] { return sessions_->count(); });
  }
  std::optional<PtySessionStats> stats(const std::string& id) {
    return loop.run([&] { return sessions_->stats(id); });
  }
  // The model's text, cursor and cells, copied on the loop thread.
  struct Snapshot {
    std::string text;
    VTermPos cursor{0, 0};
    bool alt = false;
    std::vector<VTermScreenCell> cells;
  };
  std::optional<Snapshot> model(const std::string& id) {
    return loop.run([&]() -> std::optional<Snapshot> {
      auto* screen = sessions_->screen(id);
      if (!screen) return std::nullopt;
      Snapshot s{screen->text(), screen->cursor(), screen->alt_screen(), {}};
      for (int r = 0; r < screen->rows(); ++r)
        for (int c = 0; c < screen->cols(); ++c) s.cells.push_back(screen->cell(r, c));
      return s;
    });
  }
  bool wait_count(size_t n, std::chrono::milliseconds timeout = 15s) {
    auto deadline = Clock::now() + timeout;
    while (count() != n) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(20ms);
    }
    return true;
  }
  std::vector<std::pair<std::string, AuditNote>> notes() {
    std::lock_guard lock(mutex_);
    return notes_;
  }
  bool has_note(const std::string& event, const std::function<bool(const AuditNote&)>& match = {}) {
    for (auto& [user, note] : notes()) {
      if (note.event_type == event && (!match || match(note))) return true;
    }
    return false;
  }

  LoopThread loop;
  std::string last_attach_error;

 private:
  std::unique_ptr<PtySessions> sessions_;
  std::mutex mutex_;
  std::vector<std::pair<std::string, AuditNote>> notes_;
};

// What a viewer's terminal shows after all of `output`, as the service models it.
struct Screen {
  Screen(int cols, int rows, std::string_view output) : model(cols, rows) { model.feed(airlock::as_bytes(output)); }
  proto::TerminalScreen model;
};

// Which query replies a terminal fed `output` would send back to the shell.
std::string replies_to(std::string_view output, int cols, int rows) {
  VTerm* vt = vterm_new(rows, cols);
  vterm_set_utf8(vt, 1);
  std::string replies;
  vterm_output_set_callback(
      vt, [](const char* s, size_t n, void* user) { static_cast<std::string*>(user)->append(s, n); }, &replies);
  VTermScreen* screen = vterm_obtain_screen(vt);
  vterm_screen_enable_altscreen(screen, 1);
  vterm_screen_reset(screen, 1);
  vterm_input_write(vt, output.data(), output.size());
  vterm_free(vt);
  return replies;
}

int cell_mismatches(const proto::TerminalScreen& a, const std::vector<VTermScreenCell>& cells) {
  int mismatches = 0;
  for (int r = 0; r < a.rows(); ++r) {
    for (int c = 0; c < a.cols(); ++c) {
      VTermScreenCell x = a.cell(r, c);
      const VTermScreenCell& y = cells[static_cast<size_t>(r) * a.cols() + c];
      bool same = x.chars[0] == y.chars[0] && proto::Pen::of(x) == proto::Pen::of(y);
      if (x.chars[0] == 0xffffffffu || y.chars[0] == 0xffffffffu) same = x.chars[0] == y.chars[0];
      mismatches += same ? 0 : 1;
    }
  }
  return mismatches;
}

std::string unique_id(const char* prefix) {
  static int next = 0;
  return std::string(prefix) + "-" + std::to_string(::getpid()) + "-" + std::to_string(++next);
}

bool have(const char* path) { return ::access(path, X_OK) == 0; }

// Runs `command` in a session, lets it draw for viewer A, closes A, attaches B to the same id
// and checks that B sees exactly what A saw — and what the service's model holds — without a
// single query replayed. Then `quit` ends the program and B's screen still matches the model.
void check_reattach(const std::string& command, const std::string& quit, bool expect_alt) {
  Service service;
  std::string id = unique_id("full-screen");
  Viewer a = service.attach(id, 80, 24);
  REQUIRE(a.wait_for([&] { return a.info.has_value(); }));
  CHECK_FALSE(a.info->reattached);
  a.type("echo ready-$((6*7))\r");
  REQUIRE(a.wait_output("ready-42"));
  a.type(command + "\r");
  a.settle(1200ms);
  Screen seen_by_a(80, 24, a.output);
  CHECK(seen_by_a.model.alt_screen() == expect_alt);
  a.close();
  auto deadline = Clock::now() + 5s;
  while (service.stats(id)->viewers != 0 && Clock::now() < deadline) std::this_thread::sleep_for(20ms);

  Viewer b = service.attach(id, 80, 24);
  REQUIRE(b.wait_for([&] { return b.info.has_value(); }));
  CHECK(b.info->reattached);
  CHECK(b.info->id == id);
  b.settle();
  Screen seen_by_b(80, 24, b.output);
  auto model = service.model(id);
  REQUIRE(model);

  CHECK(seen_by_b.model.text() == seen_by_a.model.text());
  CHECK(seen_by_b.model.text() == model->text);
  CHECK(cell_mismatches(seen_by_b.model, model->cells) == 0);
  CHECK(seen_by_b.model.cursor().row == model->cursor.row);
  CHECK(seen_by_b.model.cursor().col == model->cursor.col);
  CHECK(seen_by_b.model.alt_screen() == expect_alt);
  // The repaint holds no query: a terminal shown it answers nothing.
  CHECK(replies_to(b.output, 80, 24).empty());
  for (std::string_view query : {"\x1b[c", "\x1b[>c", "\x1b[5n", "\x1b[6n"}) {
    CHECK(b.output.find(query) == std::string::npos);
  }

  b.type(quit);
  b.settle(1000ms);
  b.type("echo after-$((1+1))\r");
  REQUIRE(b.wait_output("after-2"));
  b.settle(300ms);
  Screen after(80, 24, b.output);
  model = service.model(id);
  REQUIRE(model);
  CHECK_FALSE(after.model.alt_screen());
  CHECK(after.model.text() == model->text);
  // The shell never got a stray reply typed into it.
  CHECK(model->text.find("1;2c") == std::string::npos);
  CHECK(model->text.find(";1R") == std::string::npos);
}

}  // namespace

TEST_CASE("a login shell starts with the workspace's environment and directory") {
  PtyConfig config = test_config();
  config.directory = "/tmp";
  ::setenv("AIRLOCK_AGENT_SECRET_FOR_TEST", "leaked", 1);
  Service service(config);
  std::string id = unique_id("env");
  Viewer v = service.attach(id, 100, 30);
  REQUIRE(v.wait_for([&] { return v.info.has_value(); }));
  CHECK(v.info->id == id);
  CHECK_FALSE(v.info->reattached);
  CHECK(v.info->cols == 100);
  CHECK(v.info->rows == 30);
  v.type("echo \"<$0|$AIRLOCK_TEST|$TERM|$(pwd)|${AIRLOCK_AGENT_SECRET_FOR_TEST}>\"\r");
  CHECK(v.wait_output("<-bash|workspace-env|xterm-256color|/tmp|>"));
  v.type("echo hi\r");
  // A line of its own on the screen (bash may toggle bracketed paste around the command).
  CHECK(v.wait_for([&] { return ("\n" + Screen(100, 30, v.output).model.text() + "\n").find("\nhi\n") != std::string::npos; }));
  CHECK(service.count() == 1);
  CHECK(service.has_note("session_start"));
  CHECK(service.has_note("attach"));
  ::unsetenv("AIRLOCK_AGENT_SECRET_FOR_TEST");
}

TEST_CASE("a command runs in a login shell and its exit status reaches the viewer") {
  Service service;
  Viewer v = service.attach(unique_id("command"), 80, 24, "echo from-command; exit 7");
  REQUIRE(v.wait_for([&] { return v.exit.has_value(); }));
  CHECK(v.output.find("from-command") != std::string::npos);
  CHECK(v.exit->code == 7);
  CHECK(v.exit->signal == 0);
  CHECK(v.wait_for([&] { return v.eof; }));
  CHECK(service.wait_count(0));
}

TEST_CASE("the shell is claimed from the agent's reaper when forked and released once its status is in") {
  // The agent wires claim_child to ChildRegistry::claim: a reaper sweep between the shell's exit
  // and the service's own waitpid must not take the status (the viewers would get 255).
  std::atomic<int> claimed{0};
  std::atomic<int> released{0};
  PtyConfig config = test_config();
  config.claim_child = [&](int pid) -> std::shared_ptr<void> {
    claimed = pid;
    return std::shared_ptr<void>(nullptr, [&, pid](void*) { released = pid; });
  };
  Service service(config);
  Viewer v = service.attach(unique_id("claimed"), 80, 24, "echo pid=$$; sleep 0.3; exit 9");
  REQUIRE(v.wait_output("pid="));
  CHECK(released == 0);
  REQUIRE(v.wait_for([&] { return v.exit.has_value(); }));
  CHECK(v.exit->code == 9);
  CHECK(claimed != 0);
  CHECK(v.output.find("pid=" + std::to_string(claimed.load())) != std::string::npos);
  CHECK(released == claimed);
}

TEST_CASE("resize reaches the shell and the model") {
  Service service;
  std::string id = unique_id("resize");
  Viewer v = service.attach(id, 80, 24);
  v.type("stty size\r");
  CHECK(v.wait_output("24 80"));
  v.resize(100, 30);
  v.type("stty size\r");
  CHECK(v.wait_output("30 100"));
  auto stats = service.stats(id);
  REQUIRE(stats);
  CHECK(stats->cols == 100);
  CHECK(stats->rows == 30);

  // The session follows the most recent viewer: one attaching at another size takes over.
  Viewer w = service.attach(id, 90, 20);
  REQUIRE(w.wait_for([&] { return w.info.has_value(); }));
  CHECK(w.info->cols == 90);
  w.type("stty size\r");
  CHECK(w.wait_output("20 90"));
  // And the viewer who types is the one looking: its size comes back.
  v.type("stty size\r");
  v.settle(500ms);
  CHECK(service.stats(id)->cols == 100);
}

TEST_CASE("two viewers at once both see the output and both can type") {
  Service service;
  std::string id = unique_id("two");
  Viewer a = service.attach(id);
  Viewer b = service.attach(id);
  REQUIRE(b.wait_for([&] { return b.info.has_value(); }));
  CHECK(b.info->reattached);
  a.type("echo both-$((1+1))\r");
  CHECK(a.wait_output("both-2"));
  CHECK(b.wait_output("both-2"));
  b.type("echo from-b-$((2+2))\r");
  CHECK(a.wait_output("from-b-4"));
  CHECK(b.wait_output("from-b-4"));
  CHECK(service.stats(id)->viewers == 2);
}

TEST_CASE("the exit status reaches every viewer, and a signal is reported as one") {
  Service service;
  std::string id = unique_id("exit");
  Viewer a = service.attach(id);
  Viewer b = service.attach(id);
  a.type("echo ok-$((3+3))\r");
  REQUIRE(b.wait_output("ok-6"));
  a.type("exit 3\r");
  REQUIRE(a.wait_for([&] { return a.exit.has_value() && a.eof; }));
  REQUIRE(b.wait_for([&] { return b.exit.has_value() && b.eof; }));
  CHECK(a.exit->code == 3);
  CHECK(b.exit->code == 3);
  CHECK(service.wait_count(0));
  CHECK(service.has_note("session_end", [](const AuditNote& n) { return n.details.value("exit_code", -1) == 3; }));
  CHECK(service.has_note("detach"));

  Viewer c = service.attach(unique_id("killed"));
  c.type("kill -9 $$\r");
  REQUIRE(c.wait_for([&] { return c.exit.has_value(); }));
  CHECK(c.exit->signal == 9);
  CHECK(c.exit->code == 137);
}

TEST_CASE("a shell outlives its viewers until the idle timeout") {
  PtyConfig config = test_config();
  config.idle_timeout = 1500ms;
  Service service(config);
  std::string id = unique_id("idle");
  {
    Viewer v = service.attach(id);
    v.type("echo up-$((4+4))\r");
    REQUIRE(v.wait_output("up-8"));
  }
  // Within the timeout the same id reattaches to the same shell.
  std::this_thread::sleep_for(300ms);
  CHECK(service.count() == 1);
  {
    Viewer v = service.attach(id);
    REQUIRE(v.wait_for([&] { return v.info.has_value(); }));
    CHECK(v.info->reattached);
    CHECK(v.output.find("up-8") != std::string::npos);  // the repaint shows the earlier output
  }
  // Then nobody comes back: the shell is hung up.
  CHECK(service.wait_count(0, 10s));
  CHECK(service.has_note("session_end",
                         [](const AuditNote& n) { return n.details.value("reason", "") == "idle timeout"; }));
  // The id starts afresh.
  Viewer v = service.attach(id);
  REQUIRE(v.wait_for([&] { return v.info.has_value(); }));
  CHECK_FALSE(v.info->reattached);
}

TEST_CASE("reattach: true finds the running shell, and never starts one in place of a shell that is gone") {
  Service service;
  std::string id = unique_id("back");
  nlohmann::json args = {{"session", id}, {"cols", 80}, {"rows", 24}, {"reattach", true}};
  {
    // Nothing to come back to: refused with the reason, and no shell started.
    Viewer v = service.attach(args);
    REQUIRE(v.wait_for([&] { return v.eof; }));
    REQUIRE(v.error.has_value());
    CHECK(v.error->find("no longer exists") != std::string::npos);
    CHECK(service.count() == 0);
  }
  Viewer first = service.attach(id);
  first.type("echo here-$((5+5))\r");
  REQUIRE(first.wait_output("here-10"));
  {
    Viewer again = service.attach(args);
    REQUIRE(again.wait_for([&] { return again.info.has_value(); }));
    CHECK(again.info->reattached);
    CHECK(again.wait_output("here-10"));  // the repaint
  }
  // Once the shell has ended, coming back is refused; attaching without "reattach" starts afresh.
  first.type("exit 0\r");
  REQUIRE(first.wait_for([&] { return first.exit.has_value(); }));
  CHECK(service.wait_count(0, 10s));
  Viewer late = service.attach(args);
  REQUIRE(late.wait_for([&] { return late.eof; }));
  CHECK(late.error.has_value());
  CHECK(service.count() == 0);
}

TEST_CASE("a malformed frame closes only that viewer, with a reason") {
  Service service;
  std::string id = unique_id("malformed");
  Viewer good = service.attach(id);
  Viewer bad = service.attach(id);
  REQUIRE(bad.wait_for([&] { return bad.info.has_value(); }));
  bad.send_raw(Bytes{0x7f, 0, 0, 0, 0});
  REQUIRE(bad.wait_for([&] { return bad.eof; }));
  REQUIRE(bad.error.has_value());
  CHECK(bad.error->find("0x7f is unknown") != std::string::npos);

  Viewer huge = service.attach(id);
  huge.send_raw(Bytes{0x01, 0xff, 0xff, 0xff, 0xff});
  REQUIRE(huge.wait_for([&] { return huge.eof; }));
  CHECK(huge.error.value_or("").find("exceeds") != std::string::npos);

  Viewer wrong_side = service.attach(id);
  Bytes output;
  proto::encode_output(airlock::as_bytes("x"), output);
  wrong_side.send_raw(output);
  REQUIRE(wrong_side.wait_for([&] { return wrong_side.eof; }));
  CHECK(wrong_side.error.has_value());

  good.type("echo still-$((5+5))\r");
  CHECK(good.wait_output("still-10"));
  CHECK(service.count() == 1);
  CHECK(service.stats(id)->viewers == 1);
}

TEST_CASE("bad open arguments are refused with a reason") {
  Service service;
  for (const char* text : {R"([])", R"({"session":"../etc","cols":80,"rows":24})",
                           R"({"session":"ok","cols":0,"rows":24})", R"({"session":"ok","cols":80})",
                           R"({"session":"ok","cols":80,"rows":24,"command":5})",
                           R"({"session":"ok","cols":80,"rows":24,"reattach":"yes"})"}) {
    CAPTURE(text);
    auto args = nlohmann::json::parse(text);
    Viewer v = service.attach(args);
    CHECK_FALSE(service.last_attach_error.empty());
    REQUIRE(v.wait_for([&] { return v.eof; }));
    CHECK(v.error.has_value());
  }
  CHECK(service.count() == 0);
}

TEST_CASE("reattaching to less restores its screen, then the shell's") {
  if (!have("/usr/bin/less")) {
    MESSAGE("less is not installed: skipped");
    return;
  }
  check_reattach("seq 1 300 | sed 's/^/line /' | less", "q", true);
}

TEST_CASE("reattaching to top restores its screen") {
  check_reattach("top -d 100 -n 2", "q", false);  // procps top draws on the primary screen
}

TEST_CASE("reattaching to vim restores its screen and replays none of its queries") {
  if (!have("/usr/bin/vim")) {
    MESSAGE("vim is not installed: skipped");
    return;
  }
  check_reattach("printf 'alpha\\nbeta\\n' > /tmp/airlock-pty-vim.txt; vim -u NONE -i NONE -N -n /tmp/airlock-pty-vim.txt",
                 "\x1b:q!\r", true);
}

TEST_CASE("queries in earlier output are not answered again on reattach") {
  Service service;
  std::string id = unique_id("queries");
  {
    Viewer a = service.attach(id);
    a.type("printf 'q:\\033[c\\033[>c\\033[6n\\033[5n:q\\n'; echo printed-$((9*9))\r");
    REQUIRE(a.wait_output("printed-81"));
    a.settle(300ms);
  }
  Viewer b = service.attach(id);
  REQUIRE(b.wait_for([&] { return b.info.has_value(); }));
  b.settle(500ms);
  CHECK(replies_to(b.output, 80, 24).empty());
  b.type("echo fine-$((2*5))\r");
  REQUIRE(b.wait_output("fine-10"));
  b.settle(300ms);
  auto model = service.model(id);
  REQUIRE(model);
  CHECK(model->text.find("q::q") != std::string::npos);
  CHECK(model->text.find("1;2c") == std::string::npos);
  CHECK(model->text.find("0n") == std::string::npos);
}

TEST_CASE("flow: a viewer that stops reading is resynced while the other keeps going") {
  PtyConfig config = test_config();
  config.flow.viewer_pause_bytes = 64 * 1024;
  config.flow.viewer_resync_bytes = 256 * 1024;
  Service service(config);
  std::string id = unique_id("flow-two");
  Viewer reader = service.attach(id);
  Viewer stalled = service.attach(id);
  REQUIRE(stalled.wait_for([&] { return stalled.info.has_value(); }));
  // The stalled viewer reads nothing from here on.
  reader.type("yes 'flood of text' | head -c 8000000; echo flood-$((3*7))-done\r");
  size_t max_queued = 0;
  bool went_stale = false;
  auto deadline = Clock::now() + 120s;
  while (reader.output.find("flood-21-done") == std::string::npos && Clock::now() < deadline) {
    reader.pump(20ms);
    auto stats = service.stats(id);
    REQUIRE(stats);
    max_queued = std::max(max_queued, stats->max_viewer_queued);
    went_stale = went_stale || stats->stale_viewers == 1;
  }
  CHECK(reader.output.find("flood-21-done") != std::string::npos);
  CHECK(went_stale);
  // Bounded: never more than the resync bound for anyone.
  CHECK(max_queued <= config.flow.viewer_resync_bytes);
  MESSAGE("largest queue for a viewer: " << max_queued << " bytes");

  // When the stalled viewer reads again it catches up through a repaint, not the whole flood, and
  // ends up showing the session's screen (however long the catching up takes on a loaded machine).
  // The stalled viewer's output is followed incrementally while waiting: parsing all of it again
  // on every poll (megabytes) made this wait outlast its deadline on a busy machine.
  proto::TerminalScreen following(80, 24);
  size_t followed = 0;
  auto same_screen = [&] {
    following.feed(airlock::as_bytes(std::string_view(stalled.output).substr(followed)));
    followed = stalled.output.size();
    auto model = service.model(id);
    return model && following.text() == model->text;
  };
  stalled.wait_for(same_screen, 30s);
  // The screens can match before the shell's prompt comes: both viewers take what is still on
  // its way before the final comparison.
  reader.settle(300ms);
  stalled.settle(300ms);
  CHECK(stalled.output.size() < 4 * 1024 * 1024);
  auto model = service.model(id);
  REQUIRE(model);
  CHECK(Screen(80, 24, stalled.output).model.text() == model->text);
  CHECK(service.stats(id)->stale_viewers == 0);
}

TEST_CASE("flow: with only a viewer that stops reading, the shell is paused, not buffered") {
  PtyConfig config = test_config();
  config.flow.viewer_pause_bytes = 64 * 1024;
  config.flow.viewer_resync_bytes = 256 * 1024;
  Service service(config);
  std::string id = unique_id("flow-one");
  Viewer v = service.attach(id);
  v.type("echo go-$((1+2))\r");
  REQUIRE(v.wait_output("go-3"));
  v.type("yes\r");
  // Stop reading; the pty is paused once this viewer's queue passes the pause bound.
  auto deadline = Clock::now() + 20s;
  std::optional<PtySessionStats> stats;
  while (Clock::now() < deadline) {
    stats = service.stats(id);
    if (stats && stats->output_paused) break;
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE(stats);
  CHECK(stats->output_paused);
  uint64_t read_before = stats->bytes_from_pty;
  std::this_thread::sleep_for(700ms);
  stats = service.stats(id);
  CHECK(stats->bytes_from_pty == read_before);  // nothing more was read from the shell
  CHECK(stats->max_viewer_queued <= config.flow.viewer_pause_bytes + proto::kMaxDataPayload + proto::kFrameHeaderSize);
  CHECK(stats->stale_viewers == 0);

  // Reading again resumes the shell; input still gets through (Ctrl-C stops yes).
  for (int i = 0; i < 20; ++i) v.pump(20ms);
  CHECK(service.stats(id)->bytes_from_pty > read_before);
  v.type("\x03");
  v.type("echo stopped-$((2+5))\r");
  CHECK(v.wait_output("stopped-7", 60s));
}

TEST_CASE("the service shuts down cleanly with sessions running") {
  g_open_handles = -1;
  {
    Service service;
    Viewer v = service.attach(unique_id("shutdown"));
    v.type("echo alive-$((1+1))\r");
    REQUIRE(v.wait_output("alive-2"));
  }
  CHECK(g_open_handles == 0);
}

namespace {

// The user's side of a local terminal (the pty master), as a person at the keyboard.
struct LocalTerminal {
  LocalTerminal() {
    struct winsize size {};
    size.ws_col = 80;
    size.ws_row = 24;
    REQUIRE(::openpty(&master, &slave, nullptr, nullptr, &size) == 0);
    ::fcntl(master, F_SETFL, ::fcntl(master, F_GETFL) | O_NONBLOCK);
    REQUIRE(::tcgetattr(slave, &cooked) == 0);
  }
  ~LocalTerminal() {
    ::close(master);
    ::close(slave);
  }
  void type(std::string_view text) { REQUIRE(::write(master, text.data(), text.size()) == static_cast<ssize_t>(text.size())); }
  bool wait_screen(std::string_view needle, std::chrono::milliseconds timeout = 15s) {
    auto deadline = Clock::now() + timeout;
    while (screen.find(needle) == std::string::npos) {
      if (Clock::now() > deadline) return false;
      pollfd p{master, POLLIN, 0};
      if (::poll(&p, 1, 50) > 0) {
        char buffer[4096];
        ssize_t n = ::read(master, buffer, sizeof buffer);
        if (n > 0) screen.append(buffer, static_cast<size_t>(n));
      }
    }
    return true;
  }
  bool raw() const {
    struct termios mode {};
    ::tcgetattr(slave, &mode);
    return !(mode.c_lflag & (ICANON | ECHO | ISIG)) && !(mode.c_oflag & OPOST);
  }
  bool restored() const {
    struct termios mode {};
    ::tcgetattr(slave, &mode);
    return mode.c_lflag == cooked.c_lflag && mode.c_iflag == cooked.c_iflag && mode.c_oflag == cooked.c_oflag;
  }

  int master = -1;
  int slave = -1;
  struct termios cooked {};
  std::string screen;
};

}  // namespace

TEST_CASE("the CLI's terminal: raw mode, keystrokes, window changes, exit code, and the terminal back") {
  Service service;
  LocalTerminal local;
  std::atomic<int> exit_code{-1};
  std::atomic<bool> reattached{true};
  std::unique_ptr<airlock::cli::PtyTerminal> terminal;
  airlock::cli::PtyTerminal::Events events;
  events.session = [&](const proto::SessionInfo& info) { reattached = info.reattached; };
  events.exited = [&](proto::ExitStatus status) { exit_code = airlock::cli::PtyTerminal::exit_code(status); };
  REQUIRE(service.loop.run([&] {
    terminal = std::make_unique<airlock::cli::PtyTerminal>(service.loop.get(), events,
                                                           airlock::cli::PtyTerminalOptions{local.slave, local.slave, true});
    return terminal->start().ok();
  }));
  CHECK(local.raw());
  auto size = service.loop.run([&] { return terminal->window_size(); });
  REQUIRE(size);
  CHECK(size->cols == 80);

  std::string id = unique_id("cli");
  int fd = service.attach_fd({{"session", id}, {"cols", size->cols}, {"rows", size->rows}});
  REQUIRE(service.loop.run([&] { return terminal->attach(fd).ok(); }));
  local.type("echo typed-$((3*3))\r");
  CHECK(local.wait_screen("typed-9"));
  CHECK_FALSE(reattached);

  // A window change on the local terminal reaches the remote shell.
  struct winsize bigger {};
  bigger.ws_col = 100;
  bigger.ws_row = 30;
  ::ioctl(local.master, TIOCSWINSZ, &bigger);
  ::raise(SIGWINCH);
  auto deadline = Clock::now() + 5s;
  while (service.stats(id)->cols != 100 && Clock::now() < deadline) std::this_thread::sleep_for(20ms);
  local.type("stty size\r");
  CHECK(local.wait_screen("30 100"));

  local.type("exit 5\r");
  deadline = Clock::now() + 15s;
  while (exit_code == -1 && Clock::now() < deadline) std::this_thread::sleep_for(20ms);
  CHECK(exit_code == 5);
  service.loop.run([&] { terminal->stop(); });
  CHECK(local.restored());
  service.loop.run([&] { terminal.reset(); });
}

TEST_CASE("the CLI's terminal reports a lost connection and reattaches to the same session") {
  Service service;
  LocalTerminal local;
  std::mutex mutex;
  std::vector<std::pair<std::string, bool>> losses;
  std::atomic<int> sessions_seen{0};
  std::atomic<bool> last_reattached{false};
  airlock::cli::PtyTerminal::Events events;
  events.session = [&](const proto::SessionInfo& info) {
    last_reattached = info.reattached;
    ++sessions_seen;
  };
  events.connection_lost = [&](const std::string& reason, bool refused) {
    std::lock_guard lock(mutex);
    losses.emplace_back(reason, refused);
  };
  std::unique_ptr<airlock::cli::PtyTerminal> terminal;
  REQUIRE(service.loop.run([&] {
    terminal = std::make_unique<airlock::cli::PtyTerminal>(service.loop.get(), events,
                                                           airlock::cli::PtyTerminalOptions{local.slave, local.slave, true});
    return terminal->start().ok();
  }));

  // A connection that just ends: worth a reconnect.
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  REQUIRE(service.loop.run([&] { return terminal->attach(pair[0]).ok(); }));
  ::close(pair[1]);
  auto lost = [&](size_t n) {
    auto deadline = Clock::now() + 5s;
    for (;;) {
      {
        std::lock_guard lock(mutex);
        if (losses.size() >= n) return true;
      }
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(20ms);
    }
  };
  REQUIRE(lost(1));
  CHECK_FALSE(losses[0].second);

  // An agent that refuses, with a reason.
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  REQUIRE(service.loop.run([&] { return terminal->attach(pair[0]).ok(); }));
  Bytes refusal;
  proto::encode_error("session limit reached", refusal);
  REQUIRE(::write(pair[1], refusal.data(), refusal.size()) == static_cast<ssize_t>(refusal.size()));
  REQUIRE(lost(2));
  CHECK(losses[1].first == "session limit reached");
  CHECK(losses[1].second);
  ::close(pair[1]);

  // The real thing: attach, lose it, re-dial with the same session id.
  std::string id = unique_id("cli-again");
  int fd = service.attach_fd({{"session", id}, {"cols", 80}, {"rows", 24}});
  REQUIRE(service.loop.run([&] { return terminal->attach(fd).ok(); }));
  local.type("echo first-$((1+6))\r");
  REQUIRE(local.wait_screen("first-7"));
  service.loop.run([&] { terminal->detach(); });
  local.type("echo second-$((2+6))\r");  // typed while away: waits in the local terminal
  fd = service.attach_fd({{"session", id}, {"cols", 80}, {"rows", 24}});
  REQUIRE(service.loop.run([&] { return terminal->attach(fd).ok(); }));
  CHECK(local.wait_screen("second-8"));
  CHECK(last_reattached);
  CHECK(sessions_seen == 2);
  service.loop.run([&] { terminal.reset(); });
  CHECK(local.restored());
}

TEST_CASE("the CLI's terminal is restored when a signal ends the program") {
  LocalTerminal local;
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // As in a plain program: the test harness's own handlers are not there.
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) ::signal(sig, SIG_DFL);
    uv_loop_t loop;
    uv_loop_init(&loop);
    airlock::cli::PtyTerminal terminal(&loop, {}, airlock::cli::PtyTerminalOptions{local.slave, local.slave, true});
    if (!terminal.start()) _exit(2);
    (void)!::write(ready[1], "r", 1);
    for (;;) ::pause();
  }
  char byte = 0;
  REQUIRE(::read(ready[0], &byte, 1) == 1);
  CHECK(local.raw());
  ::kill(child, SIGTERM);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGTERM);
  CHECK(local.restored());
  ::close(ready[0]);
  ::close(ready[1]);
}
