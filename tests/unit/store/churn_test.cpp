// Bounded growth: a long churn of queue writes through the real writer keeps the
// database and its WAL small, and a drained queue gives its pages back.
#include <gtest/gtest.h>

#include "store/sqlite_store.hpp"
#include "store/store_test_support.hpp"

namespace tern::store::test {
namespace {

TEST(StoreChurn, DatabaseAndWalStayBoundedUnderLongChurn) {
  TempDir dir;
  OwnerQueue queue;
  auto store = open_store(options_for(dir.path(), queue, Durability::fsync));
  const auto db = store->path();
  const std::filesystem::path wal = db.string() + "-wal";
  constexpr std::uint64_t kMessages = 200'000;
  constexpr std::uint64_t kBacklog = 1000;  // messages queued at any time: real rows, really deleted
  const std::string payload(100, 'p');
  std::uint64_t max_total = 0;
  int durable = 0;
  int requested = 0;
  for (std::uint64_t seq = 0; seq < kMessages; ++seq) {
    store->save_queued(make_queued("subscriber", seq, make_message("plant/line/7", payload)));
    if (seq >= kBacklog) store->remove_queued("subscriber", seq - kBacklog);
    if (seq % 2000 == 1999) {
      // Keep at most two checkpoints of writes in flight, as acknowledgements would.
      store->when_durable([&] { ++durable; });
      ++requested;
      ASSERT_TRUE(queue.run_until([&] { return durable >= requested - 1; }));
      max_total = std::max(max_total, file_size_or_zero(db) + file_size_or_zero(wal));
    }
  }
  wait_durable(*store, queue);
  max_total = std::max(max_total, file_size_or_zero(db) + file_size_or_zero(wal));
  const auto m = store->metrics();
  EXPECT_LT(max_total, 5u * 1024 * 1024) << "db+wal reached " << max_total << " bytes";
  // Real rows were inserted and deleted; how many pairs coalesce within a batch depends
  // on the writer's timing, so only a floor is certain.
  EXPECT_GE(m.rows_changed, 2 * kBacklog);
  EXPECT_EQ(store->load_queued().size(), kBacklog);
}

TEST(StoreChurn, ADrainedQueueGivesItsSpaceBack) {
  TempDir dir;
  OwnerQueue queue;
  auto store = open_store(options_for(dir.path(), queue, Durability::batch));
  const std::string payload(2000, 'x');
  for (std::uint64_t seq = 0; seq < 5000; ++seq)
    store->save_queued(make_queued("offline", seq, make_message("t", payload)));
  wait_durable(*store, queue);
  store->close();
  const auto full = file_size_or_zero(store->path());
  ASSERT_GT(full, 10u * 1024 * 1024);
  store = open_store(options_for(dir.path(), queue, Durability::batch));
  for (std::uint64_t seq = 0; seq < 5000; ++seq) store->remove_queued("offline", seq);
  wait_durable(*store, queue);
  EXPECT_GE(store->metrics().vacuums, 1u);
  store->close();
  EXPECT_LT(file_size_or_zero(store->path()), full / 10);
}

}  // namespace
}  // namespace tern::store::test
