#include "core/log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <iterator>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <utility>

#include "core/json_text.hpp"
#include "core/json_text.hpp"

namespace tern::log {
namespace {

// The one process-wide setting: lines are filtered before they are formatted.
std::atomic<Level> g_level{Level::info};

// The ring buffer. Its lock is held only to copy a line in or out.
struct Ring {
  std::mutex mutex;
  std::deque<RingLine> lines;
  std::size_t capacity = kDefaultRingCapacity;
  std::uint64_t next_seq = 1;
};
Ring& ring() {
  static Ring instance;
  return instance;
}
std::atomic<std::uint64_t> g_lines_written{0};

// Forwarders run under a shared lock so remove_forwarder (exclusive) waits for calls in
// progress; the count lets write() skip the lock entirely when there are none.
struct Forwarders {
  std::shared_mutex mutex;
  std::vector<std::pair<ForwarderId, Forwarder>> list;
  ForwarderId next_id = 1;
};
Forwarders& forwarders() {
  static Forwarders instance;
  return instance;
}
std::atomic<std::size_t> g_forwarder_count{0};
thread_local bool t_forwarding = false;

void append_to_ring(Level level, std::string_view json) {
  Ring& r = ring();
  std::lock_guard lock(r.mutex);
  const std::uint64_t seq = r.next_seq++;
  if (r.capacity == 0) return;
  while (r.lines.size() >= r.capacity) r.lines.pop_front();
  r.lines.push_back(RingLine{seq, level, std::string(json)});
}

void forward(Level level, std::string_view json) {
  if (t_forwarding || g_forwarder_count.load(std::memory_order_acquire) == 0) return;
  Forwarders& f = forwarders();
  std::shared_lock lock(f.mutex);
  t_forwarding = true;
  for (const auto& [id, forwarder] : f.list) {
    try {
      forwarder(level, json);
    } catch (...) {
      // A failing forwarder must not take the logging thread down with it.
    }
  }
  t_forwarding = false;
}

// The error file. Its lock serialises appends and rotation; `g_error_file_open` lets
// write() skip the lock when no file is configured.
struct ErrorFile {
  std::mutex mutex;
  int fd = -1;
  std::string path;
  std::uint64_t max_bytes = 0;
  std::size_t keep_files = 0;
  std::uint64_t size = 0;
  ErrorFileStats stats;
};
ErrorFile& error_file() {
  static ErrorFile instance;
  return instance;
}
std::atomic<bool> g_error_file_open{false};

int open_for_append(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

bool write_all(int fd, std::string_view data) {
  const char* p = data.data();
  std::size_t remaining = data.size();
  while (remaining > 0) {
    const ssize_t written = ::write(fd, p, remaining);
    if (written < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += written;
    remaining -= static_cast<std::size_t>(written);
  }
  return true;
}

// Called with the lock held. Renames rather than copies, so a rotation costs no data
// writes; a missing older file is not an error.
bool rotate_error_file(ErrorFile& f) {
  ::close(f.fd);
  f.fd = -1;
  if (f.keep_files == 0) {
    f.fd = ::open(f.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  } else {
    std::remove(fmt::format("{}.{}", f.path, f.keep_files).c_str());
    for (std::size_t i = f.keep_files; i > 1; --i) {
      std::rename(fmt::format("{}.{}", f.path, i - 1).c_str(), fmt::format("{}.{}", f.path, i).c_str());
    }
    std::rename(f.path.c_str(), fmt::format("{}.1", f.path).c_str());
    f.fd = open_for_append(f.path);
  }
  f.size = 0;
  ++f.stats.rotations;
  return f.fd >= 0;
}

void append_to_error_file(std::string_view line_with_newline) {
  if (!g_error_file_open.load(std::memory_order_acquire)) return;
  ErrorFile& f = error_file();
  std::lock_guard lock(f.mutex);
  if (f.fd < 0) {
    // A failed rotation left no file: try again for each line rather than go silent.
    if (f.path.empty() || (f.fd = open_for_append(f.path)) < 0) {
      ++f.stats.write_failures;
      return;
    }
  }
  if (f.size > 0 && f.size + line_with_newline.size() > f.max_bytes && !rotate_error_file(f)) {
    ++f.stats.write_failures;
    return;
  }
  if (!write_all(f.fd, line_with_newline)) {
    ++f.stats.write_failures;
    return;
  }
  f.size += line_with_newline.size();
  ++f.stats.lines;
}

}  // namespace

std::string_view level_name(Level level) noexcept {
  switch (level) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warning:
      return "warning";
    case Level::error:
      return "error";
    case Level::off:
      break;
  }
  return "off";
}

namespace {

void append_timestamp(std::string& out) {
  const auto now = std::chrono::system_clock::now();
  const auto since_epoch = now.time_since_epoch();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds).count();
  const auto t = static_cast<std::time_t>(seconds.count());
  std::tm utc{};
  gmtime_r(&t, &utc);
  fmt::format_to(std::back_inserter(out), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900,
                 utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
}

}  // namespace

void set_level(Level level) noexcept { g_level.store(level, std::memory_order_relaxed); }

Level level() noexcept { return g_level.load(std::memory_order_relaxed); }

bool parse_level(std::string_view text, Level& out) noexcept {
  if (text == "debug") {
    out = Level::debug;
  } else if (text == "info") {
    out = Level::info;
  } else if (text == "warning" || text == "warn") {
    out = Level::warning;
  } else if (text == "error") {
    out = Level::error;
  } else if (text == "off") {
    out = Level::off;
  } else {
    return false;
  }
  return true;
}

void write(Level level, std::string_view component, std::string_view message) {
  if (level == Level::off || level < log::level()) return;
  std::string line;
  line.reserve(96 + component.size() + message.size());
  line.append("{\"time\":\"");
  append_timestamp(line);
  line.append("\",\"level\":\"");
  line.append(level_name(level));
  line.append("\",\"component\":");
  append_json_string(line, component);
  line.append(",\"msg\":");
  append_json_string(line, message);
  line.append("}\n");

  // One write a line keeps lines from different threads whole; a retry happens only if
  // the kernel accepted part of a very long line or a signal interrupted the call.
  const char* data = line.data();
  std::size_t remaining = line.size();
  while (remaining > 0) {
    const ssize_t written = ::write(STDERR_FILENO, data, remaining);
    if (written < 0) {
      if (errno == EINTR) continue;
      break;  // stderr is gone; the ring and the forwarders still get the line
    }
    data += written;
    remaining -= static_cast<std::size_t>(written);
  }

  g_lines_written.fetch_add(1, std::memory_order_relaxed);
  const std::string_view json(line.data(), line.size() - 1);
  append_to_ring(level, json);
  if (level == Level::error) append_to_error_file(line);
  forward(level, json);
}

void set_ring_capacity(std::size_t lines) {
  Ring& r = ring();
  std::lock_guard lock(r.mutex);
  r.capacity = lines;
  while (r.lines.size() > r.capacity) r.lines.pop_front();
}

std::size_t ring_capacity() noexcept {
  Ring& r = ring();
  std::lock_guard lock(r.mutex);
  return r.capacity;
}

std::vector<RingLine> recent_lines(Level min_level, std::size_t limit) {
  std::vector<RingLine> out;
  if (limit == 0) return out;
  Ring& r = ring();
  std::lock_guard lock(r.mutex);
  // Walk backwards to find the newest `limit` matches, then return them oldest first.
  std::size_t matches = 0;
  auto it = r.lines.end();
  auto first = r.lines.end();
  while (it != r.lines.begin() && matches < limit) {
    --it;
    if (it->level >= min_level) {
      ++matches;
      first = it;
    }
  }
  out.reserve(matches);
  for (auto i = first; i != r.lines.end(); ++i) {
    if (i->level >= min_level) out.push_back(*i);
  }
  return out;
}

std::uint64_t lines_written() noexcept { return g_lines_written.load(std::memory_order_relaxed); }

ForwarderId add_forwarder(Forwarder forwarder) {
  Forwarders& f = forwarders();
  std::unique_lock lock(f.mutex);
  const ForwarderId id = f.next_id++;
  f.list.emplace_back(id, std::move(forwarder));
  g_forwarder_count.store(f.list.size(), std::memory_order_release);
  return id;
}

void remove_forwarder(ForwarderId id) {
  Forwarders& f = forwarders();
  std::unique_lock lock(f.mutex);
  std::erase_if(f.list, [id](const auto& entry) { return entry.first == id; });
  g_forwarder_count.store(f.list.size(), std::memory_order_release);
}

std::string set_error_file(const std::string& path, std::uint64_t max_bytes, std::size_t keep_files) {
  if (path.empty()) return "the error file needs a path";
  if (max_bytes == 0) return "the error file's size limit must be above 0";
  const int fd = open_for_append(path);
  if (fd < 0) return fmt::format("cannot open {}: {}", path, std::strerror(errno));
  struct stat st {};
  const std::uint64_t size = ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  ErrorFile& f = error_file();
  std::lock_guard lock(f.mutex);
  if (f.fd >= 0) ::close(f.fd);
  f.fd = fd;
  f.path = path;
  f.max_bytes = max_bytes;
  f.keep_files = keep_files;
  f.size = size;
  g_error_file_open.store(true, std::memory_order_release);
  return {};
}

void clear_error_file() {
  ErrorFile& f = error_file();
  std::lock_guard lock(f.mutex);
  g_error_file_open.store(false, std::memory_order_release);
  if (f.fd >= 0) ::close(f.fd);
  f.fd = -1;
  f.path.clear();
}

ErrorFileStats error_file_stats() {
  ErrorFile& f = error_file();
  std::lock_guard lock(f.mutex);
  return f.stats;
}

}  // namespace tern::log
