// Time made explicit for the broker core's tests: a clock that moves only when told, and
// timers that fire, in deadline order, as it moves.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>

#include "broker/interfaces.hpp"

namespace tern::broker::fakes {

class FakeClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point now() const override { return now_; }
  std::chrono::steady_clock::time_point now_{std::chrono::seconds(1000)};
};

class FakeTimers final : public Timers {
 public:
  explicit FakeTimers(FakeClock& clock) : clock_(clock) {}
  Id schedule(std::chrono::milliseconds delay, std::function<void()> fn) override {
    const Id id = ++last_;
    pending_[id] = Entry{clock_.now_ + delay, std::move(fn)};
    return id;
  }
  void cancel(Id id) override { pending_.erase(id); }
  // Moves time forward, firing due timers in deadline order.
  void advance(std::chrono::milliseconds by) {
    const auto until = clock_.now_ + by;
    for (;;) {
      auto next = pending_.end();
      for (auto it = pending_.begin(); it != pending_.end(); ++it) {
        if (it->second.at <= until && (next == pending_.end() || it->second.at < next->second.at)) next = it;
      }
      if (next == pending_.end()) break;
      clock_.now_ = std::max(clock_.now_, next->second.at);
      auto fn = std::move(next->second.fn);
      pending_.erase(next);
      fn();
    }
    clock_.now_ = until;
  }
  std::size_t pending() const { return pending_.size(); }

 private:
  struct Entry {
    std::chrono::steady_clock::time_point at;
    std::function<void()> fn;
  };
  FakeClock& clock_;
  std::map<Id, Entry> pending_;
  Id last_ = 0;
};

}  // namespace tern::broker::fakes
