// `airlock pty WS [--session ID] [--command CMD]`: a terminal session in the workspace, in this
// terminal, without OpenSSH. The local terminal goes raw (cli/pty_terminal); one `pty` stream
// carries keystrokes, window changes and the screen (docs/PROTOCOL.md "Terminal (pty) stream").
//
// Reconnecting. When the relay link drops, the agent goes away, the stream is lost or the
// connection fails, the command says "reconnecting…" on stderr and lets go of the stream. When the
// relay and the agent are back on the same tunnel (which resumes by itself) it opens a new stream
// there; when the tunnel is gone, or nothing comes back within a few seconds, it dials the
// workspace afresh. Either way it asks to reattach the
// same session id ({"reattach": true}): the agent repaints the screen of the same shell, or
// refuses if that shell is gone (it ended meanwhile, or the agent restarted), and then the command
// ends rather than start a new shell behind the user's back. Ctrl-C while reconnecting gives up;
// so do five minutes without success.
//
// Exit status: the shell's (128+signal for a signal); 255 when the session was lost (as ssh);
// 1 when it could not start; 2 for bad usage.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <random>

#include "cli/client_config.hpp"
#include "cli/commands.hpp"
#include "cli/pty_terminal.hpp"
#include "cli/workspace_connection.hpp"
#include "common/net/stream_bridge.hpp"
#include "common/net/uv.hpp"
#include "common/pty/open_args.hpp"

namespace airlock::cli {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kRetryFirst = 250ms;
constexpr auto kRetryMax = 5s;
// Trouble not mended by then (the relay or the agent not back on this tunnel, a reattach not
// answered) is mended by dialling the workspace afresh. The relay forgets its dial grants when it
// restarts: a tunnel whose re-dial came before the agent was back never hears of it again.
constexpr auto kRecoverWait = 3s;
// The agent keeps a session without viewers for its idle timeout, 5 minutes by default.
constexpr auto kGiveUpAfter = std::chrono::minutes(5);
constexpr int kExitLost = 255;
constexpr char kCtrlC = '\x03';
constexpr WindowSize kDefaultSize{80, 24};  // when stdin is not a terminal

struct PtyOptions {
  ClientOptions client;
  std::string workspace;
  std::string session;
  std::string command;
};

std::string random_session_id() {
  static constexpr char kAlphabet[] = "abcdefghijkmnpqrstuvwxyz23456789";
  std::random_device random;
  std::string id = "cli-";
  for (int i = 0; i < 10; ++i) id += kAlphabet[random() % (sizeof kAlphabet - 1)];
  return id;
}

// One terminal session of the workspace shown in the local terminal, across reconnects.
class RemoteTerminal {
 public:
  RemoteTerminal(CommandContext& ctx, const PtyOptions& options, ClientOptions resolved)
      : ctx_(ctx),
        resolved_(std::move(resolved)),
        workspace_(options.workspace),
        session_(options.session),
        command_(options.command),
        terminal_(ctx.loop, terminal_events()),
        retry_timer_(ctx.loop),
        recover_timer_(ctx.loop),
        give_up_timer_(ctx.loop) {}

  ~RemoteTerminal() {
    done_ = true;
    terminal_.stop();
    own_connection_.reset();  // its streams' callbacks end here, while the rest is still alive
  }
  RemoteTerminal(const RemoteTerminal&) = delete;
  RemoteTerminal& operator=(const RemoteTerminal&) = delete;

  // `first` is run_workspace_command's connection, ready (hello answered) on `link`.
  void start(WorkspaceConnection& first, net::PeerLink& link) {
    // However the command ends (SIGTERM and SIGINT end it from run_workspace_command), nothing
    // here reacts to the teardown that follows, and the terminal is given back at once.
    ctx_.finish = [this, finish = std::move(ctx_.finish)](int code) {
      quiesce();
      finish(code);
    };
    if (auto started = terminal_.start(); !started) return end(1, "cannot use this terminal: " + started.error().message);
    adopt(first);
    watch_node(first);
    connection_ready_ = true;
    open(link);
  }

 private:
  PtyTerminal::Events terminal_events() {
    PtyTerminal::Events events;
    events.session = [this](const airlock::pty::SessionInfo& info) { on_session(info); };
    events.exited = [this](airlock::pty::ExitStatus status) { end(PtyTerminal::exit_code(status)); };
    events.connection_lost = [this](const std::string& reason, bool refused) { on_stream_lost(reason, refused); };
    events.detached_input = [this](std::string_view typed) {
      if (typed.find(kCtrlC) != std::string_view::npos) give_up("gave up reconnecting");
    };
    return events;
  }

  // Takes `c`'s events: its failures and the relay's and agent's comings and goings.
  void adopt(WorkspaceConnection& c) {
    connection_ = &c;
    c.on_error = [this, &c](const std::string& error) {
      if (&c == connection_) connection_failed(error);
    };
    // Once connected, everything the connection reports is trouble: the relay link is down, the
    // agent went away, the relay refused a dial.
    c.on_progress = [this, &c](const std::string& line) {
      // "relay link down (why); reconnecting..." -> "relay link down (why)"
      if (&c == connection_ && connection_ready_) trouble(line.substr(0, line.rfind("; ")));
    };
  }
  void watch_node(WorkspaceConnection& c) {
    net::TunnelNode& node = c.node();
    node.on_relay_state = [this, &c, previous = std::move(node.on_relay_state)](net::LinkState state,
                                                                                std::string_view reason) {
      if (previous) previous(state, reason);
      if (state == net::LinkState::connected && &c == connection_) peer_back();
    };
    node.on_peer_present = [this, &c, previous = std::move(node.on_peer_present)](const crypto::Key& key) {
      if (previous) previous(key);
      if (&c == connection_) peer_back();
    };
  }

  // A new stream to the session, and the local terminal on it.
  void open(net::PeerLink& link) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
      return end(1, std::string("socketpair: ") + std::strerror(errno));
    std::string error;
    uv_stream_t* ours = net::StreamBridge::wrap_fd(ctx_.loop, sv[0], &error);
    if (ours == nullptr) {
      ::close(sv[0]);
      ::close(sv[1]);
      return end(1, "cannot bridge the stream: " + error);
    }
    uint64_t generation = ++generation_;
    stream_reason_.clear();
    stream_has_session_ = false;
    auto* bridge = new net::StreamBridge(link, ours, ours, [this, generation](const std::string& reason) {
      // Why the stream ended (a reset's reason) is told before the terminal sees the end of it.
      if (generation == generation_ && !done_) stream_reason_ = reason;
    });
    WindowSize size = terminal_.window_size().value_or(kDefaultSize);
    airlock::pty::OpenArgs args;
    args.session = session_;
    args.cols = size.cols;
    args.rows = size.rows;
    args.command = command_;
    args.reattach = session_seen_;
    reattaching_ = args.reattach;
    auto id = link.open(airlock::pty::kServiceName, airlock::pty::to_json(args), stream::Priority::interactive, bridge);
    if (id == 0) {
      bridge->abort("cannot open a stream");
      ::close(sv[1]);
      trouble("cannot open a stream");
      return schedule_dial();
    }
    bridge->start(id);
    if (auto attached = terminal_.attach(sv[1]); !attached) return end(1, attached.error().message);
    if (trouble_since_) recover_timer_.start(kRecoverWait, [this] { schedule_dial(); });
  }

  void on_session(const airlock::pty::SessionInfo& info) {
    recover_timer_.stop();
    stream_has_session_ = true;
    if (reattaching_ && !info.reattached) {
      // An agent that does not know "reattach" started a new shell: this one is not ours.
      return end(kExitLost, "session " + session_ + " ended while disconnected");
    }
    session_seen_ = true;
    if (trouble_since_) {
      trouble_since_.reset();
      give_up_timer_.stop();
      retry_delay_ = kRetryFirst;
      // Printed before the repaint, which clears the screen: it stays where stderr is kept.
      status("reattached to session " + session_);
    }
  }

  void on_stream_lost(const std::string& reason, bool refused) {
    if (done_) return;
    recover_timer_.stop();
    // An ERROR frame is the agent's last word to this viewer: bad arguments, too many sessions,
    // or (when reattaching) the session is gone.
    if (refused) return end(trouble_since_ ? kExitLost : 1, reason);
    // Otherwise the stream's own end (a reset's reason) says more than the local socket's EOF.
    std::string why = stream_reason_.empty() ? reason : stream_reason_;
    // A stream refused before it began, on a connection with nothing wrong: policy says no.
    if (!stream_has_session_ && !trouble_since_) return end(1, why);
    trouble(why);
    schedule_dial();
  }

  void connection_failed(const std::string& error) {
    if (done_) return;
    trouble(error);
    schedule_dial();
  }

  // Something broke: say so once, let go of the stream, and wait for a way back (peer_back), or
  // dial afresh if none comes soon.
  void trouble(const std::string& why) {
    if (done_) return;
    if (!trouble_since_) {
      trouble_since_ = Clock::now();
      status(why + "; reconnecting… (Ctrl-C gives up)");
      give_up_timer_.start(std::chrono::duration_cast<std::chrono::milliseconds>(kGiveUpAfter),
                           [this] { give_up("could not reconnect for 5 minutes"); });
    }
    terminal_.detach();
    if (!retry_timer_.active()) recover_timer_.start(kRecoverWait, [this] { schedule_dial(); });
  }

  // The relay link is up again, or the agent is back on it: the tunnel resumes by itself, so a
  // new stream on it reattaches (unless one is already waiting for its answer).
  void peer_back() {
    if (done_ || !trouble_since_ || !connection_ready_ || terminal_.attached() || retry_timer_.active()) return;
    net::PeerLink* link = connection_->link();
    if (link == nullptr) return schedule_dial();
    open(*link);
  }

  void schedule_dial() {
    if (done_ || retry_timer_.active()) return;
    terminal_.detach();
    recover_timer_.stop();
    auto delay = retry_delay_;
    retry_delay_ = std::min<std::chrono::milliseconds>(retry_delay_ * 2, kRetryMax);
    retry_timer_.start(delay, [this] { dial(); });
  }

  // A new connection to the workspace (from a timer: never inside the old one's callbacks).
  void dial() {
    if (done_) return;
    retire();
    own_connection_ = std::make_unique<WorkspaceConnection>(ctx_.loop, resolved_, workspace_);
    WorkspaceConnection& c = *own_connection_;
    adopt(c);
    c.on_ready = [this, &c](net::PeerLink& link, const nlohmann::json&) {
      if (&c != connection_ || done_) return;
      connection_ready_ = true;
      open(link);
    };
    if (auto started = c.start(); !started) return end(kExitLost, started.error().message);
    watch_node(c);
  }

  void retire() {
    terminal_.detach();
    recover_timer_.stop();
    connection_ready_ = false;
    if (connection_ != nullptr) {
      connection_->on_error = nullptr;
      connection_->on_progress = nullptr;
      connection_->on_ready = nullptr;
      connection_->stop();
      connection_ = nullptr;
    }
    own_connection_.reset();
  }

  void give_up(const std::string& why) {
    end(kExitLost, why + "; the session may still be running: airlock pty " + workspace_ + " --session " + session_);
  }

  // Every way out: the local terminal back as it was, then the message, then the exit status.
  void end(int code, const std::string& message = "") {
    if (done_) return;
    quiesce();
    if (!message.empty()) std::cerr << "airlock: " << message << std::endl;
    ctx_.finish(code);
  }
  void quiesce() {
    done_ = true;
    retry_timer_.stop();
    recover_timer_.stop();
    give_up_timer_.stop();
    terminal_.stop();
    if (own_connection_) own_connection_->stop();
  }

  // A line on stderr while the terminal may be raw (where "\n" does not return the carriage).
  void status(const std::string& line) {
    bool tty = ::isatty(STDERR_FILENO) != 0;
    std::string text = std::string(tty ? "\r\n" : "") + "airlock: " + line + (tty ? "\r\n" : "\n");
    (void)!::write(STDERR_FILENO, text.data(), text.size());
  }

  CommandContext& ctx_;
  ClientOptions resolved_;
  std::string workspace_;
  std::string session_;
  std::string command_;
  PtyTerminal terminal_;
  net::Timer retry_timer_;
  net::Timer recover_timer_;
  net::Timer give_up_timer_;
  std::chrono::milliseconds retry_delay_ = kRetryFirst;
  WorkspaceConnection* connection_ = nullptr;  // run_workspace_command's, or own_connection_
  bool connection_ready_ = false;
  uint64_t generation_ = 0;    // of the current stream
  std::string stream_reason_;  // why the current stream ended, from the bridge
  bool stream_has_session_ = false;
  bool session_seen_ = false;  // a SESSION came once: from then on only reattach
  bool reattaching_ = false;
  std::optional<Clock::time_point> trouble_since_;
  bool done_ = false;
  // Last: destroyed first, so its streams' last callbacks find everything above still alive.
  std::unique_ptr<WorkspaceConnection> own_connection_;
};

}  // namespace

void add_pty_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("pty", "Open a terminal session in a workspace (reattaches by session id)");
  auto o = std::make_shared<PtyOptions>();
  cmd->add_option("workspace", o->workspace, "Workspace name")->required();
  cmd->add_option("--session", o->session,
                  "Session id, 1-64 of [A-Za-z0-9._-]: an existing session is reattached (default: a new one)");
  cmd->add_option("--command", o->command, "Run this in the login shell instead of an interactive shell (new sessions)");
  add_client_options(cmd, o->client);
  cmd->callback([o] {
    if (o->session.empty()) o->session = random_session_id();
    if (!airlock::pty::valid_session_id(o->session)) {
      std::cerr << "airlock pty: --session: \"" << o->session << "\" must be 1-64 characters of [A-Za-z0-9._-]\n";
      throw CLI::RuntimeError(2);
    }
    if (o->command.size() > airlock::pty::kMaxCommandLength) {
      std::cerr << "airlock pty: --command: longer than " << airlock::pty::kMaxCommandLength << " bytes\n";
      throw CLI::RuntimeError(2);
    }
    auto resolved = resolve_client_options(o->client);
    if (!resolved) {
      std::cerr << "airlock pty: " << resolved.error().message << "\n";
      throw CLI::RuntimeError(2);
    }
    int code = run_workspace_command(*resolved, o->workspace, true,
                                     [&](CommandContext& ctx, net::PeerLink& link, const nlohmann::json&) {
                                       auto* terminal = ctx.own(std::make_unique<RemoteTerminal>(ctx, *o, *resolved));
                                       terminal->start(*ctx.connection, link);
                                     });
    throw CLI::RuntimeError(code);
  });
}

}  // namespace airlock::cli
