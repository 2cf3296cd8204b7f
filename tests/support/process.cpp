#include "tests/support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <regex>

extern char** environ;

namespace airlock::test {

namespace {

std::string basename_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

std::unique_ptr<Process> Process::start(const std::string& program, const std::vector<std::string>& args,
                                        Options options) {
  int out[2], err[2], exec_err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return nullptr;
  if (pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return nullptr;
  }
  if (pipe2(exec_err, O_CLOEXEC) != 0) {
    for (int fd : {out[0], out[1], err[0], err[1]}) ::close(fd);
    return nullptr;
  }

  // Everything the child needs, prepared before fork (no allocation after it).
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    bool replaced = false;
    for (auto& [k, v] : options.env) replaced = replaced || kv.rfind(k + "=", 0) == 0;
    if (!replaced) env_strings.push_back(std::move(kv));
  }
  for (auto& [k, v] : options.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings;
  argv_strings.push_back(program);
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {out[0], out[1], err[0], err[1], exec_err[0], exec_err[1]}) ::close(fd);
    return nullptr;
  }
  if (pid == 0) {
    setpgid(0, 0);  // its own group, so kill() reaches anything it starts
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    if (!options.cwd.empty() && chdir(options.cwd.c_str()) != 0) {
      int e = errno;
      (void)!::write(exec_err[1], &e, sizeof e);
      _exit(127);
    }
    execve(program.c_str(), argv.data(), envp.data());
    int e = errno;
    (void)!::write(exec_err[1], &e, sizeof e);
    _exit(127);
  }
  setpgid(pid, pid);
  ::close(out[1]);
  ::close(err[1]);
  ::close(exec_err[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_err[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(exec_err[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    std::fprintf(stderr, "test: cannot start %s: %s\n", program.c_str(), std::strerror(child_errno));
    ::close(out[0]);
    ::close(err[0]);
    waitpid(pid, nullptr, 0);
    return nullptr;
  }

  std::unique_ptr<Process> p(new Process);
  p->pid_ = pid;
  p->name_ = options.name.empty() ? basename_of(program) : options.name;
  const char* echo = std::getenv("AIRLOCK_TEST_ECHO");
  p->echo_ = echo && *echo && std::strcmp(echo, "0") != 0;
  if (pipe2(p->wake_fd_, O_CLOEXEC) != 0) p->wake_fd_[0] = p->wake_fd_[1] = -1;
  int out_fd = out[0], err_fd = err[0];
  p->reader_ = std::thread([raw = p.get(), out_fd, err_fd] { raw->read_loop(out_fd, err_fd); });
  return p;
}

Process::~Process() {
  kill();
  if (wake_fd_[1] >= 0) (void)!::write(wake_fd_[1], "x", 1);
  if (reader_.joinable()) reader_.join();
  close_fd(wake_fd_[0]);
  close_fd(wake_fd_[1]);
}

void Process::read_loop(int out_fd, int err_fd) {
  std::string partial[2];
  int fds[2] = {out_fd, err_fd};
  char buf[16384];
  auto add = [&](int which, std::string line) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (echo_) std::fprintf(stderr, "[%s %s] %s\n", name_.c_str(), which == 0 ? "out" : "err", line.c_str());
    std::lock_guard lock(mutex_);
    lines_.push_back({which == 0 ? Stream::out : Stream::err, std::move(line)});
    changed_.notify_all();
  };
  while (fds[0] >= 0 || fds[1] >= 0) {
    pollfd pfd[3] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}, {wake_fd_[0], POLLIN, 0}};
    int r = ::poll(pfd, 3, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pfd[2].revents) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i] < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i], buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (!partial[i].empty()) add(i, std::move(partial[i]));
        partial[i].clear();
        close_fd(fds[i]);
        continue;
      }
      partial[i].append(buf, static_cast<size_t>(n));
      size_t nl;
      while ((nl = partial[i].find('\n')) != std::string::npos) {
        add(i, partial[i].substr(0, nl));
        partial[i].erase(0, nl + 1);
      }
    }
  }
  close_fd(fds[0]);
  close_fd(fds[1]);
  std::lock_guard lock(mutex_);
  eof_ = true;
  changed_.notify_all();
}

std::optional<std::string> Process::wait_for_line(const std::string& regex, std::chrono::milliseconds timeout,
                                                  Stream stream, size_t from) {
  std::regex re(regex);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mutex_);
  size_t i = from;
  while (true) {
    for (; i < lines_.size(); ++i) {
      const Line& l = lines_[i];
      if (stream != Stream::any && l.stream != stream) continue;
      if (std::regex_search(l.text, re)) return l.text;
    }
    if (eof_) return std::nullopt;
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) {
      for (; i < lines_.size(); ++i) {
        if ((stream == Stream::any || lines_[i].stream == stream) && std::regex_search(lines_[i].text, re))
          return lines_[i].text;
      }
      return std::nullopt;
    }
  }
}

std::optional<std::string> Process::wait_for_match(const std::string& regex, std::chrono::milliseconds timeout,
                                                   size_t group, Stream stream, size_t from) {
  auto line = wait_for_line(regex, timeout, stream, from);
  if (!line) return std::nullopt;
  std::smatch m;
  std::regex re(regex);
  if (!std::regex_search(*line, m, re) || group >= m.size()) return std::nullopt;
  return m[group].str();
}

size_t Process::line_count() const {
  std::lock_guard lock(mutex_);
  return lines_.size();
}

std::vector<Process::Line> Process::lines() const {
  std::lock_guard lock(mutex_);
  return lines_;
}

std::string Process::output() const {
  std::lock_guard lock(mutex_);
  std::string all;
  for (const auto& l : lines_) {
    all += l.stream == Stream::out ? "out| " : "err| ";
    all += l.text;
    all += '\n';
  }
  return all;
}

void Process::signal(int signum) {
  if (pid_ > 0 && !exit_status_) ::kill(pid_, signum);
}

bool Process::reap(bool block) {
  if (exit_status_) return true;
  if (pid_ <= 0) return true;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return true;
  }
  if (r < 0) {
    exit_status_ = -1;  // not our child any more; nothing to wait for
    return true;
  }
  return false;
}

bool Process::running() { return !reap(false); }

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!reap(false)) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return exit_status_;
}

bool Process::wait_output_closed(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [this] { return eof_; });
}

void Process::kill() {
  if (pid_ <= 0 || exit_status_) return;
  // Not reaped yet, so the pid (and the group id) cannot have been reused: the group is ours.
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  reap(true);
}

}  // namespace airlock::test
