// Structured logging: one JSON object a line on stderr, filtered by level.
//
// Thread-safety: log lines may be written from any thread; a line is written with a
// single write so lines from different threads never interleave.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace tern::log {

enum class Level { debug = 0, info = 1, warning = 2, error = 3, off = 4 };

void set_level(Level level) noexcept;
Level level() noexcept;
bool parse_level(std::string_view text, Level& out) noexcept;

// Writes {"time":..,"level":..,"component":..,"msg":..}. The line also goes to the ring
// buffer and to every forwarder.
void write(Level level, std::string_view component, std::string_view message);

std::string_view level_name(Level level) noexcept;

// The ring buffer: the last N lines written (those that passed the level filter), kept in
// RAM so an operator can read recent history without a log file (flash wears out).
// Default capacity: kDefaultRingCapacity lines; 0 disables it. Shrinking drops the oldest.
inline constexpr std::size_t kDefaultRingCapacity = 1024;
void set_ring_capacity(std::size_t lines);
std::size_t ring_capacity() noexcept;

struct RingLine {
  std::uint64_t seq = 0;  // 1 for the first line ever written, then +1 a line
  Level level = Level::info;
  std::string json;       // the line without its trailing newline
};
// The most recent lines at `min_level` or above, oldest first, at most `limit` of them.
std::vector<RingLine> recent_lines(Level min_level, std::size_t limit);
// Lines written since start, including those the ring no longer holds.
std::uint64_t lines_written() noexcept;

// A forwarder receives every line (without its newline) on the thread that wrote it,
// after the line reached stderr and the ring. A line written while a forwarder runs on the
// same thread (e.g. the broker logging while publishing a forwarded line) is not
// forwarded again: forwarders are never re-entered on one thread. A forwarder must be
// cheap and must not block; remove_forwarder waits until no call to it is running.
using Forwarder = std::function<void(Level level, std::string_view json_line)>;
using ForwarderId = std::uint64_t;
ForwarderId add_forwarder(Forwarder forwarder);
void remove_forwarder(ForwarderId id);

// The error file: lines at level error (only those: flash wears out) are also appended
// to `path`. When a line would take the file past `max_bytes`, the file is rotated first:
// path.{keep_files-1} -> path.{keep_files}, ..., path -> path.1, and the oldest is
// removed, so at most keep_files + 1 files of about max_bytes each exist. keep_files 0
// truncates instead. The file is opened (created, mode 0640) at once so a bad path is
// reported at start-up; an empty string is returned on success, else why it failed.
// Writes go to the page cache without fsync: an error line costs no flash write of its
// own and a crash of ternd loses nothing, only a power cut may lose the last seconds.
// Thread-safety: any thread; the file has its own lock, taken only for error lines.
std::string set_error_file(const std::string& path, std::uint64_t max_bytes, std::size_t keep_files);
// Stops appending to the error file and closes it.
void clear_error_file();
struct ErrorFileStats {
  std::uint64_t lines = 0;           // error lines appended
  std::uint64_t rotations = 0;
  std::uint64_t write_failures = 0;  // lines lost to a failed open, write or rotation
};
ErrorFileStats error_file_stats();

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
