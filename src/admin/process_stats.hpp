// ProcessStats: the process's own resource figures, read from /proc and getrusage on
// demand (nothing is sampled in the background).
//
// Thread-safety: plain functions; callable from any thread.
#pragma once

#include <cstdint>
#include <optional>

namespace tern::admin {

struct ProcessStats {
  std::optional<std::uint64_t> resident_memory_bytes;
  std::optional<std::uint64_t> virtual_memory_bytes;
  double cpu_seconds = 0;  // user + system
  std::optional<std::uint64_t> open_fds;
  std::optional<std::uint64_t> max_fds;
  std::optional<double> start_time_seconds;  // since the Unix epoch
};

ProcessStats read_process_stats();
// Only the resident set size (one small read), for frequent checks.
std::optional<std::uint64_t> read_resident_memory_bytes();

}  // namespace tern::admin
