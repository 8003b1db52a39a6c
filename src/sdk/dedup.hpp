// Remembers the tern-ids of handled events for a time window so that a redelivered
// event (QoS 1 resend, replay, producer retry) is not handled twice. Bounded: beyond
// `capacity` ids the oldest are forgotten first.
//
// Thread-safety: one thread.
#pragma once

#include <chrono>
#include <deque>
#include <string>
#include <unordered_map>

namespace tern::sdk {

class DedupWindow {
 public:
  using Clock = std::chrono::steady_clock;
  DedupWindow(std::chrono::milliseconds window, std::size_t capacity) : window_(window), capacity_(capacity) {}

  // Whether `id` was recorded less than `window` before `now`.
  bool contains(const std::string& id, Clock::time_point now);
  void record(const std::string& id, Clock::time_point now);
  std::size_t size() const noexcept { return seen_.size(); }

 private:
  void expire(Clock::time_point now);
  std::chrono::milliseconds window_;
  std::size_t capacity_;
  std::unordered_map<std::string, Clock::time_point> seen_;
  std::deque<std::pair<std::string, Clock::time_point>> order_;
};

}  // namespace tern::sdk
