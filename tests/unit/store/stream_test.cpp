// Event streams in the SQLite store: appends read back in order whether committed or not,
// retention by age and by bytes, offsets that never restart.
#include <gtest/gtest.h>

#include "store/sqlite_store.hpp"
#include "store/store_test_support.hpp"

namespace tern::store::test {
namespace {

using namespace std::chrono_literals;

broker::StreamEvent event(std::uint64_t offset, std::int64_t ts, std::string payload) {
  auto m = make_message("doors/front", std::move(payload));
  auto mm = std::make_shared<broker::Message>(*m);
  mm->content_type = "text/plain";
  mqtt::append_user_property(mm->user_properties, "tern-id", std::to_string(offset));
  return broker::StreamEvent{offset, ts, mm};
}

std::vector<std::uint64_t> offsets(const std::vector<broker::StreamEvent>& events) {
  std::vector<std::uint64_t> out;
  for (const auto& e : events) out.push_back(e.offset);
  return out;
}

class StreamTest : public ::testing::Test {
 protected:
  TempDir dir_;
  OwnerQueue queue_;
};

TEST_F(StreamTest, ReadsSeeCommittedAndPendingAppendsOnceEachInOrder) {
  auto o = options_for(dir_.path(), queue_);
  o.max_commit_delay = 60s;
  auto store = open_store(o);
  EXPECT_EQ(store->stream_end("doors"), 0u);
  for (std::uint64_t i = 0; i < 5; ++i) store->append_stream("doors", event(i, 1000 + static_cast<std::int64_t>(i), "locked"));
  store->close();
  store.reset();
  store = open_store(o);  // 60 s delay: what follows stays pending
  EXPECT_EQ(store->stream_end("doors"), 5u);
  for (std::uint64_t i = 5; i < 8; ++i) store->append_stream("doors", event(i, 1000 + static_cast<std::int64_t>(i), "open"));
  EXPECT_EQ(store->stream_end("doors"), 8u);
  EXPECT_EQ(offsets(store->read_stream("doors", 0, 0, 100)), (std::vector<std::uint64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(offsets(store->read_stream("doors", 3, 0, 3)), (std::vector<std::uint64_t>{3, 4, 5}));
  EXPECT_EQ(offsets(store->read_stream("doors", 0, 1006, 100)), (std::vector<std::uint64_t>{6, 7}));
  EXPECT_TRUE(store->read_stream("other", 0, 0, 100).empty());
  const auto events = store->read_stream("doors", 4, 0, 2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].message->payload, "locked");
  EXPECT_EQ(events[0].message->content_type, "text/plain");
  EXPECT_EQ(events[0].timestamp_ms, 1004);
  EXPECT_EQ(events[1].message->payload, "open");
}

TEST_F(StreamTest, ReadsAreConsistentWhileCommitsHappen) {
  auto store = open_store(options_for(dir_.path(), queue_));
  std::uint64_t next = 0;
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 20; ++i) store->append_stream("s", event(next++, 1, "x"));
    const auto all = store->read_stream("s", 0, 0, 100000);
    ASSERT_EQ(all.size(), next);
    for (std::uint64_t k = 0; k < next; ++k) ASSERT_EQ(all[k].offset, k);
  }
}

TEST_F(StreamTest, RetentionByAgeAndBytesCutsTheOldestEvents) {
  auto store = open_store(options_for(dir_.path(), queue_));
  for (std::uint64_t i = 0; i < 10; ++i) store->append_stream("s", event(i, 100 * static_cast<std::int64_t>(i), std::string(10, 'x')));
  store->trim_stream("s", 300, 0);  // events before t=300 go
  wait_durable(*store, queue_);
  EXPECT_EQ(offsets(store->read_stream("s", 0, 0, 100)), (std::vector<std::uint64_t>{3, 4, 5, 6, 7, 8, 9}));
  store->trim_stream("s", 0, 45);  // 7 events of 10 bytes: keep the newest 4 (40 bytes)
  wait_durable(*store, queue_);
  EXPECT_EQ(offsets(store->read_stream("s", 0, 0, 100)), (std::vector<std::uint64_t>{6, 7, 8, 9}));
  store->trim_stream("s", 0, 40);  // exactly at the limit: nothing goes
  wait_durable(*store, queue_);
  EXPECT_EQ(store->read_stream("s", 0, 0, 100).size(), 4u);
}

TEST_F(StreamTest, AStreamEmptiedByRetentionKeepsItsOffsetsAcrossRestarts) {
  auto o = options_for(dir_.path(), queue_);
  auto store = open_store(o);
  for (std::uint64_t i = 0; i < 4; ++i) store->append_stream("s", event(i, 10, "abc"));
  store->trim_stream("s", 1000, 0);
  wait_durable(*store, queue_);
  EXPECT_TRUE(store->read_stream("s", 0, 0, 10).empty());
  store->close();
  store.reset();
  store = open_store(o);
  EXPECT_EQ(store->stream_end("s"), 4u);
  store->append_stream("s", event(4, 2000, "defg"));
  store->trim_stream("s", 0, 4);  // byte totals continue from the emptied stream's
  wait_durable(*store, queue_);
  EXPECT_EQ(offsets(store->read_stream("s", 0, 0, 10)), (std::vector<std::uint64_t>{4}));
}

}  // namespace
}  // namespace tern::store::test
