#include "common/util/log.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sys/time.h>

namespace airlock::log {
namespace {

Level initial_level() {
  const char* env = std::getenv("AIRLOCK_LOG_LEVEL");
  if (!env) return Level::info;
  std::string_view v(env);
  if (v == "debug") return Level::debug;
  if (v == "warn") return Level::warn;
  if (v == "error") return Level::error;
  return Level::info;
}

std::atomic<Level> g_level{initial_level()};

const char* level_name(Level l) {
  switch (l) {
    case Level::debug: return "DEBUG";
    case Level::info: return "INFO ";
    case Level::warn: return "WARN ";
    case Level::error: return "ERROR";
  }
  return "?";
}

}  // namespace

void set_level(Level level) { g_level = level; }
bool set_level(std::string_view name) {
  if (name == "debug") set_level(Level::debug);
  else if (name == "info") set_level(Level::info);
  else if (name == "warn") set_level(Level::warn);
  else if (name == "error") set_level(Level::error);
  else return false;
  return true;
}
Level level() { return g_level; }
bool enabled(Level l) { return static_cast<int>(l) >= static_cast<int>(g_level.load()); }

void vwrite(Level l, const char* component, const char* format, va_list args) {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char line[2048];
  int n = std::snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s: ", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                        static_cast<int>(tv.tv_usec / 1000), level_name(l), component);
  if (n < 0) return;
  int m = std::vsnprintf(line + n, sizeof line - n - 1, format, args);
  size_t len = static_cast<size_t>(n) + (m < 0 ? 0 : std::min<size_t>(m, sizeof line - n - 2));
  line[len++] = '\n';
  // One write per line so lines from concurrent processes sharing stderr do not interleave.
  std::fwrite(line, 1, len, stderr);
  std::fflush(stderr);
}

void write(Level l, const char* component, const char* format, ...) {
  va_list args;
  va_start(args, format);
  vwrite(l, component, format, args);
  va_end(args);
}

std::string short_key(std::string_view base64_key) {
  if (base64_key.size() <= 8) return std::string(base64_key);
  return std::string(base64_key.substr(0, 8)) + "…";
}

}  // namespace airlock::log
