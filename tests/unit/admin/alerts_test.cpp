#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <string>
#include <vector>

#include "admin/alerts.hpp"

namespace tern::admin {
namespace {

struct Published {
  std::string topic;
  boost::json::value payload;
  int qos = 0;
  bool retain = false;
};

class AlertMonitorTest : public ::testing::Test {
 protected:
  Sources sources() {
    Sources s;
    s.queued_messages_total = [this] { return queued_; };
    s.broker_stats = [this] {
      broker::BrokerStats b;
      b.dropped_queue_full = dropped_;
      return b;
    };
    s.store_metrics = [this] {
      StoreMetrics m;
      m.last_commit_us = commit_us_;
      return std::optional<StoreMetrics>(m);
    };
    return s;
  }
  Publish publisher() {
    return [this](std::string_view topic, std::string_view payload, int qos, bool retain) {
      published_.push_back({std::string(topic), boost::json::parse(payload), qos, retain});
    };
  }

  boost::asio::io_context io_;
  std::size_t queued_ = 0;
  std::uint64_t dropped_ = 0;
  std::uint64_t commit_us_ = 0;
  std::uint64_t rss_ = 1000;
  std::vector<Published> published_;
};

TEST_F(AlertMonitorTest, WithoutThresholdsNothingIsScheduled) {
  AlertMonitor monitor(io_, "n", AlertThresholds{}, sources(), publisher());
  monitor.start();
  EXPECT_EQ(io_.poll(), 0U);
  EXPECT_TRUE(io_.stopped());  // no pending work at all: the loop would return at once
  EXPECT_TRUE(monitor.status().empty());
}

TEST_F(AlertMonitorTest, PublishesWhenCrossedAndWhenCleared) {
  AlertThresholds t;
  t.queue_depth = 100;
  AlertMonitor monitor(io_, "gw1", t, sources(), publisher());
  monitor.evaluate();
  EXPECT_TRUE(published_.empty());

  queued_ = 150;
  monitor.evaluate();
  ASSERT_EQ(published_.size(), 1U);
  EXPECT_EQ(published_[0].topic, "$tern/alerts");
  EXPECT_EQ(published_[0].qos, 1);
  EXPECT_FALSE(published_[0].retain);
  EXPECT_EQ(published_[0].payload.at("alert"), "queue_depth");
  EXPECT_EQ(published_[0].payload.at("state"), "firing");
  EXPECT_EQ(published_[0].payload.at("node"), "gw1");
  EXPECT_EQ(published_[0].payload.at("value"), 150.0);
  EXPECT_EQ(published_[0].payload.at("threshold"), 100.0);
  EXPECT_EQ(monitor.firing(), std::vector<std::string>{"queue_depth"});

  monitor.evaluate();  // still crossed: no new event
  EXPECT_EQ(published_.size(), 1U);

  queued_ = 100;
  monitor.evaluate();
  ASSERT_EQ(published_.size(), 2U);
  EXPECT_EQ(published_[1].payload.at("state"), "cleared");
  EXPECT_TRUE(monitor.firing().empty());
}

TEST_F(AlertMonitorTest, DropRateComparesTheIncreaseBetweenEvaluations) {
  AlertThresholds t;
  t.drop_rate = 0;  // any drop at all
  AlertMonitor monitor(io_, "n", t, sources(), publisher());
  dropped_ = 1000;  // drops before the first evaluation are history, not a rate
  monitor.evaluate();
  EXPECT_TRUE(published_.empty());
  monitor.evaluate();
  EXPECT_TRUE(published_.empty());
  dropped_ = 1010;
  monitor.evaluate();
  ASSERT_EQ(published_.size(), 1U);
  EXPECT_EQ(published_[0].payload.at("alert"), "drop_rate");
  EXPECT_GT(published_[0].payload.at("value").as_double(), 0.0);
  monitor.evaluate();
  ASSERT_EQ(published_.size(), 2U);
  EXPECT_EQ(published_[1].payload.at("state"), "cleared");
}

TEST_F(AlertMonitorTest, StoreLatencyAndMemory) {
  AlertThresholds t;
  t.store_latency_us = 5000;
  t.resident_memory_bytes = 2000;
  AlertMonitor monitor(io_, "n", t, sources(), publisher(), [this] { return std::optional<std::uint64_t>(rss_); });
  commit_us_ = 6000;
  rss_ = 3000;
  monitor.evaluate();
  ASSERT_EQ(published_.size(), 2U);
  EXPECT_EQ(published_[0].payload.at("alert"), "store_latency");
  EXPECT_EQ(published_[1].payload.at("alert"), "memory");
  const auto status = monitor.status();
  ASSERT_EQ(status.size(), 2U);
  EXPECT_TRUE(status[1].firing);
  EXPECT_EQ(status[1].value, 3000.0);
}

TEST_F(AlertMonitorTest, TheTimerEvaluatesEveryInterval) {
  AlertThresholds t;
  t.queue_depth = 1;
  t.interval = std::chrono::milliseconds(10);
  queued_ = 5;
  AlertMonitor monitor(io_, "n", t, sources(), publisher());
  monitor.start();
  // Runs handlers until the first event (the timer's first evaluation) has been published.
  while (published_.empty()) ASSERT_EQ(io_.run_one_for(std::chrono::seconds(5)), 1U);
  EXPECT_EQ(published_[0].payload.at("state"), "firing");
  queued_ = 0;
  while (published_.size() < 2) ASSERT_EQ(io_.run_one_for(std::chrono::seconds(5)), 1U);
  EXPECT_EQ(published_[1].payload.at("state"), "cleared");
  monitor.stop();
  io_.restart();
  io_.run();  // the cancelled wait completes; nothing is re-armed
  EXPECT_EQ(published_.size(), 2U);
}

}  // namespace
}  // namespace tern::admin
