#include "broker/deadline_queue.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace tern::broker {
namespace {

using namespace std::chrono_literals;
using TimePoint = std::chrono::steady_clock::time_point;

struct Item {
  int name = 0;
  std::uint32_t deadline_slot = kDeadlineNone;
};

TimePoint at(int ms) { return TimePoint(std::chrono::milliseconds(ms)); }

std::vector<int> drain(DeadlineQueue<Item>& q, TimePoint now) {
  std::vector<int> out;
  while (Item* item = q.pop_due(now)) out.push_back(item->name);
  return out;
}

TEST(DeadlineQueueTest, PopsOnlyWhatIsDueInDeadlineOrder) {
  DeadlineQueue<Item> q;
  Item a{1}, b{2}, c{3};
  q.set(b, at(20));
  q.set(c, at(30));
  q.set(a, at(10));
  EXPECT_EQ(q.earliest(), at(10));
  EXPECT_EQ(drain(q, at(25)), (std::vector<int>{1, 2}));
  EXPECT_EQ(a.deadline_slot, kDeadlineNone);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(drain(q, at(29)), std::vector<int>{});
  EXPECT_EQ(drain(q, at(30)), std::vector<int>{3});
  EXPECT_TRUE(q.empty());
}

TEST(DeadlineQueueTest, MovingAnItemLaterOrEarlierReordersIt) {
  DeadlineQueue<Item> q;
  Item a{1}, b{2}, c{3};
  q.set(a, at(10));
  q.set(b, at(20));
  q.set(c, at(30));
  q.set(a, at(40));  // later: activity postponed it
  q.set(c, at(5));   // earlier
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(drain(q, at(100)), (std::vector<int>{3, 2, 1}));
}

TEST(DeadlineQueueTest, RemovedItemsNeverFallDue) {
  DeadlineQueue<Item> q;
  Item a{1}, b{2}, c{3};
  q.set(a, at(10));
  q.set(b, at(20));
  q.set(c, at(30));
  q.remove(a);  // the earliest
  q.remove(c);  // the last
  q.remove(c);  // twice: nothing happens
  EXPECT_EQ(drain(q, at(100)), std::vector<int>{2});
}

TEST(DeadlineQueueTest, StaysOrderedUnderRandomSetsAndRemoves) {
  std::mt19937 rng(7);
  std::vector<Item> items(500);
  std::vector<int> deadline(items.size(), -1);
  for (std::size_t i = 0; i < items.size(); ++i) items[i].name = static_cast<int>(i);
  DeadlineQueue<Item> q;
  std::uniform_int_distribution<int> pick(0, static_cast<int>(items.size()) - 1);
  std::uniform_int_distribution<int> when(0, 10000);
  for (int step = 0; step < 20000; ++step) {
    const int i = pick(rng);
    if (step % 5 == 0) {
      q.remove(items[static_cast<std::size_t>(i)]);
      deadline[static_cast<std::size_t>(i)] = -1;
    } else {
      const int t = when(rng);
      q.set(items[static_cast<std::size_t>(i)], at(t));
      deadline[static_cast<std::size_t>(i)] = t;
    }
  }
  int last = -1;
  std::size_t popped = 0;
  while (Item* item = q.pop_due(at(10000))) {
    const int t = deadline[static_cast<std::size_t>(item->name)];
    ASSERT_GE(t, last);
    last = t;
    ++popped;
  }
  EXPECT_EQ(popped, static_cast<std::size_t>(std::count_if(deadline.begin(), deadline.end(), [](int t) { return t >= 0; })));
}

}  // namespace
}  // namespace tern::broker
