#include "sdk/dedup.hpp"

namespace tern::sdk {

void DedupWindow::expire(Clock::time_point now) {
  while (!order_.empty() && (order_.front().second + window_ <= now || order_.size() > capacity_)) {
    auto it = seen_.find(order_.front().first);
    // A re-recorded id has a newer entry further back; only the newest one owns the map slot.
    if (it != seen_.end() && it->second == order_.front().second) seen_.erase(it);
    order_.pop_front();
  }
}

bool DedupWindow::contains(const std::string& id, Clock::time_point now) {
  expire(now);
  auto it = seen_.find(id);
  return it != seen_.end() && it->second + window_ > now;
}

void DedupWindow::record(const std::string& id, Clock::time_point now) {
  seen_[id] = now;
  order_.emplace_back(id, now);
  expire(now);
}

}  // namespace tern::sdk
