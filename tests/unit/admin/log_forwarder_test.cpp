#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <string>
#include <thread>
#include <vector>

#include "admin/log_forwarder.hpp"
#include "core/log.hpp"

namespace tern::admin {
namespace {

struct Message {
  std::string topic;
  std::string payload;
};

class LogForwarderTest : public ::testing::Test {
 protected:
  void SetUp() override { log::set_level(log::Level::debug); }
  void TearDown() override { log::set_level(log::Level::info); }
  boost::asio::io_context io_;
  std::vector<Message> published_;
};

TEST_F(LogForwarderTest, PublishesLinesAtOrAboveTheLevelFromTheLoop) {
  LogForwarder forwarder(io_, "gw1", log::Level::warning,
                         [this](std::string_view topic, std::string_view payload, int qos, bool retain) {
                           EXPECT_EQ(qos, 0);
                           EXPECT_FALSE(retain);
                           published_.push_back({std::string(topic), std::string(payload)});
                         });
  log::info("test", "not forwarded");
  log::warn("test", "disk almost full");
  log::error("test", "disk full");
  EXPECT_TRUE(published_.empty());  // nothing is published from inside the logging call
  io_.poll();
  ASSERT_EQ(published_.size(), 2U);
  EXPECT_EQ(published_[0].topic, "$tern/logs/gw1/warning");
  EXPECT_NE(published_[0].payload.find("\"msg\":\"disk almost full\""), std::string::npos);
  EXPECT_EQ(published_[1].topic, "$tern/logs/gw1/error");
  EXPECT_EQ(forwarder.forwarded(), 2U);
}

TEST_F(LogForwarderTest, LinesLoggedWhilePublishingAreNotForwarded) {
  // The broker logs while it routes the forwarded line; that must not loop.
  LogForwarder forwarder(io_, "n", log::Level::debug, [this](std::string_view topic, std::string_view payload, int, bool) {
    published_.push_back({std::string(topic), std::string(payload)});
    log::debug("broker", "routing {}", topic);
  });
  log::info("test", "one");
  io_.poll();
  io_.restart();
  EXPECT_EQ(io_.poll(), 0U);
  ASSERT_EQ(published_.size(), 1U);
  EXPECT_NE(published_[0].payload.find("\"msg\":\"one\""), std::string::npos);
}

TEST_F(LogForwarderTest, PendingLinesAreBoundedAndDropsCounted) {
  LogForwarder forwarder(
      io_, "n", log::Level::info,
      [this](std::string_view topic, std::string_view payload, int, bool) {
        published_.push_back({std::string(topic), std::string(payload)});
      },
      3);
  for (int i = 0; i < 10; ++i) log::info("test", "line {}", i);
  io_.poll();
  EXPECT_EQ(published_.size(), 3U);
  EXPECT_EQ(forwarder.dropped(), 7U);
}

TEST_F(LogForwarderTest, LinesFromOtherThreadsArePublishedOnTheLoop) {
  const auto loop_thread = std::this_thread::get_id();
  LogForwarder forwarder(io_, "n", log::Level::info, [&](std::string_view topic, std::string_view payload, int, bool) {
    EXPECT_EQ(std::this_thread::get_id(), loop_thread);
    published_.push_back({std::string(topic), std::string(payload)});
  });
  std::thread writer([] { log::warn("store", "slow commit"); });
  writer.join();
  io_.poll();
  ASSERT_EQ(published_.size(), 1U);
  EXPECT_NE(published_[0].payload.find("slow commit"), std::string::npos);
}

TEST_F(LogForwarderTest, NothingIsPublishedAfterDestruction) {
  {
    LogForwarder forwarder(io_, "n", log::Level::info, [this](std::string_view t, std::string_view p, int, bool) {
      published_.push_back({std::string(t), std::string(p)});
    });
    log::info("test", "queued, then the forwarder goes away");
  }
  log::info("test", "after");
  io_.poll();
  EXPECT_TRUE(published_.empty());
}

}  // namespace
}  // namespace tern::admin
