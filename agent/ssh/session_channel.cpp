#include "agent/ssh/session_channel.hpp"

#include <sys/ioctl.h>
#include <sys/stat.h>

#include <csignal>
#include <cstdlib>
#include <map>
#include <optional>

#include "agent/ssh/channel_pump.hpp"
#include "agent/ssh/child_process.hpp"
#include "common/net/uv_handle.hpp"
#include "common/ssh/command_policy.hpp"
#include "common/util/log.hpp"

namespace airlock::agent::ssh {
namespace {

namespace policy = ::airlock::ssh;

constexpr const char* kDefaultTerm = "xterm-256color";
constexpr size_t kMaxClientEnv = 256;
// After a pty child exits, its output is read until the pty reports EIO; a background job that
// keeps the terminal open would hold the session forever, so stop waiting after this.
constexpr uint64_t kPtyDrainMs = 300;

// Names the client may not override: they say who and where the session is.
bool is_reserved_env(const std::string& name) {
  return name == "USER" || name == "LOGNAME" || name == "HOME" || name == "SHELL" || name == "SSH_CLIENT" ||
         name == "SSH_CONNECTION" || name == "SSH_TTY" || name == "TERM";
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string base_name(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

enum class Kind { none, shell, exec, sftp };

class SessionChannel final : public Channel {
 public:
  SessionChannel(Connection& connection, ssh_channel channel) : Channel(connection), channel_(channel) {
    callbacks_.userdata = this;
    callbacks_.channel_data_function = &SessionChannel::on_data;
    callbacks_.channel_eof_function = &SessionChannel::on_eof;
    callbacks_.channel_close_function = &SessionChannel::on_close;
    callbacks_.channel_signal_function = &SessionChannel::on_signal;
    callbacks_.channel_pty_request_function = &SessionChannel::on_pty_request;
    callbacks_.channel_shell_request_function = &SessionChannel::on_shell_request;
    callbacks_.channel_pty_window_change_function = &SessionChannel::on_window_change;
    callbacks_.channel_exec_request_function = &SessionChannel::on_exec_request;
    callbacks_.channel_env_request_function = &SessionChannel::on_env_request;
    callbacks_.channel_subsystem_request_function = &SessionChannel::on_subsystem_request;
    ssh_callbacks_init(&callbacks_);
    ssh_set_channel_callbacks(channel_.get(), &callbacks_);
  }

  ~SessionChannel() override {
    // libssh may keep a freed channel until the client's CLOSE arrives: it must not call back
    // into this object after it is gone.
    ssh_remove_channel_callbacks(channel_.get(), &callbacks_);
    if (!closed_ && !peer_closed_ && ssh_channel_is_open(channel_.get())) ssh_channel_close(channel_.get());
    grace_.reset();
    if (pump_) pump_->stop();  // closing a pty master hangs up the terminal: SIGHUP to the job
    if (process_ && !process_->exited()) {
      process_->signal(SIGHUP);
      process_->set_waker({});
      connection_.context().adopt(std::move(process_));
    }
    report_end();
  }

  void update() override {
    if (finished_) return;
    if (peer_closed_) {
      finished_ = true;
      return;
    }
    if (refused_) {
      refuse_now();
      return;
    }
    if (!pump_) return;
    pump_->update();
    if (process_ && process_->exited()) {
      if (pty_ && !pump_->output_eof()) {
        if (!grace_ && grace_.init([&](uv_timer_t* t) { return uv_timer_init(connection_.context().loop(), t); }) == 0) {
          grace_->data = this;
          uv_timer_start(grace_.get(), [](uv_timer_t* t) {
            auto* self = static_cast<SessionChannel*>(t->data);
            if (self == nullptr) return;
            Waker waker = self->connection_.waker();
            self->pump_->force_output_eof();
            waker();
          }, kPtyDrainMs, 0);
        }
      }
      if (pump_->output_eof() || pump_->failed()) finish();
    } else if (pump_->failed()) {
      close_channel();
    }
  }

 private:
  int start(Kind kind, const std::string& command) {
    if (kind_ != Kind::none) return -1;  // one program per session channel
    kind_ = kind;
    command_ = command;
    const SshConfig& config = connection_.context().config();

    policy::TransferTool tool = kind == Kind::sftp ? policy::TransferTool::sftp
                             : kind == Kind::exec ? policy::classify_command(command)
                                                  : policy::TransferTool::none;
    if (config.policy.block_file_transfer && tool != policy::TransferTool::none) {
      LOG_INFO("ssh", "%s: refused %s (block_file_transfer): %s", connection_.id().c_str(),
               policy::transfer_tool_name(tool), kind == Kind::sftp ? "subsystem sftp" : command.c_str());
      connection_.audit("file_transfer_blocked", {{"tool", policy::transfer_tool_name(tool)},
                                                  {"command", kind == Kind::sftp ? "subsystem sftp" : command}});
      // Accepted so that the client shows the reason; the refusal itself is written in
      // update(), after libssh has sent the request's success reply.
      refused_ = true;
      return 0;
    }

    SpawnRequest request = build_request(kind, command);
    if (request.program.empty()) {
      LOG_WARN("ssh", "%s: no sftp-server found on this workspace", connection_.id().c_str());
      return -1;
    }
    ChildStdio stdio;
    auto child = ChildProcess::spawn(connection_.context().loop(), request, stdio);
    if (!child) {
      LOG_WARN("ssh", "%s: %s", connection_.id().c_str(), child.error().message.c_str());
      return -1;
    }
    process_ = std::move(*child);
    process_->set_waker(connection_.waker());
    pump_ = std::make_unique<ChannelPump>(connection_.context().loop(), connection_.session(), channel_.get(),
                                          connection_.waker());
    bool attached = pty_ ? pump_->attach_duplex(std::move(stdio.pty_master), ChannelPump::OnRemoteEof::keep)
                         : pump_->attach_pipes(std::move(stdio.stdin_w), std::move(stdio.stdout_r),
                                               std::move(stdio.stderr_r));
    if (!attached) {
      process_->signal(SIGKILL);
      return -1;
    }
    if (remote_eof_) pump_->on_eof();

    switch (kind) {
      case Kind::shell:
        connection_.audit("shell", {{"pty", pty_.has_value()}, {"pid", process_->pid()}});
        break;
      case Kind::exec:
        connection_.audit("exec", {{"command", command}, {"pty", pty_.has_value()}, {"pid", process_->pid()}});
        break;
      case Kind::sftp:
        connection_.audit("sftp_start", {{"pid", process_->pid()}});
        break;
      case Kind::none:
        break;
    }
    LOG_INFO("ssh", "%s: %s%s (pid %d)", connection_.id().c_str(),
             kind == Kind::shell ? "shell" : kind == Kind::sftp ? "sftp" : "exec: ",
             kind == Kind::exec ? command.c_str() : "", static_cast<int>(process_->pid()));
    return 0;
  }

  SpawnRequest build_request(Kind kind, const std::string& command) const {
    ServerContext& context = connection_.context();
    const SshConfig& config = context.config();
    const LoginUser& user = context.login_user();

    std::map<std::string, std::string> env;
    const char* path = std::getenv("PATH");
    env["PATH"] = path != nullptr ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (const char* inherited : {"LANG", "TZ"})
      if (const char* v = std::getenv(inherited)) env[inherited] = v;
    env["USER"] = user.name;
    env["LOGNAME"] = user.name;
    env["HOME"] = user.home;
    env["SHELL"] = user.shell;
    const std::string& ip = connection_.identity().source_ip.empty() ? "127.0.0.1" : connection_.identity().source_ip;
    env["SSH_CLIENT"] = ip + " 0 22";
    env["SSH_CONNECTION"] = ip + " 0 127.0.0.1 22";
    for (const auto& [name, value] : config.env) env[name] = value;
    for (const auto& [name, value] : client_env_)
      if (!is_reserved_env(name)) env[name] = value;
    if (pty_) env["TERM"] = term_.empty() ? kDefaultTerm : term_;

    SpawnRequest request;
    for (const auto& [name, value] : env) request.env.push_back(name + "=" + value);
    request.directory = is_directory(config.directory) ? config.directory
                        : is_directory(user.home)      ? user.home
                                                       : "/";
    request.pty = pty_;
    request.claim = config.claim_child;
    if (kind == Kind::sftp) {
      request.program = context.sftp_server();
      request.argv = {base_name(request.program)};
    } else if (kind == Kind::shell) {
      request.program = user.shell;
      request.argv = {"-" + base_name(user.shell)};  // a leading '-' makes it a login shell
    } else {
      request.program = user.shell;
      request.argv = {base_name(user.shell), "-c", command};
    }
    return request;
  }

  void refuse_now() {
    refused_ = false;
    ssh_channel_write_stderr(channel_.get(), kFileTransferBlockedMessage,
                             static_cast<uint32_t>(std::char_traits<char>::length(kFileTransferBlockedMessage)));
    ssh_channel_request_send_exit_status(channel_.get(), 1);
    close_channel();
  }

  void finish() {
    const ExitInfo& exit = process_->exit_info();
    ssh_channel_send_eof(channel_.get());
    if (exit.known && exit.signal != 0) {
      std::string name = policy::signal_name(exit.signal).value_or("KILL");
      ssh_channel_request_send_exit_signal(channel_.get(), name.c_str(), exit.core_dumped ? 1 : 0, "", "");
    } else if (exit.known) {
      ssh_channel_request_send_exit_status(channel_.get(), exit.status);
    }
    LOG_DEBUG("ssh", "%s: pid %d ended (status %d, signal %d)", connection_.id().c_str(),
              static_cast<int>(process_->pid()), exit.status, exit.signal);
    exit_ = exit;
    close_channel();
  }

  void close_channel() {
    if (!closed_ && !peer_closed_) ssh_channel_close(channel_.get());
    closed_ = true;
    finished_ = true;
  }

  void report_end() {
    if (kind_ != Kind::sftp || pump_ == nullptr) return;  // never started, or refused
    connection_.audit("sftp_end", {{"exit_status", exit_ && exit_->signal == 0 ? exit_->status : -1}});
  }

  static SessionChannel* self(void* userdata) { return static_cast<SessionChannel*>(userdata); }

  static int on_data(ssh_session, ssh_channel, void* data, uint32_t len, int is_stderr, void* userdata) {
    SessionChannel* s = self(userdata);
    return s->pump_ ? s->pump_->on_data(data, len, is_stderr) : static_cast<int>(len);
  }
  static void on_eof(ssh_session, ssh_channel, void* userdata) {
    SessionChannel* s = self(userdata);
    s->remote_eof_ = true;
    if (s->pump_) s->pump_->on_eof();
  }
  static void on_close(ssh_session, ssh_channel, void* userdata) { self(userdata)->peer_closed_ = true; }
  static void on_signal(ssh_session, ssh_channel, const char* signal, void* userdata) {
    SessionChannel* s = self(userdata);
    std::optional<int> number = policy::signal_from_name(signal != nullptr ? signal : "");
    if (!number || !s->process_) return;
    LOG_INFO("ssh", "%s: signal %s to pid %d", s->connection_.id().c_str(), signal, static_cast<int>(s->process_->pid()));
    s->process_->signal(*number);
  }
  static int on_pty_request(ssh_session, ssh_channel, const char* term, int cols, int rows, int px_width,
                            int px_height, void* userdata) {
    SessionChannel* s = self(userdata);
    if (s->kind_ != Kind::none) return -1;
    s->term_ = term != nullptr && *term != '\0' && std::string_view(term).size() < 128 ? term : kDefaultTerm;
    s->pty_ = make_winsize(cols, rows, px_width, px_height);
    return 0;
  }
  static int on_shell_request(ssh_session, ssh_channel, void* userdata) { return self(userdata)->start(Kind::shell, ""); }
  static int on_exec_request(ssh_session, ssh_channel, const char* command, void* userdata) {
    return self(userdata)->start(Kind::exec, command != nullptr ? command : "");
  }
  static int on_subsystem_request(ssh_session, ssh_channel, const char* subsystem, void* userdata) {
    if (subsystem == nullptr || std::string_view(subsystem) != "sftp") return -1;
    return self(userdata)->start(Kind::sftp, "");
  }
  static int on_window_change(ssh_session, ssh_channel, int cols, int rows, int px_width, int px_height,
                              void* userdata) {
    SessionChannel* s = self(userdata);
    if (!s->pty_) return -1;
    s->pty_ = make_winsize(cols, rows, px_width, px_height);
    int fd = s->pump_ ? s->pump_->duplex_fd() : -1;
    // The kernel sends SIGWINCH to the terminal's foreground job.
    if (fd >= 0) ::ioctl(fd, TIOCSWINSZ, &*s->pty_);
    return 0;
  }
  static int on_env_request(ssh_session, ssh_channel, const char* name, const char* value, void* userdata) {
    SessionChannel* s = self(userdata);
    if (name == nullptr || value == nullptr || s->kind_ != Kind::none || s->client_env_.size() >= kMaxClientEnv ||
        !policy::is_valid_env_name(name) || std::string_view(value).size() > policy::kMaxEnvValueLength)
      return -1;
    s->client_env_[name] = value;
    return 0;
  }

  static struct winsize make_winsize(int cols, int rows, int px_width, int px_height) {
    auto clamp = [](int v) { return static_cast<unsigned short>(v < 0 ? 0 : v > 0xffff ? 0xffff : v); };
    struct winsize size {};
    size.ws_col = clamp(cols);
    size.ws_row = clamp(rows);
    size.ws_xpixel = clamp(px_width);
    size.ws_ypixel = clamp(px_height);
    return size;
  }

  UniqueChannel channel_;
  ssh_channel_callbacks_struct callbacks_{};
  Kind kind_ = Kind::none;
  std::string command_;
  std::optional<struct winsize> pty_;
  std::string term_;
  std::map<std::string, std::string> client_env_;
  std::unique_ptr<ChildProcess> process_;
  std::unique_ptr<ChannelPump> pump_;
  net::UvHandle<uv_timer_t> grace_;
  std::optional<ExitInfo> exit_;
  bool refused_ = false;
  bool remote_eof_ = false;
  bool peer_closed_ = false;
  bool closed_ = false;
};

}  // namespace

std::unique_ptr<Channel> make_session_channel(Connection& connection, ssh_channel* channel) {
  ssh_channel raw = ssh_channel_new(connection.session());
  if (raw == nullptr) return nullptr;
  *channel = raw;
  return std::make_unique<SessionChannel>(connection, raw);
}

}  // namespace airlock::agent::ssh
