#include "tern/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace tern {

std::chrono::milliseconds backoff_delay(const BackoffPolicy& policy, unsigned attempt, double random_unit) noexcept {
  const double initial = static_cast<double>(std::max<std::int64_t>(policy.initial.count(), 0));
  const double maximum = static_cast<double>(std::max<std::int64_t>(policy.maximum.count(), 0));
  const double multiplier = std::max(policy.multiplier, 1.0);
  // Clamp the exponent so that large attempt counts cannot overflow to infinity.
  const double grown = initial * std::pow(multiplier, std::min(attempt, 64u));
  const double delay = std::min(std::isfinite(grown) ? grown : maximum, maximum);
  const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
  const double unit = std::clamp(random_unit, 0.0, 1.0);
  const double result = delay * (1.0 - jitter * unit);
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(result)));
}

}  // namespace tern
