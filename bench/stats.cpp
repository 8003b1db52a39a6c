#include "stats.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

namespace tern::bench {

namespace {
// Values below kSub are their own bucket; above, each power of two [2^e, 2^(e+1)) is
// split into kSub equal buckets.
constexpr std::size_t kGroups = 64 - 6 + 1;
}  // namespace

LatencyHistogram::LatencyHistogram() : buckets_(kGroups * kSub, 0) {}

std::size_t LatencyHistogram::bucket_of(std::uint64_t ns) noexcept {
  if (ns < kSub) return static_cast<std::size_t>(ns);
  const unsigned e = static_cast<unsigned>(std::bit_width(ns)) - 1;  // >= kSubBits
  const unsigned shift = e - kSubBits;
  const std::uint64_t sub = (ns >> shift) - kSub;  // 0 .. kSub-1
  return static_cast<std::size_t>(e - kSubBits + 1) * kSub + static_cast<std::size_t>(sub);
}

std::uint64_t LatencyHistogram::bucket_upper_bound(std::size_t index) noexcept {
  if (index < kSub) return index;
  const std::size_t group = index / kSub;  // 1 ..
  const std::uint64_t sub = index % kSub;
  const unsigned shift = static_cast<unsigned>(group - 1);
  const std::uint64_t lower = (kSub + sub) << shift;
  return lower + ((std::uint64_t{1} << shift) - 1);
}

void LatencyHistogram::record(std::uint64_t ns) noexcept {
  ++buckets_[bucket_of(ns)];
  ++count_;
  max_ = std::max(max_, ns);
}

void LatencyHistogram::merge(const LatencyHistogram& other) noexcept {
  for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

std::uint64_t LatencyHistogram::percentile(double q) const noexcept {
  if (count_ == 0) return 0;
  const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
  const std::uint64_t target = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= target) return std::min(bucket_upper_bound(i), max_);
  }
  return max_;
}

SequenceTracker::Arrival SequenceTracker::record(std::uint32_t seq) {
  const std::size_t word = seq / 64;
  const std::uint64_t bit = std::uint64_t{1} << (seq % 64);
  if (word >= seen_.size()) seen_.resize(std::max(word + 1, seen_.size() * 2), 0);
  if ((seen_[word] & bit) != 0) {
    ++duplicates_;
    return Arrival::duplicate;
  }
  seen_[word] |= bit;
  ++unique_;
  if (seq + 1 > next_) {
    // A jump forward is not yet an error: the gap is either filled later (then that
    // arrival counts as out of order) or it ends up lost.
    next_ = seq + 1;
    return Arrival::in_order;
  }
  ++out_of_order_;
  return Arrival::out_of_order;
}

double self_cpu_seconds() noexcept {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

std::optional<double> process_cpu_seconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(in, text)) return std::nullopt;
  // The command name (field 2) may hold spaces; fields are counted after its ')'.
  const auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int i = 3; i <= 15 && (fields >> field); ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  const long ticks = sysconf(_SC_CLK_TCK);
  if (ticks <= 0) return std::nullopt;
  return static_cast<double>(utime + stime) / static_cast<double>(ticks);
}

namespace {
std::optional<std::uint64_t> status_kib(int pid, std::string_view key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(key) && line.size() > key.size() && line[key.size()] == ':') {
      std::istringstream value(line.substr(key.size() + 1));
      std::uint64_t kib = 0;
      if (value >> kib) return kib * 1024;
    }
  }
  return std::nullopt;
}
}  // namespace

std::optional<std::uint64_t> process_rss_bytes(int pid) { return status_kib(pid, "VmRSS"); }
std::optional<std::uint64_t> process_peak_rss_bytes(int pid) { return status_kib(pid, "VmHWM"); }

}  // namespace tern::bench
