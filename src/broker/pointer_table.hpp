// PointerTable: a hash table that owns its elements and holds one pointer per slot.
//
// The broker keeps one connection and one session for every client; a node-based table
// (std::unordered_map, std::unordered_set) adds a node of 24 to 32 bytes to each, and its
// bucket array a pointer more. Here the elements are the table's slots: open addressing
// with linear probing over a power-of-two array that is at most 3/4 full, Fibonacci
// hashing over the key's hash, and backward-shift deletion (no tombstones, so a table that
// churns does not fill up with them). An element's address is stable while it is in the
// table.
//
// Traits: `static Key key(const T&)` and `static std::uint64_t hash(Key)`; keys compare
// with ==. Thread-safety: none (the broker's thread).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace tern::broker {

template <class T, class Traits>
class PointerTable {
 public:
  using Key = decltype(Traits::key(std::declval<const T&>()));

  PointerTable() = default;
  PointerTable(const PointerTable&) = delete;
  PointerTable& operator=(const PointerTable&) = delete;
  ~PointerTable() {
    for (T* item : slots_) delete item;
  }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  // Slots allocated (for tests and memory accounting).
  std::size_t capacity() const noexcept { return slots_.size(); }

  T* find(const Key& key) const {
    if (size_ == 0) return nullptr;
    for (std::size_t i = home(key);; i = next(i)) {
      T* item = slots_[i];
      if (item == nullptr) return nullptr;
      if (Traits::key(*item) == key) return item;
    }
  }

  // Takes `item` unless an element with the same key is there already (then it is given back).
  std::unique_ptr<T> insert(std::unique_ptr<T> item) {
    if ((size_ + 1) * 4 > slots_.size() * 3) resize(slots_.empty() ? kMinCapacity : slots_.size() * 2);
    const Key key = Traits::key(*item);
    std::size_t i = home(key);
    for (; slots_[i] != nullptr; i = next(i)) {
      if (Traits::key(*slots_[i]) == key) return item;
    }
    slots_[i] = item.release();
    ++size_;
    return nullptr;
  }

  // Removes the element with this key and hands it over; null when there is none.
  std::unique_ptr<T> erase(const Key& key) {
    if (size_ == 0) return nullptr;
    std::size_t i = home(key);
    for (; slots_[i] != nullptr; i = next(i)) {
      if (Traits::key(*slots_[i]) == key) break;
    }
    if (slots_[i] == nullptr) return nullptr;
    std::unique_ptr<T> out(slots_[i]);
    slots_[i] = nullptr;
    --size_;
    // Backward shift: pull later elements of the probe run into the hole when the hole
    // lies on their way from their home slot.
    for (std::size_t j = next(i);; j = next(j)) {
      T* item = slots_[j];
      if (item == nullptr) break;
      const std::size_t h = home(Traits::key(*item));
      // The item may move to the hole when its home is not in (i, j] (cyclically).
      const bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
      if (stays) continue;
      slots_[i] = item;
      slots_[j] = nullptr;
      i = j;
    }
    // A flood of clients that is gone again should not keep its peak capacity.
    if (slots_.size() > kKeptCapacity && size_ * 8 < slots_.size()) resize(slots_.size() / 2);
    return out;
  }

  // Calls f(T&) for every element, in no particular order. `f` must not insert or erase.
  template <class F>
  void for_each(F&& f) const {
    for (T* item : slots_) {
      if (item != nullptr) f(*item);
    }
  }

 private:
  static constexpr std::size_t kMinCapacity = 16;
  static constexpr std::size_t kKeptCapacity = 1024;

  std::size_t home(const Key& key) const noexcept {
    // Fibonacci hashing: the top bits of the product, which depend on every bit of the hash.
    return static_cast<std::size_t>((Traits::hash(key) * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  std::size_t next(std::size_t i) const noexcept { return (i + 1) & (slots_.size() - 1); }

  void resize(std::size_t capacity) {
    std::vector<T*> old(capacity, nullptr);
    old.swap(slots_);
    shift_ = 64 - static_cast<unsigned>(std::countr_zero(capacity));
    for (T* item : old) {
      if (item == nullptr) continue;
      std::size_t i = home(Traits::key(*item));
      while (slots_[i] != nullptr) i = next(i);
      slots_[i] = item;
    }
  }

  std::vector<T*> slots_;
  std::size_t size_ = 0;
  unsigned shift_ = 64;
};

}  // namespace tern::broker
