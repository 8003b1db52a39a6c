#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "sdk/dedup.hpp"
#include "sdk/outbox.hpp"
#include "sdk/text.hpp"
#include "sdk/trace.hpp"
#include "tern/backoff.hpp"

namespace {

using namespace std::chrono_literals;
using tern::BackoffPolicy;
using tern::backoff_delay;

TEST(Backoff, GrowsExponentiallyWithoutJitter) {
  BackoffPolicy p{100ms, 10000ms, 2.0, 0.0};
  EXPECT_EQ(backoff_delay(p, 0, 0.7), 100ms);
  EXPECT_EQ(backoff_delay(p, 1, 0.7), 200ms);
  EXPECT_EQ(backoff_delay(p, 3, 0.7), 800ms);
}

TEST(Backoff, IsCappedAtTheMaximumEvenForHugeAttempts) {
  BackoffPolicy p{100ms, 1500ms, 2.0, 0.0};
  EXPECT_EQ(backoff_delay(p, 4, 0.0), 1500ms);
  EXPECT_EQ(backoff_delay(p, 1000000, 0.0), 1500ms);
}

TEST(Backoff, JitterStaysWithinTheConfiguredFraction) {
  BackoffPolicy p{1000ms, 10000ms, 2.0, 0.5};
  EXPECT_EQ(backoff_delay(p, 0, 0.0), 1000ms);
  EXPECT_EQ(backoff_delay(p, 0, 1.0), 500ms);
  EXPECT_EQ(backoff_delay(p, 0, 0.5), 750ms);
  EXPECT_EQ(backoff_delay(p, 1, 1.0), 1000ms);
}

TEST(DedupWindow, RemembersIdsForTheWindowOnly) {
  tern::sdk::DedupWindow w(1000ms, 100);
  const auto t0 = tern::sdk::DedupWindow::Clock::now();
  EXPECT_FALSE(w.contains("a", t0));
  w.record("a", t0);
  EXPECT_TRUE(w.contains("a", t0 + 999ms));
  EXPECT_FALSE(w.contains("b", t0 + 10ms));
  EXPECT_FALSE(w.contains("a", t0 + 1000ms));
  EXPECT_EQ(w.size(), 0u);
}

TEST(DedupWindow, ForgetsTheOldestBeyondCapacity) {
  tern::sdk::DedupWindow w(60000ms, 3);
  const auto t0 = tern::sdk::DedupWindow::Clock::now();
  for (int i = 0; i < 5; ++i) w.record(std::to_string(i), t0 + std::chrono::milliseconds(i));
  EXPECT_EQ(w.size(), 3u);
  EXPECT_FALSE(w.contains("0", t0 + 10ms));
  EXPECT_FALSE(w.contains("1", t0 + 10ms));
  EXPECT_TRUE(w.contains("2", t0 + 10ms));
  EXPECT_TRUE(w.contains("4", t0 + 10ms));
}

TEST(DedupWindow, ReRecordingExtendsTheWindow) {
  tern::sdk::DedupWindow w(1000ms, 100);
  const auto t0 = tern::sdk::DedupWindow::Clock::now();
  w.record("a", t0);
  w.record("a", t0 + 800ms);
  EXPECT_TRUE(w.contains("a", t0 + 1500ms));
}

TEST(Traceparent, NewTraceIsWellFormedAndUnique) {
  const auto a = tern::sdk::format_traceparent(tern::sdk::new_trace());
  const auto b = tern::sdk::format_traceparent(tern::sdk::new_trace());
  ASSERT_EQ(a.size(), 55u);
  EXPECT_EQ(a.substr(0, 3), "00-");
  EXPECT_EQ(a.substr(52), "-01");
  EXPECT_NE(a.substr(3, 32), b.substr(3, 32));
  EXPECT_TRUE(tern::sdk::parse_traceparent(a).has_value());
}

TEST(Traceparent, ChildKeepsTraceIdAndFlagsWithANewSpan) {
  auto parent = tern::sdk::parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(parent);
  EXPECT_EQ(parent->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(parent->flags, 0);
  const auto child = tern::sdk::child_of(*parent);
  EXPECT_EQ(child.trace_id, parent->trace_id);
  EXPECT_NE(child.parent_id, parent->parent_id);
  EXPECT_EQ(child.flags, 0);
}

TEST(Traceparent, RejectsMalformedHeaders) {
  using tern::sdk::parse_traceparent;
  EXPECT_FALSE(parse_traceparent(""));
  EXPECT_FALSE(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
  EXPECT_FALSE(parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(parse_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-"));
}

tern::Message message(std::string topic, std::string payload, tern::Qos qos = tern::Qos::at_least_once) {
  tern::Message m;
  m.topic = std::move(topic);
  m.payload = std::move(payload);
  m.qos = qos;
  return m;
}

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() /
            ("tern-outbox-" + tern::sdk::random_hex(6) + ".db");
  }
  void TearDown() override {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_.string() + suffix);
  }
  std::unique_ptr<tern::sdk::OutboxStore> open() {
    auto s = tern::sdk::OutboxStore::open(path_.string());
    EXPECT_TRUE(s.has_value());
    return s ? std::move(*s) : nullptr;
  }
  std::filesystem::path path_;
};

TEST_F(OutboxTest, KeepsOrderAndPropertiesAcrossReopen) {
  {
    tern::sdk::PendingQueue q(100, tern::OutboxFullPolicy::reject_new);
    ASSERT_TRUE(q.attach(open()));
    std::vector<tern::sdk::PendingPublish> evicted;
    for (int i = 0; i < 5; ++i) {
      auto m = message("t/" + std::to_string(i), std::string("p\0") + std::to_string(i));
      m.user_properties.emplace_back("tern-id", "id-" + std::to_string(i));
      m.correlation_data = std::string("c\0d", 3);
      ASSERT_FALSE(q.push(std::move(m), {}, evicted));
    }
    // The first one was acknowledged: it must not come back.
    auto first = q.take_front();
    q.acknowledged(first);
  }
  tern::sdk::PendingQueue q(100, tern::OutboxFullPolicy::reject_new);
  ASSERT_TRUE(q.attach(open()));
  ASSERT_EQ(q.queued(), 4u);
  EXPECT_EQ(q.unacknowledged(), 4u);
  for (int i = 1; i < 5; ++i) {
    auto p = q.take_front();
    EXPECT_EQ(p.message.topic, "t/" + std::to_string(i));
    EXPECT_EQ(p.message.payload, std::string("p\0") + std::to_string(i));
    ASSERT_NE(p.message.user_property("tern-id"), nullptr);
    EXPECT_EQ(*p.message.user_property("tern-id"), "id-" + std::to_string(i));
    EXPECT_EQ(p.message.correlation_data, std::string("c\0d", 3));
  }
}

TEST_F(OutboxTest, RejectNewPolicyRefusesAndCounts) {
  tern::sdk::PendingQueue q(2, tern::OutboxFullPolicy::reject_new);
  std::vector<tern::sdk::PendingPublish> evicted;
  EXPECT_FALSE(q.push(message("a", "1"), {}, evicted));
  EXPECT_FALSE(q.push(message("a", "2"), {}, evicted));
  EXPECT_EQ(q.push(message("a", "3"), {}, evicted), tern::Errc::outbox_full);
  EXPECT_EQ(q.rejected(), 1u);
  EXPECT_EQ(q.front().message.payload, "1");
}

TEST_F(OutboxTest, DropOldestPolicyEvictsTheOldestQueued) {
  tern::sdk::PendingQueue q(2, tern::OutboxFullPolicy::drop_oldest);
  ASSERT_TRUE(q.attach(open()));
  std::vector<tern::sdk::PendingPublish> evicted;
  EXPECT_FALSE(q.push(message("a", "1"), {}, evicted));
  EXPECT_FALSE(q.push(message("a", "2"), {}, evicted));
  EXPECT_FALSE(q.push(message("a", "3"), {}, evicted));
  ASSERT_EQ(evicted.size(), 1u);
  EXPECT_EQ(evicted[0].message.payload, "1");
  EXPECT_EQ(q.dropped(), 1u);
  EXPECT_EQ(q.unacknowledged(), 2u);
  tern::sdk::PendingQueue reopened(10, tern::OutboxFullPolicy::drop_oldest);
  ASSERT_TRUE(reopened.attach(open()));
  ASSERT_EQ(reopened.queued(), 2u);
  EXPECT_EQ(reopened.front().message.payload, "2");
}

TEST_F(OutboxTest, InFlightMessagesCountAgainstTheBoundAndReturnInOrder) {
  tern::sdk::PendingQueue q(3, tern::OutboxFullPolicy::reject_new);
  std::vector<tern::sdk::PendingPublish> evicted;
  for (int i = 0; i < 3; ++i) ASSERT_FALSE(q.push(message("a", std::to_string(i)), {}, evicted));
  std::vector<tern::sdk::PendingPublish> taken;
  taken.push_back(q.take_front());
  taken.push_back(q.take_front());
  EXPECT_EQ(q.push(message("a", "x"), {}, evicted), tern::Errc::outbox_full);
  q.put_back(std::move(taken));
  EXPECT_EQ(q.take_front().message.payload, "0");
  EXPECT_EQ(q.take_front().message.payload, "1");
  EXPECT_EQ(q.take_front().message.payload, "2");
}

TEST_F(OutboxTest, QosZeroIsNeverWrittenToDisk) {
  {
    tern::sdk::PendingQueue q(10, tern::OutboxFullPolicy::reject_new);
    ASSERT_TRUE(q.attach(open()));
    std::vector<tern::sdk::PendingPublish> evicted;
    ASSERT_FALSE(q.push(message("a", "0", tern::Qos::at_most_once), {}, evicted));
    ASSERT_FALSE(q.push(message("a", "1"), {}, evicted));
  }
  tern::sdk::PendingQueue q(10, tern::OutboxFullPolicy::reject_new);
  ASSERT_TRUE(q.attach(open()));
  ASSERT_EQ(q.queued(), 1u);
  EXPECT_EQ(q.front().message.payload, "1");
}

TEST(Text, Base64MatchesRfc4648Vectors) {
  using tern::sdk::base64_encode;
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
}

TEST(Text, JsonShowsBinaryPayloadsAsBase64) {
  auto m = message("a/\"b\"", std::string("\xff\x00", 2), tern::Qos::exactly_once);
  m.user_properties.emplace_back("k", "v\n");
  EXPECT_EQ(tern::sdk::message_to_json(m),
            R"({"topic":"a/\"b\"","payload":"/wA=","payload_encoding":"base64","qos":2,"retain":false,)"
            R"("properties":{"user_properties":[["k","v\n"]]}})");
}

}  // namespace
