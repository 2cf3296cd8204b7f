// Runs each metadata item's script on its interval: one run per item at a time, killed (its
// whole process group) at the item's timeout, output trimmed and cut to 4 KiB. Keeps the value,
// the error and when it was collected; pushes a change when the value or the error changes.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/lifecycle/script_process.hpp"
#include "common/config/manifest.hpp"
#include "common/net/uv_handle.hpp"
#include "common/workspace/status.hpp"

namespace airlock::agent {

class MetadataCollector {
 public:
  using ChangeCallback = std::function<void(const workspace::MetadataStatus&)>;

  // directory and env: where and with what environment scripts run (the manifest's).
  MetadataCollector(uv_loop_t* loop, const std::vector<config::MetadataItem>& items, std::string directory,
                    std::vector<std::string> env, ChangeCallback on_change);
  MetadataCollector(const MetadataCollector&) = delete;
  MetadataCollector& operator=(const MetadataCollector&) = delete;

  void start();
  // Stops the timers and kills runs in flight.
  void stop();
  std::vector<workspace::MetadataStatus> items() const;

 private:
  struct Item {
    config::MetadataItem spec;
    workspace::MetadataStatus status;
    net::UvHandle<uv_timer_t> timer;
    std::unique_ptr<ScriptProcess> run;
    std::string output;
    MetadataCollector* collector = nullptr;
  };

  void run(Item& item);
  void finished(Item& item, const ScriptOutcome& outcome);

  uv_loop_t* loop_;
  std::string directory_;
  std::vector<std::string> env_;
  std::vector<std::unique_ptr<Item>> items_;
  ChangeCallback on_change_;
};

}  // namespace airlock::agent
