// Exponential backoff with jitter, used for reconnects and handler retries.
#pragma once

#include <chrono>
#include <cstdint>

namespace tern {

struct BackoffPolicy {
  std::chrono::milliseconds initial{100};
  std::chrono::milliseconds maximum{10000};
  double multiplier = 2.0;
  // Fraction of the delay that is randomised: the delay is drawn uniformly from
  // [d * (1 - jitter), d]. 0 gives exact exponential delays.
  double jitter = 0.5;
};

// The delay before retry number `attempt` (0 for the first retry): min(maximum,
// initial * multiplier^attempt), less up to `jitter` of it. `random_unit` in [0, 1)
// picks the point in the jitter range, so callers decide where randomness comes from.
std::chrono::milliseconds backoff_delay(const BackoffPolicy& policy, unsigned attempt,
                                        double random_unit) noexcept;

}  // namespace tern
