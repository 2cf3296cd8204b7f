#include "agent/ssh/ssh_server.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <vector>

#include "agent/ssh/child_process.hpp"
#include "agent/ssh/connection.hpp"
#include "agent/ssh/host_key.hpp"
#include "common/net/uv_handle.hpp"
#include "common/util/log.hpp"

namespace airlock::agent::ssh {
namespace {

// Where distributions put OpenSSH's sftp server (Debian/Ubuntu, Fedora/RHEL, Alpine/Arch).
constexpr const char* kSftpServerPaths[] = {"/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                                            "/usr/lib/ssh/sftp-server", "/usr/libexec/sftp-server"};

LoginUser current_user() {
  LoginUser user;
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* found = nullptr;
  if (::getpwuid_r(::geteuid(), &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
    user.name = found->pw_name;
    user.home = found->pw_dir;
    user.shell = found->pw_shell != nullptr ? found->pw_shell : "";
  }
  if (user.name.empty()) user.name = std::to_string(::geteuid());
  if (user.home.empty()) user.home = "/";
  // An account with no shell, or a nologin one, still needs a working shell for the workspace.
  if (user.shell.empty() || user.shell[0] != '/' || ::access(user.shell.c_str(), X_OK) != 0 ||
      user.shell.ends_with("nologin") || user.shell.ends_with("/false"))
    user.shell = "/bin/sh";
  return user;
}

std::string find_sftp_server(const std::string& configured) {
  if (!configured.empty()) return ::access(configured.c_str(), X_OK) == 0 ? configured : "";
  for (const char* path : kSftpServerPaths)
    if (::access(path, X_OK) == 0) return path;
  return "";
}

}  // namespace

class SshServer::Impl final : public ServerContext {
 public:
  Impl(uv_loop_t* loop, SshConfig config) : loop_(loop), config_(std::move(config)) {}

  ~Impl() override {
    connections_.clear();  // may hand children to adopt()
    orphans_.clear();
    sweeper_.reset();
  }

  Status init() {
    auto key = load_or_create_host_key(config_.host_key_path);
    if (!key) return key.error();
    fingerprint_ = key_fingerprint(key->get());
    bind_.reset(ssh_bind_new());
    if (!bind_) return make_error("ssh_bind_new failed");
    // The bind takes ownership of the key it is given.
    if (ssh_bind_options_set(bind_.get(), SSH_BIND_OPTIONS_IMPORT_KEY, key->get()) != SSH_OK)
      return make_error(std::string("ssh: cannot use the host key: ") + ssh_get_error(bind_.get()));
    (void)key->release();
    user_ = current_user();
    sftp_server_ = find_sftp_server(config_.sftp_server_path);
    if (sftp_server_.empty()) LOG_WARN("ssh", "no sftp-server found: the sftp subsystem (and scp) will be refused");
    if (sweeper_.init([&](uv_idle_t* i) { return uv_idle_init(loop_, i); }) != 0)
      return make_error("ssh: uv_idle_init failed");
    sweeper_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(sweeper_.get()));
    LOG_INFO("ssh", "ssh service ready: host key %s, sessions run as %s (%s)", fingerprint_.c_str(), user_.name.c_str(),
             user_.shell.c_str());
    return Ok{};
  }

  Status serve(int fd, Identity identity) {
    if (!config_.policy.ssh) {
      ::close(fd);  // the agent should not route the stream here at all; refuse if it does
      return make_error("ssh: disabled by the workspace policy");
    }
    auto connection = std::make_unique<Connection>(*this, std::move(identity));
    Status started = connection->start(fd);
    if (!started) {
      LOG_WARN("ssh", "%s", started.error().message.c_str());
      return started;
    }
    connections_.push_back(std::move(connection));
    return Ok{};
  }

  size_t active() const {
    return static_cast<size_t>(std::count_if(connections_.begin(), connections_.end(),
                                             [](const auto& c) { return !c->finished(); }));
  }

  const std::string& fingerprint() const { return fingerprint_; }

  uv_loop_t* loop() const override { return loop_; }
  const SshConfig& config() const override { return config_; }
  const LoginUser& login_user() const override { return user_; }
  const std::string& sftp_server() const override { return sftp_server_; }
  ssh_bind bind() const override { return bind_.get(); }

  void adopt(std::unique_ptr<ChildProcess> child) override {
    child->set_waker(Waker{[](void* self) { static_cast<Impl*>(self)->schedule_sweep(); }, this});
    orphans_.push_back(std::move(child));
  }

  void schedule_sweep() override {
    if (!sweeper_ || uv_is_active(reinterpret_cast<uv_handle_t*>(sweeper_.get()))) return;
    uv_idle_start(sweeper_.get(), [](uv_idle_t* h) {
      auto* self = static_cast<Impl*>(h->data);
      if (self == nullptr) return;
      uv_idle_stop(h);
      self->sweep();
    });
  }

 private:
  void sweep() {
    // Connections are destroyed here, never below one of their own callbacks.
    std::vector<std::unique_ptr<Connection>> finished;
    for (auto& c : connections_)
      if (c->finished()) finished.push_back(std::move(c));
    std::erase(connections_, nullptr);
    finished.clear();
    std::erase_if(orphans_, [](const std::unique_ptr<ChildProcess>& child) { return child->exited(); });
  }

  uv_loop_t* loop_;
  SshConfig config_;
  UniqueBind bind_;
  std::string fingerprint_;
  LoginUser user_;
  std::string sftp_server_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<std::unique_ptr<ChildProcess>> orphans_;
  net::UvHandle<uv_idle_t> sweeper_;
};

Result<std::unique_ptr<SshServer>> SshServer::create(uv_loop_t* loop, SshConfig config) {
  // A client or child that goes away mid-write must give EPIPE, not kill the agent.
  ::signal(SIGPIPE, SIG_IGN);
  auto impl = std::make_unique<Impl>(loop, std::move(config));
  if (Status ready = impl->init(); !ready) return ready.error();
  return std::unique_ptr<SshServer>(new SshServer(std::move(impl)));
}

SshServer::SshServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SshServer::~SshServer() = default;

Status SshServer::serve(int fd, Identity identity) { return impl_->serve(fd, std::move(identity)); }
size_t SshServer::active_sessions() const { return impl_->active(); }
const std::string& SshServer::host_key_fingerprint() const { return impl_->fingerprint(); }

}  // namespace airlock::agent::ssh
