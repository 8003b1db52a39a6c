#include "broker/pointer_table.hpp"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <string_view>

namespace tern::broker {
namespace {

struct Named {
  std::string name;
  int value = 0;
};
struct ByName {
  static std::string_view key(const Named& n) noexcept { return n.name; }
  static std::uint64_t hash(std::string_view s) noexcept { return std::hash<std::string_view>{}(s); }
};
using NameTable = PointerTable<Named, ByName>;

struct Numbered {
  std::uint64_t id = 0;
};
// Every key hashes alike: each lookup walks one long probe run, and deletion must keep
// the run unbroken.
struct CollidingById {
  static std::uint64_t key(const Numbered& n) noexcept { return n.id; }
  static std::uint64_t hash(std::uint64_t) noexcept { return 42; }
};
struct ById {
  static std::uint64_t key(const Numbered& n) noexcept { return n.id; }
  static std::uint64_t hash(std::uint64_t id) noexcept { return id; }
};

std::unique_ptr<Named> named(std::string name, int value) {
  return std::make_unique<Named>(Named{std::move(name), value});
}

TEST(PointerTableTest, FindsWhatWasInsertedByAnEqualKey) {
  NameTable t;
  EXPECT_EQ(t.find("a"), nullptr);
  EXPECT_EQ(t.insert(named("a", 1)), nullptr);
  EXPECT_EQ(t.insert(named("b", 2)), nullptr);
  const std::string key = "b";
  ASSERT_NE(t.find(key), nullptr);
  EXPECT_EQ(t.find(key)->value, 2);
  EXPECT_EQ(t.find("a")->value, 1);
  EXPECT_EQ(t.find("c"), nullptr);
  EXPECT_EQ(t.size(), 2u);
}

TEST(PointerTableTest, RefusesASecondElementWithTheSameKeyAndGivesItBack) {
  NameTable t;
  ASSERT_EQ(t.insert(named("a", 1)), nullptr);
  auto refused = t.insert(named("a", 2));
  ASSERT_NE(refused, nullptr);
  EXPECT_EQ(refused->value, 2);
  EXPECT_EQ(t.find("a")->value, 1);
  EXPECT_EQ(t.size(), 1u);
}

TEST(PointerTableTest, EraseHandsTheElementOverAndForgetsIt) {
  NameTable t;
  t.insert(named("a", 1));
  Named* before = t.find("a");
  auto out = t.erase("a");
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out.get(), before);  // the same object: addresses are stable
  EXPECT_EQ(t.find("a"), nullptr);
  EXPECT_EQ(t.erase("a"), nullptr);
  EXPECT_TRUE(t.empty());
}

TEST(PointerTableTest, DeletionInsideOneProbeRunKeepsTheOthersReachable) {
  PointerTable<Numbered, CollidingById> t;
  for (std::uint64_t i = 0; i < 12; ++i) t.insert(std::make_unique<Numbered>(Numbered{i}));
  // Remove from the front, the middle and the end of the run.
  std::set<std::uint64_t> erased;
  for (std::uint64_t gone : {0u, 5u, 11u, 6u}) {
    ASSERT_NE(t.erase(gone), nullptr) << gone;
    erased.insert(gone);
    for (std::uint64_t i = 0; i < 12; ++i) {
      if (erased.contains(i)) {
        ASSERT_EQ(t.find(i), nullptr) << i;
      } else {
        ASSERT_NE(t.find(i), nullptr) << "lost " << i << " after erasing " << gone;
      }
    }
  }
  EXPECT_EQ(t.size(), 8u);
}

// Random inserts and erases against std::map, through growth, wrap-around of probe runs
// at the end of the array and shrinking.
TEST(PointerTableTest, AgreesWithAMapThroughRandomChurn) {
  PointerTable<Numbered, ById> t;
  std::map<std::uint64_t, Numbered*> model;
  std::mt19937_64 rng(7);
  for (int round = 0; round < 200000; ++round) {
    // Phases of growth and of shrinking, so that the table resizes both ways.
    const bool growing = (round / 20000) % 2 == 0;
    const std::uint64_t id = rng() % 50000;
    if (rng() % 100 < (growing ? 70u : 20u)) {
      auto item = std::make_unique<Numbered>(Numbered{id});
      Numbered* raw = item.get();
      const bool fresh = !model.contains(id);
      auto refused = t.insert(std::move(item));
      ASSERT_EQ(refused == nullptr, fresh);
      if (fresh) model[id] = raw;
    } else {
      auto out = t.erase(id);
      const auto it = model.find(id);
      ASSERT_EQ(out != nullptr, it != model.end());
      if (out) {
        ASSERT_EQ(out.get(), it->second);
        model.erase(it);
      }
    }
    if (round % 997 == 0) {
      ASSERT_EQ(t.size(), model.size());
      for (const auto& [key, ptr] : model) ASSERT_EQ(t.find(key), ptr);
      ASSERT_LE(t.size() * 4, t.capacity() * 3);
    }
  }
  std::size_t seen = 0;
  t.for_each([&](const Numbered& n) {
    ++seen;
    EXPECT_TRUE(model.contains(n.id));
  });
  EXPECT_EQ(seen, model.size());
}

TEST(PointerTableTest, GivesBackItsPeakCapacityWhenItEmpties) {
  PointerTable<Numbered, ById> t;
  for (std::uint64_t i = 0; i < 20000; ++i) t.insert(std::make_unique<Numbered>(Numbered{i}));
  const std::size_t peak = t.capacity();
  EXPECT_GE(peak, 20000u * 4 / 3);
  for (std::uint64_t i = 0; i < 20000; ++i) ASSERT_NE(t.erase(i), nullptr);
  EXPECT_LE(t.capacity(), 2048u);
  EXPECT_LT(t.capacity(), peak);
}

}  // namespace
}  // namespace tern::broker
