// One run of a manifest script: `/bin/sh -c SCRIPT` in the manifest's directory with its
// environment, in a process group of its own, stdout and stderr merged into one pipe (so lines
// keep their order), a timeout after which the whole group is killed.
//
// The script is done when its shell has exited AND its output has been read to the end, or a
// short drain time after the exit: a script that starts a daemon in the background
// (`code-server &`) leaves the pipe open in the daemon for as long as it lives. What the daemon
// prints later still reaches on_output when keep_reading is set (startup and shutdown scripts,
// whose logs should show it); otherwise the pipe is closed at the end (metadata scripts).
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/net/uv_handle.hpp"
#include "common/util/result.hpp"

namespace airlock::agent {

struct ScriptSpec {
  std::string label;                 // "startup", "metadata load": for logs
  std::string command;               // given to /bin/sh -c
  std::string directory;             // working directory
  std::vector<std::string> env;      // complete environment, NAME=value
  std::chrono::milliseconds timeout{0};  // 0: none
  bool keep_reading = false;         // go on reading output after the script ended
};

struct ScriptOutcome {
  std::optional<int> exit_code;
  std::optional<int> signal;
  bool timed_out = false;
};

class ScriptProcess {
 public:
  using OutputCallback = std::function<void(std::string_view bytes)>;
  using DoneCallback = std::function<void(const ScriptOutcome&)>;

  ScriptProcess(uv_loop_t* loop, ScriptSpec spec, OutputCallback on_output, DoneCallback on_done);
  // Kills the process group if the script still runs: a run never outlives its owner.
  ~ScriptProcess();
  ScriptProcess(const ScriptProcess&) = delete;
  ScriptProcess& operator=(const ScriptProcess&) = delete;

  // Starts the script; an error (no /bin/sh, no such directory) means on_done will not be called.
  Status start();
  // Sends a signal to the script's whole process group (what it started in the foreground or
  // background, unless that detached itself into a group of its own).
  void signal_group(int sig);

  int pid() const { return pid_; }
  bool running() const { return running_; }
  bool done() const { return done_; }

 private:
  void on_exit(int64_t exit_status, int term_signal);
  void on_read(ssize_t n, const uv_buf_t* buf);
  void maybe_finish();
  void finish();

  uv_loop_t* loop_;
  ScriptSpec spec_;
  OutputCallback on_output_;
  DoneCallback on_done_;
  net::UvHandle<uv_process_t> process_;
  net::UvHandle<uv_pipe_t> output_;
  net::UvHandle<uv_timer_t> timeout_;
  net::UvHandle<uv_timer_t> drain_;
  int pid_ = 0;
  bool running_ = false;
  bool eof_ = false;
  bool done_ = false;
  ScriptOutcome outcome_;
  char buffer_[16 * 1024];
};

}  // namespace airlock::agent
