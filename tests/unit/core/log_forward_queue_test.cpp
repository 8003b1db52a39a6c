#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "core/log.hpp"
#include "core/log_forward_queue.hpp"

namespace tern::log {
namespace {

// The publishing thread of these tests is the test's own: a scheduled drain waits in
// `scheduled` until run_scheduled().
class ForwardQueueTest : public ::testing::Test {
 protected:
  void SetUp() override { set_level(Level::debug); }
  void TearDown() override { set_level(Level::info); }

  ForwardQueue::ScheduleDrain scheduler() {
    return [this](std::function<void()> drain) { scheduled_.push_back(std::move(drain)); };
  }
  void run_scheduled() {
    auto now = std::move(scheduled_);
    scheduled_.clear();
    for (auto& drain : now) drain();
  }

  std::vector<std::function<void()>> scheduled_;
  std::vector<std::string> published_;
};

TEST_F(ForwardQueueTest, OneDrainIsScheduledForManyLinesAndPublishesThemInOrder) {
  ForwardQueue queue(Level::info, 16, scheduler(), [this](std::deque<PendingLine>& lines) {
    for (const auto& line : lines) published_.push_back(line.json);
    return ForwardCounts{lines.size(), 0};
  });
  debug("test", "below the level");
  info("test", "first");
  warn("test", "second");
  EXPECT_EQ(scheduled_.size(), 1U);
  EXPECT_TRUE(published_.empty());
  run_scheduled();
  ASSERT_EQ(published_.size(), 2U);
  EXPECT_NE(published_[0].find("\"msg\":\"first\""), std::string::npos);
  EXPECT_NE(published_[1].find("\"msg\":\"second\""), std::string::npos);
  EXPECT_EQ(queue.counts().forwarded, 2U);
  EXPECT_EQ(queue.counts().dropped, 0U);
}

TEST_F(ForwardQueueTest, RefusedByAdmitOrBeyondTheBoundOrByPublishIsCountedAsDropped) {
  int admitted = 0;
  ForwardQueue queue(
      Level::info, 2, scheduler(),
      [](std::deque<PendingLine>& lines) { return ForwardCounts{lines.size() - 1, 1}; },
      [&admitted] { return ++admitted % 2 == 1; });  // every other line
  for (int i = 0; i < 6; ++i) info("test", "line {}", i);
  // Lines 0, 2 and 4 admitted; 4 finds the bound of 2 reached.
  run_scheduled();
  EXPECT_EQ(queue.counts().forwarded, 1U);
  EXPECT_EQ(queue.counts().dropped, 5U);
}

TEST_F(ForwardQueueTest, LinesLoggedWhilePublishingAreNotQueued) {
  ForwardQueue queue(Level::debug, 16, scheduler(), [this](std::deque<PendingLine>& lines) {
    for (const auto& line : lines) {
      published_.push_back(line.json);
      debug("broker", "routing a forwarded line");
    }
    return ForwardCounts{lines.size(), 0};
  });
  info("test", "one");
  run_scheduled();
  EXPECT_TRUE(scheduled_.empty());
  EXPECT_EQ(published_.size(), 1U);
  info("test", "two");  // logged after publishing: forwarded again
  EXPECT_EQ(scheduled_.size(), 1U);
}

TEST_F(ForwardQueueTest, ADrainScheduledBeforeDestructionDoesNothing) {
  std::function<void()> late;
  {
    ForwardQueue queue(Level::info, 16, [&late](std::function<void()> drain) { late = std::move(drain); },
                       [this](std::deque<PendingLine>& lines) {
                         for (const auto& line : lines) published_.push_back(line.json);
                         return ForwardCounts{lines.size(), 0};
                       });
    info("test", "never published");
  }
  ASSERT_TRUE(late);
  late();
  EXPECT_TRUE(published_.empty());
}

}  // namespace
}  // namespace tern::log
