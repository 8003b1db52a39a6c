// Fakes for the broker core's tests: a clock that moves only when told, timers that fire,
// in deadline order, as it moves, and the decoding of what the broker sent.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <gtest/gtest.h>

#include <map>
#include <string_view>
#include <vector>

#include "broker/interfaces.hpp"
#include "mqtt/codec.hpp"

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

// Every packet in `bytes`, decoded; a frame that does not parse or decode fails the test.
inline std::vector<mqtt::Packet> decode_packets(std::string_view bytes, mqtt::Version v) {
  std::vector<mqtt::Packet> packets;
  while (!bytes.empty()) {
    auto frame = mqtt::parse_frame(bytes, 268435455);
    EXPECT_TRUE(frame.has_value());
    if (!frame || frame->size == 0) break;
    auto p = mqtt::decode(*frame, v);
    EXPECT_TRUE(p.has_value()) << (p ? "" : p.error().what);
    if (p) packets.push_back(*p);
    bytes.remove_prefix(frame->size);
  }
  return packets;
}

}  // namespace tern::broker::fakes
