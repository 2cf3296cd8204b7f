#include "cli/pty_terminal.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iterator>

#include "common/util/log.hpp"

namespace airlock::cli {
namespace {

constexpr const char* kLog = "pty";
// Bytes queued towards the agent or the screen before the other side stops being read.
constexpr size_t kMaxQueued = 256 * 1024;
constexpr size_t kReadBuffer = 64 * 1024;
// Modes a remote program may have left on when the connection ends: mouse reporting, bracketed
// paste, application keys, a hidden cursor, colours. Switching them off is harmless otherwise.
constexpr std::string_view kLocalTerminalReset =
    "\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1004l\x1b[?2004l\x1b[?1l\x1b>\x1b[?25h\x1b[m";

// What the local terminal was before raw mode, for every way the process can end. Signal
// handlers read it, so it is plain data set before `active` turns true.
struct SavedTerminal {
  std::atomic<bool> active{false};
  int fd = -1;
  struct termios mode {};
};
SavedTerminal g_saved;

constexpr int kRestoreSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
struct sigaction g_previous[std::size(kRestoreSignals)];
bool g_installed[std::size(kRestoreSignals)] = {};

void restore_local_terminal() {
  // tcsetattr is async-signal-safe; the exchange makes the restore happen once.
  if (g_saved.active.exchange(false)) tcsetattr(g_saved.fd, TCSANOW, &g_saved.mode);
}

void on_terminating_signal(int sig) {
  restore_local_terminal();
  // SA_RESETHAND put the default action back; the signal is delivered again on return.
  raise(sig);
}

void install_signal_handlers() {
  static bool at_exit_registered = false;
  if (!at_exit_registered) {
    std::atexit(restore_local_terminal);
    at_exit_registered = true;
  }
  for (size_t i = 0; i < std::size(kRestoreSignals); ++i) {
    struct sigaction current {};
    if (sigaction(kRestoreSignals[i], nullptr, &current) != 0) continue;
    // A handler someone else installed (libuv's, say) stays: that code ends the program properly.
    if (current.sa_handler != SIG_DFL || (current.sa_flags & SA_SIGINFO)) continue;
    struct sigaction ours {};
    ours.sa_handler = on_terminating_signal;
    sigemptyset(&ours.sa_mask);
    ours.sa_flags = SA_RESETHAND;
    if (sigaction(kRestoreSignals[i], &ours, &g_previous[i]) == 0) g_installed[i] = true;
  }
}

void remove_signal_handlers() {
  for (size_t i = 0; i < std::size(kRestoreSignals); ++i) {
    if (!g_installed[i]) continue;
    struct sigaction current {};
    if (sigaction(kRestoreSignals[i], nullptr, &current) == 0 && current.sa_handler == on_terminating_signal) {
      sigaction(kRestoreSignals[i], &g_previous[i], nullptr);
    }
    g_installed[i] = false;
  }
}

// cfmakeraw: no echo, no line editing, no signals from keys, no output processing (a lone "\n"
// from the remote must move down without returning to column 0, as ncurses expects).
struct termios raw_mode_of(struct termios mode) {
  mode.c_iflag &= ~static_cast<tcflag_t>(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
  mode.c_oflag &= ~static_cast<tcflag_t>(OPOST);
  mode.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
  mode.c_cflag &= ~static_cast<tcflag_t>(CSIZE | PARENB);
  mode.c_cflag |= CS8;
  mode.c_cc[VMIN] = 1;
  mode.c_cc[VTIME] = 0;
  return mode;
}

// Writes all of `bytes` to `fd` even if it is non-blocking, giving up after a few seconds of a
// terminal that takes nothing (the program is ending: it must not hang on a stuck terminal).
void write_blocking(int fd, std::string_view bytes) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (!bytes.empty() && std::chrono::steady_clock::now() < deadline) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 100);
    } else if (!(n < 0 && errno == EINTR)) {
      return;
    }
  }
}

struct WriteRequest {
  uv_write_t req{};
  std::string bytes;
};

}  // namespace

struct PtyTerminal::Stream {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tty_t tty;
    uv_pipe_t pipe;
  } h{};
  PtyTerminal* owner = nullptr;  // nullptr once closing: late callbacks do nothing
  std::array<char, kReadBuffer> buffer{};

  uv_stream_t* stream() { return &h.stream; }
  size_t queued() const { return h.stream.write_queue_size; }

  // Opens `fd` (always consumed) as a tty or pipe handle; nullptr when it is neither.
  static Result<Stream*> open(uv_loop_t* loop, int fd, bool readable, PtyTerminal* owner) {
    auto* s = new Stream;
    s->owner = owner;
    uv_handle_type type = uv_guess_handle(fd);
    int rc;
    if (type == UV_TTY) {
      rc = uv_tty_init(loop, &s->h.tty, fd, readable ? 1 : 0);
      if (rc == 0) {
        // libuv may reopen the tty (so O_NONBLOCK stays off the shared one) and keep its own fd.
        uv_os_fd_t used = -1;
        if (uv_fileno(&s->h.handle, &used) == 0 && used != fd) ::close(fd);
      }
    } else if (type == UV_NAMED_PIPE) {
      rc = uv_pipe_init(loop, &s->h.pipe, 0);
      if (rc == 0) {
        rc = uv_pipe_open(&s->h.pipe, fd);
        if (rc != 0) {
          ::close(fd);
          s->h.handle.data = s;
          close(s);
          return make_error(std::string("uv_pipe_open: ") + uv_strerror(rc));
        }
      }
    } else {
      ::close(fd);
      delete s;
      return static_cast<Stream*>(nullptr);
    }
    if (rc != 0) {
      ::close(fd);
      delete s;
      return make_error(std::string("cannot open the terminal: ") + uv_strerror(rc));
    }
    s->h.handle.data = s;
    return s;
  }

  static void close(Stream*& s) {
    if (s == nullptr) return;
    s->owner = nullptr;
    uv_close(&s->h.handle, [](uv_handle_t* handle) { delete static_cast<Stream*>(handle->data); });
    s = nullptr;
  }

  void start_reading(void (*on_read)(PtyTerminal&, Stream&, ssize_t)) {
    // The callback is chosen by the role; stored in the handle's read path through this table.
    read_handler = on_read;
    uv_read_start(
        stream(),
        [](uv_handle_t* handle, size_t, uv_buf_t* buf) {
          auto* self = static_cast<Stream*>(handle->data);
          *buf = uv_buf_init(self->buffer.data(), static_cast<unsigned>(self->buffer.size()));
        },
        [](uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
          auto* self = static_cast<Stream*>(stream->data);
          if (self->owner != nullptr && nread != 0) self->read_handler(*self->owner, *self, nread);
        });
  }
  void stop_reading() { uv_read_stop(stream()); }

  // Queues `bytes`; the write callback tells the owner the queue shrank.
  bool write(std::string_view bytes) {
    size_t done = 0;
    if (queued() == 0) {
      uv_buf_t buf = uv_buf_init(const_cast<char*>(bytes.data()), static_cast<unsigned>(bytes.size()));
      int n = uv_try_write(stream(), &buf, 1);
      if (n < 0 && n != UV_EAGAIN) return false;
      if (n > 0) done = static_cast<size_t>(n);
    }
    if (done == bytes.size()) return true;
    auto* request = new WriteRequest;
    request->bytes.assign(bytes.substr(done));
    request->req.data = request;
    uv_buf_t buf = uv_buf_init(request->bytes.data(), static_cast<unsigned>(request->bytes.size()));
    int rc = uv_write(&request->req, stream(), &buf, 1, [](uv_write_t* req, int) {
      auto* self = static_cast<Stream*>(req->handle->data);
      // Requests complete in order.
      if (!self->pending.empty() && self->pending.front() == req->data) self->pending.pop_front();
      delete static_cast<WriteRequest*>(req->data);
      if (self->owner != nullptr) self->owner->update_flow();
    });
    if (rc != 0) {
      delete request;
      return false;
    }
    pending.push_back(request);
    return true;
  }

  // The bytes libuv has not written yet: the last write_queue_size bytes of the pending requests,
  // since writes go out in order and a request's callback comes only after all of it went.
  std::string unwritten() const {
    std::string all;
    for (const WriteRequest* request : pending) all += request->bytes;
    size_t left = std::min(queued(), all.size());
    return all.substr(all.size() - left);
  }
  std::deque<WriteRequest*> pending;  // uv_write requests whose callback has not run

  void (*read_handler)(PtyTerminal&, Stream&, ssize_t) = nullptr;
};

PtyTerminal::PtyTerminal(uv_loop_t* loop, Events events, PtyTerminalOptions options)
    : loop_(loop), events_(std::move(events)), options_(options) {}

PtyTerminal::~PtyTerminal() { stop(); }

std::optional<WindowSize> PtyTerminal::window_size() const {
  struct winsize size {};
  for (int fd : {options_.input_fd, options_.output_fd}) {
    if (isatty(fd) && ioctl(fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 0 && size.ws_row > 0) {
      return WindowSize{static_cast<uint16_t>(std::min<unsigned>(size.ws_col, airlock::pty::kMaxCols)),
                        static_cast<uint16_t>(std::min<unsigned>(size.ws_row, airlock::pty::kMaxRows))};
    }
  }
  return std::nullopt;
}

Status PtyTerminal::start() {
  if (started_) return Ok{};
  // A closed connection must be an error on that write, not a signal that ends the program with
  // the terminal still raw.
  ::signal(SIGPIPE, SIG_IGN);

  // Separate descriptors for libuv, which sets O_NONBLOCK and closes what it was given.
  auto input = Stream::open(loop_, ::fcntl(options_.input_fd, F_DUPFD_CLOEXEC, 3), true, this);
  if (!input) return input.error();
  input_ = *input;
  input_eof_ = input_ == nullptr;  // neither terminal nor pipe (/dev/null, a file): nothing to type
  auto output = Stream::open(loop_, ::fcntl(options_.output_fd, F_DUPFD_CLOEXEC, 3), false, this);
  if (!output) {
    Stream::close(input_);
    return output.error();
  }
  output_ = *output;

  if (options_.raw_mode && isatty(options_.input_fd)) {
    struct termios mode {};
    if (tcgetattr(options_.input_fd, &mode) != 0) {
      stop();
      return make_error(std::string("tcgetattr: ") + std::strerror(errno));
    }
    g_saved.fd = options_.input_fd;
    g_saved.mode = mode;
    g_saved.active = true;
    install_signal_handlers();
    struct termios raw = raw_mode_of(mode);
    if (tcsetattr(options_.input_fd, TCSADRAIN, &raw) != 0) {
      stop();
      return make_error(std::string("tcsetattr: ") + std::strerror(errno));
    }
    raw_ = true;
  }

  winch_ = new uv_signal_t{};
  uv_signal_init(loop_, winch_);
  winch_->data = this;
  uv_signal_start(
      winch_,
      [](uv_signal_t* handle, int) {
        if (auto* self = static_cast<PtyTerminal*>(handle->data)) self->on_window_change();
      },
      SIGWINCH);
  cont_ = new uv_signal_t{};
  uv_signal_init(loop_, cont_);
  cont_->data = this;
  uv_signal_start(
      cont_,
      [](uv_signal_t* handle, int) {
        // Back from a stop: the shell that stopped us may have put the terminal back to cooked.
        auto* self = static_cast<PtyTerminal*>(handle->data);
        if (self == nullptr || !self->raw_) return;
        struct termios raw = raw_mode_of(g_saved.mode);
        tcsetattr(self->options_.input_fd, TCSADRAIN, &raw);
        self->on_window_change();
      },
      SIGCONT);
  started_ = true;
  update_flow();
  return Ok{};
}

Status PtyTerminal::attach(int fd) {
  if (!started_) {
    ::close(fd);
    return make_error("the terminal is not started");
  }
  close_connection();
  auto connection = Stream::open(loop_, fd, true, this);
  if (!connection) return connection.error();
  if (*connection == nullptr) return make_error("the connection is not a stream socket");
  connection_ = *connection;
  decoder_ = airlock::pty::FrameDecoder(airlock::pty::Sender::agent);
  if (auto size = window_size()) {
    Bytes frame;
    airlock::pty::encode_resize(size->cols, size->rows, frame);
    send_frames(frame);
  }
  update_flow();
  return Ok{};
}

void PtyTerminal::detach() {
  close_connection();
  update_flow();
}

void PtyTerminal::close_connection() {
  Stream::close(connection_);
  connection_reading_ = false;
}

void PtyTerminal::stop() {
  close_connection();
  if (started_ && output_ != nullptr && raw_) write_output(kLocalTerminalReset);
  Stream::close(input_);
  // Closing a stream cancels the writes still queued: the shell's last words (and the reset
  // above) would be lost when the program ends right after. They are written here, blocking.
  std::string unwritten = output_ != nullptr ? output_->unwritten() : std::string();
  Stream::close(output_);
  write_blocking(options_.output_fd, unwritten);
  input_reading_ = false;
  for (uv_signal_t** signal_handle : {&winch_, &cont_}) {
    if (*signal_handle == nullptr) continue;
    (*signal_handle)->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(*signal_handle),
             [](uv_handle_t* handle) { delete reinterpret_cast<uv_signal_t*>(handle); });
    *signal_handle = nullptr;
  }
  if (raw_) {
    // Let the reset above reach the terminal before the mode changes back.
    if (isatty(options_.output_fd)) tcdrain(options_.output_fd);
    restore_local_terminal();
    remove_signal_handlers();
    raw_ = false;
  }
  started_ = false;
}

void PtyTerminal::update_flow() {
  bool want_input = started_ && input_ != nullptr && !input_eof_ &&
                    (connection_ != nullptr ? connection_->queued() < kMaxQueued
                                            : static_cast<bool>(events_.detached_input));
  if (want_input != input_reading_) {
    if (want_input) {
      input_->start_reading([](PtyTerminal& self, Stream& s, ssize_t n) { self.on_input(n, s.buffer.data()); });
    } else {
      input_->stop_reading();
    }
    input_reading_ = want_input;
  }
  bool want_connection = connection_ != nullptr && (output_ == nullptr || output_->queued() < kMaxQueued);
  if (want_connection != connection_reading_) {
    if (want_connection) {
      connection_->start_reading(
          [](PtyTerminal& self, Stream& s, ssize_t n) { self.on_connection_data(n, s.buffer.data()); });
    } else {
      connection_->stop_reading();
    }
    connection_reading_ = want_connection;
  }
}

void PtyTerminal::on_input(ssize_t nread, const char* data) {
  if (nread < 0) {
    // The local side closed (a pipe ran out): the session goes on, nothing more to type.
    input_eof_ = true;
    update_flow();
    return;
  }
  if (connection_ == nullptr) {
    if (events_.detached_input) events_.detached_input(std::string_view(data, static_cast<size_t>(nread)));
    update_flow();
    return;
  }
  Bytes frames;
  airlock::pty::encode_input(ByteView(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(nread)), frames);
  send_frames(frames);
  update_flow();
}

void PtyTerminal::send_frames(const Bytes& frames) {
  if (connection_ == nullptr) return;
  // A failed write shows up on the read side too, which reports the loss once.
  connection_->write(as_chars(frames));
}

void PtyTerminal::on_window_change() {
  if (connection_ == nullptr) return;
  if (auto size = window_size()) {
    Bytes frame;
    airlock::pty::encode_resize(size->cols, size->rows, frame);
    send_frames(frame);
  }
}

void PtyTerminal::write_output(std::string_view bytes) {
  if (bytes.empty()) return;
  if (output_ != nullptr) {
    if (!output_->write(bytes)) LOG_DEBUG(kLog, "local output closed");
    return;
  }
  // Not a terminal or a pipe (a regular file): plain blocking writes.
  while (!bytes.empty()) {
    ssize_t n = ::write(options_.output_fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

void PtyTerminal::on_connection_data(ssize_t nread, const char* data) {
  if (nread < 0) {
    lose_connection(nread == UV_EOF ? "the connection closed" : uv_strerror(static_cast<int>(nread)), false);
    return;
  }
  decoder_.push(ByteView(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(nread)));
  for (;;) {
    auto next = decoder_.next();
    if (!next) {
      lose_connection("malformed frame from the agent: " + next.error().message, false);
      return;
    }
    if (!next->has_value()) break;
    airlock::pty::Frame& frame = **next;
    if (auto* output = std::get_if<airlock::pty::Output>(&frame)) {
      write_output(as_chars(output->data));
    } else if (auto* info = std::get_if<airlock::pty::SessionInfo>(&frame)) {
      if (events_.session) events_.session(*info);
    } else if (auto* status = std::get_if<airlock::pty::ExitStatus>(&frame)) {
      close_connection();
      update_flow();
      if (events_.exited) events_.exited(*status);
      return;
    } else if (auto* closing = std::get_if<airlock::pty::Closing>(&frame)) {
      lose_connection(closing->reason, true);
      return;
    }
    if (connection_ == nullptr) return;  // a callback detached
  }
  update_flow();
}

void PtyTerminal::lose_connection(const std::string& reason, bool refused) {
  close_connection();
  update_flow();
  if (events_.connection_lost) events_.connection_lost(reason, refused);
}

}  // namespace airlock::cli
