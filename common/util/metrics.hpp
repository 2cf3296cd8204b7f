// A small Prometheus metrics registry: counters and gauges with labels, rendered in the text
// exposition format (version 0.0.4) for a /metrics endpoint.
//
//   metrics::Registry reg;
//   auto& sent = reg.counter("airlock_relay_packets_total", "Packets relayed.", {{"direction", "out"}});
//   sent.inc();
//   std::string body = reg.render();
//
// References returned by counter()/gauge() stay valid for the registry's lifetime; asking again
// with the same name and labels returns the same metric. Updates are atomic.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace airlock::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void inc(double v = 1) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void inc(double v = 1) { value_.fetch_add(v, std::memory_order_relaxed); }
  void dec(double v = 1) { value_.fetch_sub(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Registry {
 public:
  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

  // Names must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*; a bad name, or
  // one name used as both a counter and a gauge, is a programming error (std::logic_error).
  Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});

  // Families sorted by name, series by label set; HELP and TYPE lines for each family.
  std::string render() const;

 private:
  enum class Type { counter, gauge };
  struct Family {
    std::string help;
    Type type;
    std::map<std::string, std::unique_ptr<Counter>> counters;  // key: rendered label set
    std::map<std::string, std::unique_ptr<Gauge>> gauges;
  };
  Family& family(std::string_view name, std::string_view help, Type type);

  mutable std::mutex mutex_;
  std::map<std::string, Family, std::less<>> families_;
};

// {a="1",b="x\"y"} with Prometheus escaping; "" for no labels.
std::string render_labels(const Labels& labels);

}  // namespace airlock::metrics
