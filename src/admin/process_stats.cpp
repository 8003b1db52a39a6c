#include "admin/process_stats.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>

namespace tern::admin {
namespace {

std::optional<std::string> read_small_file(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

template <class T>
bool parse_number(std::string_view text, T& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end != text.data();
}

// Field `index` (1-based, as in proc(5)) of /proc/self/stat. The second field, the command
// name, is in parentheses and may hold spaces, so counting starts after its closing ')'.
std::optional<std::string_view> stat_field(std::string_view stat, int index) {
  const auto close = stat.rfind(')');
  if (close == std::string_view::npos || index < 3) return std::nullopt;
  std::string_view rest = stat.substr(close + 1);
  int field = 2;
  std::size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && rest[i] == ' ') ++i;
    const std::size_t start = i;
    while (i < rest.size() && rest[i] != ' ' && rest[i] != '\n') ++i;
    if (start == i) break;
    if (++field == index) return rest.substr(start, i - start);
  }
  return std::nullopt;
}

std::optional<double> process_start_time() {
  const auto stat = read_small_file("/proc/self/stat");
  const auto proc_stat = read_small_file("/proc/stat");
  if (!stat || !proc_stat) return std::nullopt;
  const auto start_field = stat_field(*stat, 22);
  std::uint64_t start_ticks = 0;
  if (!start_field || !parse_number(*start_field, start_ticks)) return std::nullopt;
  const auto btime_at = proc_stat->find("\nbtime ");
  if (btime_at == std::string::npos) return std::nullopt;
  std::string_view btime_text = std::string_view(*proc_stat).substr(btime_at + 7);
  btime_text = btime_text.substr(0, btime_text.find('\n'));
  std::uint64_t boot_time = 0;
  if (!parse_number(btime_text, boot_time)) return std::nullopt;
  const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
  if (ticks_per_second <= 0) return std::nullopt;
  return static_cast<double>(boot_time) + static_cast<double>(start_ticks) / static_cast<double>(ticks_per_second);
}

}  // namespace

std::optional<std::uint64_t> read_resident_memory_bytes() {
  const long page_size = ::sysconf(_SC_PAGESIZE);
  const auto statm = read_small_file("/proc/self/statm");
  if (!statm || page_size <= 0) return std::nullopt;
  std::istringstream in(*statm);
  std::uint64_t size_pages = 0;
  std::uint64_t resident_pages = 0;
  if (!(in >> size_pages >> resident_pages)) return std::nullopt;
  return resident_pages * static_cast<std::uint64_t>(page_size);
}

ProcessStats read_process_stats() {
  ProcessStats stats;
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (const auto statm = read_small_file("/proc/self/statm"); statm && page_size > 0) {
    std::istringstream in(*statm);
    std::uint64_t size_pages = 0;
    std::uint64_t resident_pages = 0;
    if (in >> size_pages >> resident_pages) {
      stats.virtual_memory_bytes = size_pages * static_cast<std::uint64_t>(page_size);
      stats.resident_memory_bytes = resident_pages * static_cast<std::uint64_t>(page_size);
    }
  }
  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) == 0) {
    const auto seconds = [](const timeval& t) {
      return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    stats.cpu_seconds = seconds(usage.ru_utime) + seconds(usage.ru_stime);
  }
  std::error_code ec;
  std::filesystem::directory_iterator fds("/proc/self/fd", ec);
  if (!ec) {
    std::uint64_t count = 0;
    for (auto it = std::filesystem::begin(fds); it != std::filesystem::end(fds); it.increment(ec)) {
      if (ec) break;
      ++count;
    }
    // The iterator's own descriptor is counted; it is gone once the scan ends.
    if (!ec) stats.open_fds = count > 0 ? count - 1 : 0;
  }
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    stats.max_fds = static_cast<std::uint64_t>(limit.rlim_cur);
  }
  stats.start_time_seconds = process_start_time();
  return stats;
}

}  // namespace tern::admin
