// Logs a person can read: one line per event, UTC timestamp, level, component, message.
//   2026-11-23T09:30:00.123Z INFO  relay: peer 3kQ…= connected from 127.0.0.1:51234
// Level from AIRLOCK_LOG_LEVEL (debug, info, warn, error; default info) or set_level().
#pragma once

#include <cstdarg>
#include <string>
#include <string_view>

namespace airlock::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };

void set_level(Level level);
bool set_level(std::string_view name);  // false for an unknown name
Level level();
bool enabled(Level level);

void write(Level level, const char* component, const char* format, ...) __attribute__((format(printf, 3, 4)));
void vwrite(Level level, const char* component, const char* format, va_list args);

#define AIRLOCK_LOG_AT(lvl, component, ...)                                                     \
  do {                                                                                           \
    if (::airlock::log::enabled(lvl)) ::airlock::log::write(lvl, component, __VA_ARGS__);       \
  } while (0)
#define LOG_DEBUG(component, ...) AIRLOCK_LOG_AT(::airlock::log::Level::debug, component, __VA_ARGS__)
#define LOG_INFO(component, ...) AIRLOCK_LOG_AT(::airlock::log::Level::info, component, __VA_ARGS__)
#define LOG_WARN(component, ...) AIRLOCK_LOG_AT(::airlock::log::Level::warn, component, __VA_ARGS__)
#define LOG_ERROR(component, ...) AIRLOCK_LOG_AT(::airlock::log::Level::error, component, __VA_ARGS__)

// A public key shortened for logs: the first 8 base64 characters and an ellipsis.
std::string short_key(std::string_view base64_key);

}  // namespace airlock::log
