#include "agent/lifecycle/script_process.hpp"

#include <signal.h>

#include "common/util/log.hpp"
#include "common/util/unique_fd.hpp"

namespace airlock::agent {
namespace {

// After the shell exits, how long to wait for the rest of its output.
constexpr uint64_t kDrainMs = 200;

}  // namespace

ScriptProcess::ScriptProcess(uv_loop_t* loop, ScriptSpec spec, OutputCallback on_output, DoneCallback on_done)
    : loop_(loop), spec_(std::move(spec)), on_output_(std::move(on_output)), on_done_(std::move(on_done)) {}

ScriptProcess::~ScriptProcess() {
  if (running_) signal_group(SIGKILL);
}

Status ScriptProcess::start() {
  uv_file fds[2];
  int rc = uv_pipe(fds, 0, 0);
  if (rc != 0) return make_error(std::string("cannot create a pipe for the script's output: ") + uv_strerror(rc));
  UniqueFd read_end(fds[0]), write_end(fds[1]);

  std::vector<char*> env;
  for (auto& e : spec_.env) env.push_back(e.data());
  env.push_back(nullptr);
  char sh[] = "/bin/sh", dash_c[] = "-c";
  char* args[] = {sh, dash_c, spec_.command.data(), nullptr};

  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = write_end.get();
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = write_end.get();

  uv_process_options_t options{};
  options.file = sh;
  options.args = args;
  options.env = env.data();
  options.cwd = spec_.directory.empty() ? nullptr : spec_.directory.c_str();
  // A session and process group of its own: the timeout and signal forwarding reach everything
  // the script started, and a terminal's job control never sees it.
  options.flags = UV_PROCESS_DETACHED;
  options.stdio_count = 3;
  options.stdio = stdio;
  options.exit_cb = [](uv_process_t* h, int64_t status, int term_signal) {
    if (h->data) static_cast<ScriptProcess*>(h->data)->on_exit(status, term_signal);
  };
  rc = process_.init([&](uv_process_t* h) { return uv_spawn(loop_, h, &options); }, /*closes_on_failure=*/true);
  if (rc != 0) {
    process_.reset();
    std::string where = spec_.directory.empty() ? "" : " in " + spec_.directory;
    return make_error("cannot start /bin/sh" + where + ": " + uv_strerror(rc));
  }
  process_->data = this;
  pid_ = process_->pid;
  running_ = true;
  write_end.reset();  // the child holds the only write end now, so EOF means every writer is gone

  rc = output_.init([&](uv_pipe_t* h) { return uv_pipe_init(loop_, h, 0); });
  if (rc == 0) rc = uv_pipe_open(output_.get(), read_end.get());
  if (rc == 0) {
    read_end.release();
    output_->data = this;
    rc = uv_read_start(
        output_.stream(),
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          auto* self = static_cast<ScriptProcess*>(h->data);
          *buf = uv_buf_init(self->buffer_, sizeof self->buffer_);
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          if (s->data) static_cast<ScriptProcess*>(s->data)->on_read(n, buf);
        });
  }
  if (rc != 0) {
    LOG_WARN("agent", "%s script: cannot read its output: %s", spec_.label.c_str(), uv_strerror(rc));
    output_.reset();
    eof_ = true;
  }

  if (spec_.timeout.count() > 0) {
    // The loop's clock is from the start of this iteration; the timeout counts from the spawn.
    uv_update_time(loop_);
    timeout_.init([&](uv_timer_t* h) { return uv_timer_init(loop_, h); });
    timeout_->data = this;
    uv_timer_start(
        timeout_.get(),
        [](uv_timer_t* h) {
          auto* self = static_cast<ScriptProcess*>(h->data);
          if (!self->running_) return;
          self->outcome_.timed_out = true;
          LOG_WARN("agent", "%s script ran past its timeout (%s): killing its process group %d",
                   self->spec_.label.c_str(), std::to_string(self->spec_.timeout.count()).append(" ms").c_str(),
                   self->pid_);
          self->signal_group(SIGKILL);
        },
        static_cast<uint64_t>(spec_.timeout.count()), 0);
  }
  return Ok{};
}

void ScriptProcess::signal_group(int sig) {
  if (pid_ <= 0) return;
  // The group outlives the shell when it left children behind, so this is useful after exit too.
  if (::kill(-pid_, sig) != 0 && running_) ::kill(pid_, sig);
}

void ScriptProcess::on_exit(int64_t exit_status, int term_signal) {
  running_ = false;
  timeout_.reset();
  if (term_signal) outcome_.signal = term_signal;
  else outcome_.exit_code = static_cast<int>(exit_status);
  process_.reset();
  if (outcome_.timed_out) {
    // Whatever of the group is left goes too: a timed-out script must not leave work running.
    signal_group(SIGKILL);
  }
  if (!eof_) {
    drain_.init([&](uv_timer_t* h) { return uv_timer_init(loop_, h); });
    drain_->data = this;
    uv_timer_start(
        drain_.get(), [](uv_timer_t* h) { static_cast<ScriptProcess*>(h->data)->finish(); }, kDrainMs, 0);
  }
  maybe_finish();
}

void ScriptProcess::on_read(ssize_t n, const uv_buf_t* buf) {
  if (n > 0) {
    if (on_output_) on_output_(std::string_view(buf->base, static_cast<size_t>(n)));
    return;
  }
  if (n == 0) return;
  if (n != UV_EOF) LOG_DEBUG("agent", "%s script: output read error: %s", spec_.label.c_str(), uv_strerror(static_cast<int>(n)));
  eof_ = true;
  output_.reset();
  maybe_finish();
}

void ScriptProcess::maybe_finish() {
  if (!running_ && eof_) finish();
}

void ScriptProcess::finish() {
  if (done_) return;
  done_ = true;
  drain_.reset();
  if (!spec_.keep_reading) output_.reset();
  // on_done may destroy this object: nothing after the call touches members.
  auto cb = std::move(on_done_);
  auto outcome = outcome_;
  if (cb) cb(outcome);
}

}  // namespace airlock::agent
