#include "trace/sampler.hpp"

#include <cmath>

namespace tern::trace {
namespace {

std::uint64_t low_64_bits(std::string_view trace_id) noexcept {
  if (trace_id.size() < 16) return 0;
  std::uint64_t value = 0;
  for (const char c : trace_id.substr(trace_id.size() - 16)) {
    const int digit = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : 0;
    value = (value << 4) | static_cast<std::uint64_t>(digit);
  }
  return value;
}

}  // namespace

Sampler::Sampler(double ratio) noexcept
    : ratio_(std::isnan(ratio) || ratio <= 0.0 ? 0.0 : (ratio >= 1.0 ? 1.0 : ratio)),
      threshold_(0),
      keep_all_(ratio_ >= 1.0) {
  // 2^64 * ratio, computed in long double so 0.5 gives exactly 2^63.
  if (!keep_all_) threshold_ = static_cast<std::uint64_t>(std::ldexp(static_cast<long double>(ratio_), 64));
}

bool Sampler::should_sample_root(std::string_view trace_id) const noexcept {
  if (keep_all_) return true;
  if (threshold_ == 0) return false;
  return low_64_bits(trace_id) < threshold_;
}

bool Sampler::should_sample(const TraceContext& parent) const noexcept {
  if (!parent.sampled()) return false;
  return should_sample_root(parent.trace_id);
}

}  // namespace tern::trace
