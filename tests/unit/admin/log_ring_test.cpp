#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "core/log.hpp"

namespace tern::log {
namespace {

// The ring is process-wide: each test sets the level and capacity it needs and restores
// the defaults, so tests do not depend on each other's lines.
class LogRing : public ::testing::Test {
 protected:
  void SetUp() override {
    set_level(Level::debug);
    set_ring_capacity(0);  // empties it
  }
  void TearDown() override {
    set_ring_capacity(kDefaultRingCapacity);
    set_level(Level::info);
  }
};

TEST_F(LogRing, KeepsOnlyTheLastCapacityLines) {
  set_ring_capacity(4);
  for (int i = 0; i < 10; ++i) info("test", "line {}", i);
  const auto lines = recent_lines(Level::debug, 100);
  ASSERT_EQ(lines.size(), 4U);
  EXPECT_NE(lines.front().json.find("\"msg\":\"line 6\""), std::string::npos) << lines.front().json;
  EXPECT_NE(lines.back().json.find("\"msg\":\"line 9\""), std::string::npos) << lines.back().json;
  for (std::size_t i = 1; i < lines.size(); ++i) EXPECT_EQ(lines[i].seq, lines[i - 1].seq + 1);
  EXPECT_EQ(lines.back().json.back(), '}');  // stored without the newline
}

TEST_F(LogRing, ShrinkingDropsTheOldest) {
  set_ring_capacity(10);
  for (int i = 0; i < 10; ++i) info("test", "line {}", i);
  set_ring_capacity(2);
  const auto lines = recent_lines(Level::debug, 100);
  ASSERT_EQ(lines.size(), 2U);
  EXPECT_NE(lines[0].json.find("line 8"), std::string::npos);
  EXPECT_EQ(ring_capacity(), 2U);
}

TEST_F(LogRing, ZeroCapacityKeepsNothing) {
  info("test", "not kept");
  EXPECT_TRUE(recent_lines(Level::debug, 100).empty());
}

TEST_F(LogRing, FiltersByLevelAndLimitsToTheNewest) {
  set_ring_capacity(100);
  debug("test", "d1");
  warn("test", "w1");
  info("test", "i1");
  error("test", "e1");
  warn("test", "w2");
  const auto warnings = recent_lines(Level::warning, 100);
  ASSERT_EQ(warnings.size(), 3U);
  EXPECT_NE(warnings[0].json.find("w1"), std::string::npos);
  EXPECT_NE(warnings[1].json.find("e1"), std::string::npos);
  EXPECT_NE(warnings[2].json.find("w2"), std::string::npos);
  const auto newest_two = recent_lines(Level::warning, 2);
  ASSERT_EQ(newest_two.size(), 2U);
  EXPECT_NE(newest_two[0].json.find("e1"), std::string::npos);
  EXPECT_EQ(recent_lines(Level::error, 100).size(), 1U);
  EXPECT_TRUE(recent_lines(Level::debug, 0).empty());
}

TEST_F(LogRing, LinesBelowTheLevelAreNotKept) {
  set_ring_capacity(10);
  set_level(Level::warning);
  info("test", "filtered");
  warn("test", "kept");
  const auto lines = recent_lines(Level::debug, 10);
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_NE(lines[0].json.find("kept"), std::string::npos);
}

TEST_F(LogRing, ConcurrentWritersStayBoundedAndWhole) {
  constexpr std::size_t kCapacity = 64;
  constexpr int kThreads = 4;
  constexpr int kLines = 500;
  set_ring_capacity(kCapacity);
  set_level(Level::error);  // quiet stderr: only the ring matters here
  const auto before = lines_written();
  std::vector<std::thread> threads;
  std::atomic<bool> reading{true};
  std::thread reader([&] {
    while (reading.load()) {
      const auto lines = recent_lines(Level::debug, kCapacity * 2);
      ASSERT_LE(lines.size(), kCapacity);
    }
  });
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kLines; ++i) error("thread", "t{} n{}", t, i);
    });
  }
  for (auto& th : threads) th.join();
  reading = false;
  reader.join();
  EXPECT_EQ(lines_written() - before, static_cast<std::uint64_t>(kThreads * kLines));
  const auto lines = recent_lines(Level::debug, 1000);
  ASSERT_EQ(lines.size(), kCapacity);
  for (std::size_t i = 1; i < lines.size(); ++i) EXPECT_EQ(lines[i].seq, lines[i - 1].seq + 1);
  for (const auto& line : lines) {
    EXPECT_TRUE(line.json.starts_with("{\"time\":")) << line.json;
    EXPECT_TRUE(line.json.ends_with("\"}")) << line.json;
  }
}

TEST_F(LogRing, ForwardersGetEveryLineButAreNotReentered) {
  set_level(Level::info);
  std::vector<std::string> seen;
  int depth = 0;
  int max_depth = 0;
  const auto id = add_forwarder([&](Level level, std::string_view line) {
    ++depth;
    max_depth = std::max(max_depth, depth);
    seen.emplace_back(line);
    EXPECT_EQ(level, line.find("\"warning\"") != std::string_view::npos ? Level::warning : Level::info);
    // Logging from inside a forwarder (as the broker does while publishing) must not
    // come back here.
    warn("forwarder", "inner");
    --depth;
  });
  info("test", "outer1");
  warn("test", "outer2");
  debug("test", "below the level");
  remove_forwarder(id);
  info("test", "after removal");
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_NE(seen[0].find("outer1"), std::string::npos);
  EXPECT_NE(seen[1].find("outer2"), std::string::npos);
  EXPECT_EQ(max_depth, 1);
}

TEST_F(LogRing, AThrowingForwarderDoesNotStopOthers) {
  set_level(Level::info);
  int calls = 0;
  const auto a = add_forwarder([](Level, std::string_view) { throw std::runtime_error("boom"); });
  const auto b = add_forwarder([&](Level, std::string_view) { ++calls; });
  info("test", "one");
  info("test", "two");
  remove_forwarder(a);
  remove_forwarder(b);
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace tern::log
