// A child process for integration tests: start a program with arguments and environment, read its
// stdout and stderr line by line (collected in the background), wait for a line matching a
// pattern, signal it, wait for its exit. The destructor kills the whole process group and reaps
// it, so a failing test never leaves a relay or an agent running.
//
//   auto relay = test::Process::start(AIRLOCK_BINARY_DIR "/relay/airlock-relay", {"--dev", "--listen", "127.0.0.1:0"});
//   auto line = relay->wait_for_line(R"(listening on .*:(\d+))", 10s);
//   REQUIRE(line);
//
// Set AIRLOCK_TEST_ECHO=1 to copy the child's output to the test's stderr as it arrives.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace airlock::test {

class Process {
 public:
  enum class Stream { out, err, any };
  struct Line {
    Stream stream;
    std::string text;
  };
  struct Options {
    std::vector<std::pair<std::string, std::string>> env;  // added to (or replacing in) the parent's environment
    std::string cwd;                                        // empty: the test's working directory
    std::string name;                                       // label for echoed output (default: program's basename)
  };

  // Starts program (a path) with args. Returns nullptr (and prints why) if it cannot be started.
  static std::unique_ptr<Process> start(const std::string& program, const std::vector<std::string>& args,
                                        Options options = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }

  // The first line at index >= from (in arrival order) on the given stream that matches the
  // ECMAScript regex (std::regex_search). Waits up to timeout for it.
  std::optional<std::string> wait_for_line(const std::string& regex, std::chrono::milliseconds timeout,
                                           Stream stream = Stream::any, size_t from = 0);
  // Capture group `group` of the first match, as above.
  std::optional<std::string> wait_for_match(const std::string& regex, std::chrono::milliseconds timeout,
                                            size_t group = 1, Stream stream = Stream::any, size_t from = 0);
  size_t line_count() const;
  std::vector<Line> lines() const;
  std::string output() const;  // every line so far, prefixed "out| " or "err| ", for failure messages

  // Signals the child process (not its group).
  void signal(int signum);
  // True while the child has not exited.
  bool running();
  // Waits for the child to exit: its exit code, or 128 + signal number; nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  // Waits until the child's stdout and stderr are closed and everything it wrote has been read
  // (after wait(), so that lines() is complete). False on timeout (a grandchild may hold them).
  bool wait_output_closed(std::chrono::milliseconds timeout);
  // SIGKILL the process group and reap the child.
  void kill();

 private:
  Process() = default;
  void read_loop(int out_fd, int err_fd);
  bool reap(bool block);

  pid_t pid_ = -1;
  std::optional<int> exit_status_;
  std::string name_;
  bool echo_ = false;
  std::thread reader_;
  int wake_fd_[2] = {-1, -1};  // tells the reader to stop
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Line> lines_;
  bool eof_ = false;
};

}  // namespace airlock::test
