// DeadlineQueue: the next deadline of every connection (CONNECT timeout, keep-alive) in one
// binary min-heap, so that the broker keeps a single timer armed for the earliest of them
// instead of one timer per connection. An idle connection costs one 16-byte heap entry; the
// element remembers its position in `deadline_slot`, so moving or removing it is O(log n)
// without a search.
//
// Thread-safety: none; the broker's thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace tern::broker {

// T has a member `std::uint32_t deadline_slot`, kDeadlineNone while T is not queued.
inline constexpr std::uint32_t kDeadlineNone = std::numeric_limits<std::uint32_t>::max();

template <class T>
class DeadlineQueue {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  bool empty() const noexcept { return heap_.empty(); }
  std::size_t size() const noexcept { return heap_.size(); }
  time_point earliest() const { return heap_.front().at; }

  // Queues `item` for `at`, or moves it there if it is queued already.
  void set(T& item, time_point at) {
    if (item.deadline_slot == kDeadlineNone) {
      heap_.push_back(Entry{at, &item});
      item.deadline_slot = static_cast<std::uint32_t>(heap_.size() - 1);
      sift_up(heap_.size() - 1);
      return;
    }
    const std::size_t i = item.deadline_slot;
    const time_point before = heap_[i].at;
    heap_[i].at = at;
    if (at < before) {
      sift_up(i);
    } else {
      sift_down(i);
    }
  }

  void remove(T& item) {
    if (item.deadline_slot == kDeadlineNone) return;
    const std::size_t i = item.deadline_slot;
    item.deadline_slot = kDeadlineNone;
    const std::size_t last = heap_.size() - 1;
    if (i != last) {
      const time_point removed_at = heap_[i].at;
      place(i, heap_[last]);
      heap_.pop_back();
      if (heap_[i].at < removed_at) {
        sift_up(i);
      } else {
        sift_down(i);
      }
    } else {
      heap_.pop_back();
    }
    // A flood of connections that is gone again should not keep its peak capacity.
    if (heap_.capacity() > kKeptCapacity && heap_.size() < heap_.capacity() / 4) heap_.shrink_to_fit();
  }

  // Removes and returns an element whose deadline is at or before `now`; null when none is.
  T* pop_due(time_point now) {
    if (heap_.empty() || heap_.front().at > now) return nullptr;
    T* item = heap_.front().item;
    remove(*item);
    return item;
  }

 private:
  static constexpr std::size_t kKeptCapacity = 1024;

  struct Entry {
    time_point at;
    T* item;
  };

  void place(std::size_t i, Entry e) {
    heap_[i] = e;
    e.item->deadline_slot = static_cast<std::uint32_t>(i);
  }

  void sift_up(std::size_t i) {
    const Entry e = heap_[i];
    while (i > 0) {
      const std::size_t parent = (i - 1) / 2;
      if (!(e.at < heap_[parent].at)) break;
      place(i, heap_[parent]);
      i = parent;
    }
    place(i, e);
  }

  void sift_down(std::size_t i) {
    const Entry e = heap_[i];
    const std::size_t n = heap_.size();
    for (;;) {
      std::size_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && heap_[child + 1].at < heap_[child].at) ++child;
      if (!(heap_[child].at < e.at)) break;
      place(i, heap_[child]);
      i = child;
    }
    place(i, e);
  }

  std::vector<Entry> heap_;
};

}  // namespace tern::broker
