#include "common/util/metrics.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace airlock::metrics {
namespace {

bool valid_name(std::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

void append_escaped(std::string& out, std::string_view s, bool quote_too) {
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (quote_too && c == '"') out += "\\\"";
    else out += c;
  }
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

std::string render_labels(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ',';
    out += labels[i].first;
    out += "=\"";
    append_escaped(out, labels[i].second, true);
    out += '"';
  }
  out += '}';
  return out;
}

Registry::Family& Registry::family(std::string_view name, std::string_view help, Type type) {
  if (!valid_name(name, true)) throw std::logic_error("metric name \"" + std::string(name) + "\" is not valid");
  auto it = families_.find(name);
  if (it == families_.end()) {
    Family f;
    f.help = std::string(help);
    f.type = type;
    it = families_.emplace(std::string(name), std::move(f)).first;
  } else if (it->second.type != type) {
    throw std::logic_error("metric \"" + std::string(name) + "\" is registered as another type");
  }
  return it->second;
}

static void check_labels(const Labels& labels) {
  for (const auto& [k, v] : labels) {
    if (!valid_name(k, false) || k.rfind("__", 0) == 0)
      throw std::logic_error("metric label name \"" + k + "\" is not valid");
  }
}

Counter& Registry::counter(std::string_view name, std::string_view help, const Labels& labels) {
  check_labels(labels);
  std::lock_guard lock(mutex_);
  auto& f = family(name, help, Type::counter);
  auto& slot = f.counters[render_labels(labels)];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Registry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
  check_labels(labels);
  std::lock_guard lock(mutex_);
  auto& f = family(name, help, Type::gauge);
  auto& slot = f.gauges[render_labels(labels)];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

std::string Registry::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& entry : families_) {
    const std::string& name = entry.first;
    const Family& f = entry.second;
    out += "# HELP ";
    out += name;
    out += ' ';
    append_escaped(out, f.help, false);
    out += "\n# TYPE ";
    out += name;
    out += f.type == Type::counter ? " counter\n" : " gauge\n";
    auto series = [&](const std::string& labels, double v) {
      out += name;
      out += labels;
      out += ' ';
      out += format_value(v);
      out += '\n';
    };
    for (const auto& [labels, c] : f.counters) series(labels, c->value());
    for (const auto& [labels, g] : f.gauges) series(labels, g->value());
  }
  return out;
}

}  // namespace airlock::metrics
