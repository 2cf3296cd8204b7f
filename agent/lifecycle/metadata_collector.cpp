#include "agent/lifecycle/metadata_collector.hpp"

#include "common/util/log.hpp"
#include "common/workspace/script_output.hpp"

namespace airlock::agent {
namespace {

// Raw output kept per run before trimming: enough to trim 4 KiB from, bounded for a script
// that prints forever.
constexpr size_t kRawOutputLimit = 64 * 1024;

}  // namespace

MetadataCollector::MetadataCollector(uv_loop_t* loop, const std::vector<config::MetadataItem>& items,
                                     std::string directory, std::vector<std::string> env, ChangeCallback on_change)
    : loop_(loop), directory_(std::move(directory)), env_(std::move(env)), on_change_(std::move(on_change)) {
  for (const auto& spec : items) {
    auto item = std::make_unique<Item>();
    item->spec = spec;
    item->status.key = spec.key;
    item->status.display_name = spec.display_name;
    item->status.interval = spec.interval;
    item->status.timeout = spec.timeout;
    item->collector = this;
    items_.push_back(std::move(item));
  }
}

void MetadataCollector::start() {
  for (auto& item : items_) {
    item->timer.init([&](uv_timer_t* h) { return uv_timer_init(loop_, h); });
    item->timer->data = item.get();
    auto interval = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(item->spec.interval).count());
    uv_timer_start(
        item->timer.get(),
        [](uv_timer_t* h) {
          auto* it = static_cast<Item*>(h->data);
          it->collector->run(*it);
        },
        0, interval);
  }
}

void MetadataCollector::stop() {
  for (auto& item : items_) {
    item->timer.reset();
    item->run.reset();  // kills the process group of a run in flight
  }
}

void MetadataCollector::run(Item& item) {
  if (item.run) {
    LOG_DEBUG("agent", "metadata %s: previous run still going; skipping this interval", item.spec.key.c_str());
    return;
  }
  item.output.clear();
  ScriptSpec spec;
  spec.label = "metadata " + item.spec.key;
  spec.command = item.spec.script;
  spec.directory = directory_;
  spec.env = env_;
  spec.timeout = item.spec.timeout;
  spec.keep_reading = false;
  item.run = std::make_unique<ScriptProcess>(
      loop_, std::move(spec),
      [&item](std::string_view bytes) {
        if (item.output.size() < kRawOutputLimit)
          item.output.append(bytes.substr(0, kRawOutputLimit - item.output.size()));
      },
      [this, &item](const ScriptOutcome& outcome) { finished(item, outcome); });
  if (auto s = item.run->start(); !s) {
    item.run.reset();
    workspace::MetadataStatus before = item.status;
    item.status.error = s.error().message;
    item.status.collected_at = std::chrono::system_clock::now();
    if (before.error != item.status.error && on_change_) on_change_(item.status);
  }
}

void MetadataCollector::finished(Item& item, const ScriptOutcome& outcome) {
  std::string value = workspace::trim_output(item.output);
  std::string error;
  if (outcome.timed_out)
    error = "timed out after " + std::to_string(item.spec.timeout.count()) + " s (its processes were killed)";
  else if (outcome.signal)
    error = "killed by signal " + std::to_string(*outcome.signal);
  else if (outcome.exit_code && *outcome.exit_code != 0)
    error = "exited with status " + std::to_string(*outcome.exit_code);
  bool changed = value != item.status.value || error != item.status.error || !item.status.collected_at;
  item.status.value = std::move(value);
  item.status.error = std::move(error);
  item.status.collected_at = std::chrono::system_clock::now();
  if (changed && !item.status.error.empty())
    LOG_WARN("agent", "metadata %s: %s", item.spec.key.c_str(), item.status.error.c_str());
  // The run is destroyed from inside its own callback: ScriptProcess allows that as its last act.
  auto done = std::move(item.run);
  if (changed && on_change_) on_change_(item.status);
}

std::vector<workspace::MetadataStatus> MetadataCollector::items() const {
  std::vector<workspace::MetadataStatus> out;
  for (const auto& item : items_) out.push_back(item->status);
  return out;
}

}  // namespace airlock::agent
