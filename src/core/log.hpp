// Structured logging: one JSON object a line on stderr, filtered by level.
//
// Thread-safety: log lines may be written from any thread; a line is written with a
// single write so lines from different threads never interleave.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace tern::log {

enum class Level { debug = 0, info = 1, warning = 2, error = 3, off = 4 };

void set_level(Level level) noexcept;
Level level() noexcept;
bool parse_level(std::string_view text, Level& out) noexcept;

// Writes {"time":..,"level":..,"component":..,"msg":..}.
void write(Level level, std::string_view component, std::string_view message);

template <class... Args>
void debug(std::string_view component, fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::debug) write(Level::debug, component, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void info(std::string_view component, fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::info) write(Level::info, component, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void warn(std::string_view component, fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::warning) write(Level::warning, component, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void error(std::string_view component, fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::error) write(Level::error, component, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace tern::log
