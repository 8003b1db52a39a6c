// Measurement helpers: a latency histogram, per-publisher sequence checking and
// process figures read from /proc and getrusage.
//
// Thread-safety: none; every object is owned by one worker thread and merged after
// the run.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace tern::bench {

// Log-linear histogram of nanosecond values: 64 sub-buckets per power of two, so a
// reported percentile is at most 1.6 % above the true value. Fixed size (30 KiB), no
// allocation when recording.
class LatencyHistogram {
 public:
  LatencyHistogram();
  void record(std::uint64_t ns) noexcept;
  void merge(const LatencyHistogram& other) noexcept;
  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t max() const noexcept { return max_; }
  // The upper bound of the bucket holding quantile q (0..1], never above max(); 0 if empty.
  std::uint64_t percentile(double q) const noexcept;

 private:
  static constexpr unsigned kSubBits = 6;
  static constexpr unsigned kSub = 1u << kSubBits;
  static std::size_t bucket_of(std::uint64_t ns) noexcept;
  static std::uint64_t bucket_upper_bound(std::size_t index) noexcept;
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

// What one subscriber saw of one publisher's numbered messages.
class SequenceTracker {
 public:
  enum class Arrival : std::uint8_t { in_order, duplicate, out_of_order };
  Arrival record(std::uint32_t seq);
  std::uint64_t unique() const noexcept { return unique_; }
  std::uint64_t duplicates() const noexcept { return duplicates_; }
  std::uint64_t out_of_order() const noexcept { return out_of_order_; }

 private:
  std::vector<std::uint64_t> seen_;  // bit per sequence number
  std::uint32_t next_ = 0;           // highest sequence seen + 1
  std::uint64_t unique_ = 0;
  std::uint64_t duplicates_ = 0;
  std::uint64_t out_of_order_ = 0;
};

// This process's user + system CPU seconds (all threads).
double self_cpu_seconds() noexcept;
// utime + stime of another process, from /proc/PID/stat.
std::optional<double> process_cpu_seconds(int pid);
// VmRSS and VmHWM of a process, from /proc/PID/status, in bytes.
std::optional<std::uint64_t> process_rss_bytes(int pid);
std::optional<std::uint64_t> process_peak_rss_bytes(int pid);

}  // namespace tern::bench
