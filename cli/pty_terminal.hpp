// The client end of a terminal session (`airlock pty WS`, and the browser gateway's model): the
// local terminal in raw mode, keystrokes out as INPUT frames, window changes as RESIZE frames,
// OUTPUT frames to the screen, the shell's exit status back to the caller.
//
// Reconnecting is the caller's job: when the connection is lost, dial again, open the stream with
// the same session id and attach() the new fd; the agent repaints the screen. While detached,
// keystrokes wait in the local terminal (stdin is not read), unless the caller takes them
// (Events::detached_input: to let Ctrl-C give up a reconnect).
//
// The local terminal is restored however the program ends: stop(), the destructor, exit(), or a
// fatal or terminating signal (the handlers restore it, then let the signal take its course).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <uv.h>

#include "common/pty/protocol.hpp"
#include "common/util/result.hpp"

namespace airlock::cli {

struct WindowSize {
  uint16_t cols = 0;
  uint16_t rows = 0;
};

struct PtyTerminalOptions {
  int input_fd = STDIN_FILENO;    // a terminal or a pipe
  int output_fd = STDOUT_FILENO;  // a terminal, a pipe or a file
  bool raw_mode = true;           // when input_fd is a terminal
};

class PtyTerminal {
 public:
  // Callbacks run on the loop. They may call attach(), detach() and stop(), but must not destroy
  // the PtyTerminal from inside.
  struct Events {
    std::function<void(const airlock::pty::SessionInfo&)> session;  // first frame: new or reattached
    std::function<void(airlock::pty::ExitStatus)> exited;          // the shell ended; connection closed
    // EOF, an I/O error or a malformed frame (refused = false: worth reconnecting), or an ERROR
    // frame from the agent (refused = true: it closed this viewer on purpose, with `reason`).
    std::function<void(const std::string& reason, bool refused)> connection_lost;
    // When set, stdin is read while detached too, and what is typed goes here instead of waiting.
    std::function<void(std::string_view typed)> detached_input;
  };

  PtyTerminal(uv_loop_t* loop, Events events, PtyTerminalOptions options = {});
  ~PtyTerminal();
  PtyTerminal(const PtyTerminal&) = delete;
  PtyTerminal& operator=(const PtyTerminal&) = delete;

  // Takes the local terminal: raw mode, SIGWINCH and SIGCONT watchers, stdin and stdout handles.
  Status start();
  // Speaks the framing protocol on `fd` (a connected stream, taken over even on failure); sends
  // the current window size at once.
  Status attach(int fd);
  // Drops the connection; the local terminal stays raw for the next attach().
  void detach();
  // Gives the local terminal back, as it was. Idempotent.
  void stop();

  bool attached() const { return connection_ != nullptr; }
  // The local window size, for the stream's open arguments ({"cols","rows"}); nullopt when the
  // input is not a terminal.
  std::optional<WindowSize> window_size() const;

  // The process exit code for a shell's exit status: its code, 128+signal for a signal.
  static int exit_code(airlock::pty::ExitStatus status) { return static_cast<int>(status.code); }

 private:
  struct Stream;  // a uv stream handle with its C++ side

  void on_input(ssize_t nread, const char* data);
  void on_connection_data(ssize_t nread, const char* data);
  void on_window_change();
  void write_output(std::string_view bytes);
  void send_frames(const Bytes& frames);
  void update_flow();
  void lose_connection(const std::string& reason, bool refused);
  void close_connection();

  uv_loop_t* loop_;
  Events events_;
  PtyTerminalOptions options_;
  bool started_ = false;
  bool raw_ = false;
  bool input_eof_ = false;
  bool input_reading_ = false;
  bool connection_reading_ = false;
  Stream* input_ = nullptr;
  Stream* output_ = nullptr;       // nullptr: blocking writes to output_fd (a regular file)
  Stream* connection_ = nullptr;
  uv_signal_t* winch_ = nullptr;
  uv_signal_t* cont_ = nullptr;
  airlock::pty::FrameDecoder decoder_{airlock::pty::Sender::agent};
};

}  // namespace airlock::cli
