#include "agent/pty/pty_sessions.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "common/pty/protocol.hpp"
#include "common/util/log.hpp"

namespace airlock::agent::pty {
namespace {

constexpr const char* kLog = "pty";

struct OpenArgs {
  std::string session;
  uint16_t cols = 0;
  uint16_t rows = 0;
  std::string command;
};

// An integer in [1, max], whether JSON text made it unsigned or C++ code made it a signed int.
std::optional<uint16_t> dimension(const nlohmann::json& args, std::string_view key, uint16_t max) {
  auto it = args.find(key);
  if (it == args.end() || !it->is_number_integer()) return std::nullopt;
  if (it->is_number_unsigned() ? it->get<uint64_t>() > max : (it->get<int64_t>() < 1 || it->get<int64_t>() > max)) {
    return std::nullopt;
  }
  auto value = it->get<uint16_t>();
  if (value < 1) return std::nullopt;
  return value;
}

Result<OpenArgs> parse_open_args(const nlohmann::json& args) {
  namespace proto = airlock::pty;
  if (!args.is_object()) return make_error("pty: open arguments must be a JSON object");
  OpenArgs out;
  auto session = args.find(proto::kOpenSession);
  if (session == args.end() || !session->is_string() || !proto::valid_session_id(session->get_ref<const std::string&>())) {
    return make_error("pty: \"session\" must be 1-64 characters of [A-Za-z0-9._-]");
  }
  out.session = session->get<std::string>();
  auto cols = dimension(args, proto::kOpenCols, proto::kMaxCols);
  auto rows = dimension(args, proto::kOpenRows, proto::kMaxRows);
  if (!cols || !rows || !proto::valid_size(*cols, *rows)) {
    return make_error("pty: \"cols\" and \"rows\" must be integers, " + std::to_string(proto::kMinCols) + "-" +
                      std::to_string(proto::kMaxCols) + " and 1-" + std::to_string(proto::kMaxRows));
  }
  out.cols = *cols;
  out.rows = *rows;
  if (auto command = args.find(proto::kOpenCommand); command != args.end() && !command->is_null()) {
    if (!command->is_string()) return make_error("pty: \"command\" must be a string");
    out.command = command->get<std::string>();
    if (out.command.size() > proto::kMaxCommandLength || out.command.find('\0') != std::string::npos) {
      return make_error("pty: \"command\" is too long or holds a NUL byte");
    }
  }
  return out;
}

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
  auto* timer = new uv_timer_t{};
  uv_timer_init(loop_, timer);
  timer->data = this;
  sweep_timer_ = UvHandle<uv_timer_t>(timer);
}

PtySessions::~PtySessions() {
  for (auto& [id, session] : sessions_) session->shut_down();
  sessions_.clear();
  lingering_.close_all();
}

Status PtySessions::attach(int fd, const nlohmann::json& args, const Identity& who) {
  auto parsed = parse_open_args(args);
  if (!parsed) return refuse(fd, parsed.error().message);
  OpenArgs& open = *parsed;

  auto it = sessions_.find(open.session);
  if (it != sessions_.end() && !it->second->ended()) return it->second->attach(fd, who, open.cols, open.rows);
  if (it != sessions_.end()) sessions_.erase(it);  // ended, not yet swept: the id starts afresh

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
