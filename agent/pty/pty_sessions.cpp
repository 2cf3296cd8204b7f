#include "agent/pty/pty_sessions.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "common/pty/open_args.hpp"
#include "common/pty/protocol.hpp"
#include "common/util/log.hpp"

namespace airlock::agent::pty {
namespace {


// Best effort: one ERROR frame on a fresh socket fits its buffer; the fd is closed either way.
Status refuse(int fd, const std::string& reason) {
  airlock::Bytes frame;
  airlock::pty::encode_error(reason, frame);
  if (::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno == ENOTSOCK) {
    (void)!::write(fd, frame.data(), frame.size());
  }
  ::close(fd);
  LOG_WARN(kLog, "refused a viewer: %s", reason.c_str());
  return make_error(reason);
}

}  // namespace

PtySessions::PtySessions(uv_loop_t* loop, PtyConfig config) : loop_(loop), config_(std::move(config)) {
  // A viewer that went away must be an EPIPE for that viewer, not a signal that ends the agent.
  ::signal(SIGPIPE, SIG_IGN);
  sweep_timer_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); });
  sweep_timer_->data = this;
}

PtySessions::~PtySessions() {
  for (auto& [id, session] : sessions_) session->shut_down();
  sessions_.clear();
  lingering_.close_all();
}

Status PtySessions::attach(int fd, const nlohmann::json& args, const Identity& who) {
  auto parsed = airlock::pty::parse_open_args(args);
  if (!parsed) return refuse(fd, parsed.error().message);
  airlock::pty::OpenArgs& open = *parsed;

  auto it = sessions_.find(open.session);
  if (it != sessions_.end() && !it->second->ended()) return it->second->attach(fd, who, open.cols, open.rows);
  if (it != sessions_.end()) sessions_.erase(it);  // ended, not yet swept: the id starts afresh
  // A viewer coming back after a lost connection must not find a fresh shell in place of the one
  // it left (which ended meanwhile, or went with an agent restart).
  if (open.reattach) return refuse(fd, "pty: session " + open.session + " no longer exists");

  if (count() >= config_.max_sessions) {
    return refuse(fd, "pty: this workspace already runs " + std::to_string(config_.max_sessions) + " terminal sessions");
  }
  auto launch = login_shell(config_.env, config_.directory, open.command, config_.shell);
  if (!launch) return refuse(fd, "pty: " + launch.error().message);

  PtySession::Context context{loop_, &config_, &lingering_, [this] {
                                // Sessions end inside their own callbacks: drop them on a later turn.
                                uv_timer_start(
                                    sweep_timer_.get(),
                                    [](uv_timer_t* timer) {
                                      if (auto* self = static_cast<PtySessions*>(timer->data)) self->sweep();
                                    },
                                    0, 0);
                              }};
  auto session = PtySession::start(std::move(context), open.session, *launch, open.cols, open.rows, who);
  if (!session) return refuse(fd, "pty: cannot start the shell: " + session.error().message);
  PtySession& started = **session;
  sessions_.emplace(open.session, std::move(*session));
  return started.attach(fd, who, open.cols, open.rows);
}

void PtySessions::sweep() {
  std::erase_if(sessions_, [](const auto& entry) { return entry.second->ended(); });
}

size_t PtySessions::count() const {
  size_t running = 0;
  for (const auto& [id, session] : sessions_) running += session->ended() ? 0 : 1;
  return running;
}

std::optional<PtySessionStats> PtySessions::stats(std::string_view id) const {
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second->ended()) return std::nullopt;
  return it->second->stats();
}

const airlock::pty::TerminalScreen* PtySessions::screen(std::string_view id) const {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : &it->second->screen();
}

}  // namespace airlock::agent::pty
