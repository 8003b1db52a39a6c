// A token bucket for rate limits: `rate` tokens a second, at most `capacity` saved up.
// Taking more than is there drives the level negative (a debt), so one large message can
// pass and the average rate still holds.
//
// Thread-safety: a value; one owner.
#pragma once

#include <algorithm>
#include <chrono>

namespace tern::policy {

class TokenBucket {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  TokenBucket(double rate, double capacity, TimePoint now) : rate_(rate), capacity_(capacity), level_(capacity), last_(now) {}

  // Whether the bucket is not in debt (after refilling up to `now`).
  bool available(TimePoint now) {
    refill(now);
    return level_ > 0;
  }
  void take(double amount) { level_ -= amount; }
  // How long until the debt is paid back (zero when there is none).
  std::chrono::milliseconds time_to_recover(TimePoint now) {
    refill(now);
    if (level_ >= 0 || rate_ <= 0) return std::chrono::milliseconds(0);
    return std::chrono::milliseconds(static_cast<long long>(-level_ / rate_ * 1000.0) + 1);
  }
  double level() const noexcept { return level_; }

 private:
  void refill(TimePoint now) {
    const double seconds = std::chrono::duration<double>(now - last_).count();
    if (seconds > 0) {
      level_ = std::min(capacity_, level_ + seconds * rate_);
      last_ = now;
    }
  }
  double rate_;
  double capacity_;
  double level_;
  TimePoint last_;
};

}  // namespace tern::policy
