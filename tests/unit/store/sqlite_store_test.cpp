// SqliteStore through its Store interface: what is written comes back after a reopen,
// callbacks run only after the commit that covers them, and group commit groups.
#include "store/sqlite_store.hpp"

#include <gtest/gtest.h>

#include <atomic>

#include "store/schema.hpp"
#include "store/store_test_support.hpp"

namespace tern::store::test {
namespace {

using namespace std::chrono_literals;
using broker::QueuedRecord;
using Stage = broker::QueuedRecord::Stage;

// Clocks the test moves by hand; read by the writer thread, hence atomics.
struct FakeClocks {
  std::atomic<std::int64_t> steady_ns{std::chrono::nanoseconds(1000s).count()};
  std::atomic<std::int64_t> system_ms{1'700'000'000'000};
  std::chrono::steady_clock::time_point steady() const {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(steady_ns.load()));
  }
  std::chrono::system_clock::time_point system() const {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(system_ms.load()));
  }
  void install(SqliteStore::Options& o) {
    o.steady_now = [this] { return steady(); };
    o.system_now = [this] { return system(); };
  }
};

class SqliteStoreTest : public ::testing::Test {
 protected:
  SqliteStore::Options options(Durability d = Durability::fsync) {
    auto o = options_for(dir_.path(), queue_, d);
    clocks_.install(o);
    return o;
  }
  std::unique_ptr<SqliteStore> reopen(std::unique_ptr<SqliteStore>& store) {
    store->close();
    store.reset();
    return open_store(options());
  }

  TempDir dir_;
  OwnerQueue queue_;
  FakeClocks clocks_;
};

broker::MessagePtr full_message(std::optional<std::chrono::steady_clock::time_point> expires_at) {
  auto m = std::make_shared<broker::Message>();
  m->topic = "plant/line-1/temperature";
  m->payload = std::string("\x00\x01\xff binary", 10);
  m->qos = mqtt::QoS::exactly_once;
  m->retain = true;
  m->payload_format_indicator = 1;
  m->content_type = "application/json";
  m->response_topic = "replies/me";
  m->correlation_data = std::string("\x00corr", 5);
  mqtt::append_user_property(m->user_properties, "traceparent", "00-abc-def-01");
  mqtt::append_user_property(m->user_properties, "tern-id", "42");
  m->expires_at = expires_at;
  m->origin_client_id = "sensor-7";
  return m;
}

// A queued message's origin is not kept: it was routed before it was queued.
enum class Origin { kept, dropped };

void expect_same_message(const broker::Message& a, const broker::Message& b, Origin origin = Origin::kept) {
  EXPECT_EQ(a.topic, b.topic);
  EXPECT_EQ(a.payload, b.payload);
  EXPECT_EQ(a.qos, b.qos);
  EXPECT_EQ(a.retain, b.retain);
  EXPECT_EQ(a.payload_format_indicator, b.payload_format_indicator);
  EXPECT_EQ(a.content_type, b.content_type);
  EXPECT_EQ(a.response_topic, b.response_topic);
  EXPECT_EQ(a.correlation_data, b.correlation_data);
  EXPECT_EQ(a.user_properties, b.user_properties);
  if (origin == Origin::kept) {
    EXPECT_EQ(a.origin_client_id, b.origin_client_id);
  } else {
    EXPECT_EQ(a.origin_client_id, "");
  }
}

TEST_F(SqliteStoreTest, SessionWithSubscriptionsSurvivesReopen) {
  auto store = open_store(options());
  broker::SessionRecord s;
  s.client_id = "client-a";
  s.version = mqtt::Version::v311;
  s.session_expiry_interval = 0xFFFFFFFF;
  s.subscriptions.push_back({"plant/+/temperature", {mqtt::QoS::exactly_once, true, true, mqtt::RetainHandling::do_not_send}, 7});
  s.subscriptions.push_back({"$share/group/alarms/#", {mqtt::QoS::at_least_once, false, false, mqtt::RetainHandling::send_if_new}, 0});
  store->save_session(s);
  store = reopen(store);

  const auto sessions = store->load_sessions();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].client_id, "client-a");
  EXPECT_EQ(sessions[0].version, mqtt::Version::v311);
  EXPECT_EQ(sessions[0].session_expiry_interval, 0xFFFFFFFFu);
  ASSERT_EQ(sessions[0].subscriptions.size(), 2u);
  const auto& a = sessions[0].subscriptions[0];
  EXPECT_EQ(a.filter, "plant/+/temperature");
  EXPECT_EQ(a.options.qos, mqtt::QoS::exactly_once);
  EXPECT_TRUE(a.options.no_local);
  EXPECT_TRUE(a.options.retain_as_published);
  EXPECT_EQ(a.options.retain_handling, mqtt::RetainHandling::do_not_send);
  EXPECT_EQ(a.subscription_id, 7u);
  const auto& b = sessions[0].subscriptions[1];
  EXPECT_EQ(b.filter, "$share/group/alarms/#");
  EXPECT_EQ(b.options.qos, mqtt::QoS::at_least_once);
  EXPECT_FALSE(b.options.no_local);
  EXPECT_EQ(b.options.retain_handling, mqtt::RetainHandling::send_if_new);
  EXPECT_EQ(b.subscription_id, 0u);
}

TEST_F(SqliteStoreTest, SaveSessionReplacesTheWholeRecord) {
  auto store = open_store(options());
  broker::SessionRecord s;
  s.client_id = "c";
  s.session_expiry_interval = 60;
  s.subscriptions.push_back({"a/b", {}, 0});
  s.subscriptions.push_back({"c/d", {}, 0});
  store->save_session(s);
  wait_durable(*store, queue_);  // the second save lands in another transaction
  s.session_expiry_interval = 120;
  s.subscriptions = {{"e/f", {}, 3}};
  store->save_session(s);
  store = reopen(store);
  const auto sessions = store->load_sessions();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].session_expiry_interval, 120u);
  ASSERT_EQ(sessions[0].subscriptions.size(), 1u);
  EXPECT_EQ(sessions[0].subscriptions[0].filter, "e/f");
  EXPECT_EQ(sessions[0].subscriptions[0].subscription_id, 3u);
}

TEST_F(SqliteStoreTest, RetainedMessageKeepsEveryFieldAndItsRemainingLifetime) {
  auto store = open_store(options());
  const auto expires = clocks_.steady() + 60s;
  const auto original = full_message(expires);
  store->save_retained(original);
  store->save_retained(make_message("other/topic", ""));  // empty payload, no expiry
  store->close();
  store.reset();

  // A restart: the steady clock starts elsewhere, ten wall-clock seconds have passed.
  clocks_.steady_ns = std::chrono::nanoseconds(5s).count();
  clocks_.system_ms += 10'000;
  store = open_store(options());
  auto retained = store->load_retained();
  ASSERT_EQ(retained.size(), 2u);
  std::sort(retained.begin(), retained.end(), [](auto& x, auto& y) { return x->topic > y->topic; });
  expect_same_message(*retained[0], *original);
  ASSERT_TRUE(retained[0]->expires_at.has_value());
  EXPECT_EQ(*retained[0]->expires_at, clocks_.steady() + 50s);
  EXPECT_EQ(retained[1]->payload, "");
  EXPECT_FALSE(retained[1]->expires_at.has_value());
  EXPECT_FALSE(retained[1]->content_type.has_value());
  EXPECT_FALSE(retained[1]->correlation_data.has_value());
}

TEST_F(SqliteStoreTest, RetainedIsReplacedByTopicAndRemoved) {
  auto store = open_store(options());
  store->save_retained(make_message("t/1", "old"));
  store->save_retained(make_message("t/2", "two"));
  wait_durable(*store, queue_);
  store->save_retained(make_message("t/1", "new"));
  store->remove_retained("t/2");
  store = reopen(store);
  const auto retained = store->load_retained();
  ASSERT_EQ(retained.size(), 1u);
  EXPECT_EQ(retained[0]->topic, "t/1");
  EXPECT_EQ(retained[0]->payload, "new");
}

TEST_F(SqliteStoreTest, QueuedEntriesOfEveryStageComeBackInOrder) {
  auto store = open_store(options());
  auto r1 = make_queued("b-client", 10, full_message(std::nullopt));
  r1.subscription_ids = {1, 268'435'455};
  r1.retain = true;
  auto r2 = make_queued("b-client", 2, make_message("x/y", "p2"));
  r2.stage = Stage::awaiting_puback;
  r2.packet_id = 17;
  auto r3 = make_queued("a-client", 5, make_message("x/z", "p3"));
  r3.qos = mqtt::QoS::exactly_once;
  r3.stage = Stage::awaiting_pubrec;
  r3.packet_id = 65535;
  QueuedRecord r4;
  r4.client_id = "a-client";
  r4.seq = 9;
  r4.qos = mqtt::QoS::exactly_once;
  r4.stage = Stage::awaiting_pubcomp;
  r4.packet_id = 3;
  for (const auto* r : {&r1, &r2, &r3, &r4}) store->save_queued(*r);
  store = reopen(store);

  const auto queued = store->load_queued();
  ASSERT_EQ(queued.size(), 4u);
  EXPECT_EQ(queued[0].client_id, "a-client");
  EXPECT_EQ(queued[0].seq, 5u);
  EXPECT_EQ(queued[0].stage, Stage::awaiting_pubrec);
  EXPECT_EQ(queued[0].packet_id, 65535);
  EXPECT_EQ(queued[0].qos, mqtt::QoS::exactly_once);
  EXPECT_EQ(queued[1].seq, 9u);
  EXPECT_EQ(queued[1].stage, Stage::awaiting_pubcomp);
  EXPECT_EQ(queued[1].message, nullptr);
  EXPECT_EQ(queued[2].client_id, "b-client");
  EXPECT_EQ(queued[2].seq, 2u);
  EXPECT_EQ(queued[2].stage, Stage::awaiting_puback);
  EXPECT_EQ(queued[2].packet_id, 17);
  ASSERT_NE(queued[2].message, nullptr);
  EXPECT_EQ(queued[2].message->payload, "p2");
  EXPECT_EQ(queued[3].seq, 10u);
  EXPECT_EQ(queued[3].stage, Stage::queued);
  EXPECT_TRUE(queued[3].retain);
  EXPECT_EQ(queued[3].subscription_ids, (std::vector<std::uint32_t>{1, 268'435'455}));
  ASSERT_NE(queued[3].message, nullptr);
  expect_same_message(*queued[3].message, *r1.message, Origin::dropped);
}

TEST_F(SqliteStoreTest, SaveQueuedReplacesTheEntryAndRemoveDeletesIt) {
  auto store = open_store(options());
  store->save_queued(make_queued("c", 1, make_message("t", "1")));
  store->save_queued(make_queued("c", 2, make_message("t", "2")));
  wait_durable(*store, queue_);
  auto moved_on = make_queued("c", 1, make_message("t", "1"));
  moved_on.stage = Stage::awaiting_puback;
  moved_on.packet_id = 8;
  store->save_queued(moved_on);
  store->remove_queued("c", 2);
  store = reopen(store);
  const auto queued = store->load_queued();
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_EQ(queued[0].seq, 1u);
  EXPECT_EQ(queued[0].stage, Stage::awaiting_puback);
  EXPECT_EQ(queued[0].packet_id, 8);
}

TEST_F(SqliteStoreTest, InboundQos2IdsSurviveAndCanBeReleased) {
  auto store = open_store(options());
  store->save_inbound_qos2("c1", 1);
  store->save_inbound_qos2("c1", 65535);
  store->save_inbound_qos2("c2", 9);
  wait_durable(*store, queue_);
  store->remove_inbound_qos2("c1", 1);
  store = reopen(store);
  const auto ids = store->load_inbound_qos2();
  using P = std::pair<std::string, std::uint16_t>;
  EXPECT_EQ(ids, (std::vector<P>{{"c1", 65535}, {"c2", 9}}));
}

TEST_F(SqliteStoreTest, RemoveSessionRemovesItsQueueAndInboundState) {
  auto store = open_store(options());
  for (const char* id : {"gone", "kept"}) {
    broker::SessionRecord s;
    s.client_id = id;
    s.session_expiry_interval = 100;
    store->save_session(s);
    store->save_queued(make_queued(id, 1, make_message("t", id)));
    store->save_inbound_qos2(id, 4);
  }
  wait_durable(*store, queue_);
  store->remove_session("gone");
  store = reopen(store);
  const auto sessions = store->load_sessions();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].client_id, "kept");
  const auto queued = store->load_queued();
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_EQ(queued[0].client_id, "kept");
  const auto ids = store->load_inbound_qos2();
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(ids[0].first, "kept");
}

TEST_F(SqliteStoreTest, RemoveSessionInTheSameBatchAsItsWritesLeavesNothing) {
  auto o = options();
  o.max_commit_delay = 10s;  // everything below lands in one batch
  auto store = open_store(o);
  broker::SessionRecord s;
  s.client_id = "brief";
  store->save_session(s);
  store->save_queued(make_queued("brief", 1, make_message("t", "x")));
  store->save_inbound_qos2("brief", 2);
  store->remove_session("brief");
  s.client_id = "other";
  store->save_session(s);
  store = reopen(store);
  ASSERT_EQ(store->load_sessions().size(), 1u);
  EXPECT_TRUE(store->load_queued().empty());
  EXPECT_TRUE(store->load_inbound_qos2().empty());
}

TEST_F(SqliteStoreTest, EachCallbackRunsAfterTheCommitOfTheWritesBeforeIt) {
  auto store = open_store(options());
  RawDb reader(store->path(), SQLITE_OPEN_READONLY);
  constexpr int kWrites = 300;
  std::vector<int> order;
  std::vector<std::int64_t> rows_seen;
  for (int i = 0; i < kWrites; ++i) {
    store->save_queued(make_queued("c", static_cast<std::uint64_t>(i), make_message("t", "x")));
    store->when_durable([&, i] {
      order.push_back(i);
      rows_seen.push_back(reader.count("SELECT count(*) FROM queued WHERE seq <= " + std::to_string(i)));
    });
    if (i % 37 == 0) queue_.run_until([] { return true; });  // interleave with completions
  }
  ASSERT_TRUE(queue_.run_until([&] { return order.size() == kWrites; }));
  for (int i = 0; i < kWrites; ++i) {
    EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
    EXPECT_EQ(rows_seen[static_cast<std::size_t>(i)], i + 1) << "callback " << i << " ran before its commit";
  }
}

TEST_F(SqliteStoreTest, WhenDurableWithNothingPendingIsPostedNotRunInline) {
  auto store = open_store(options());
  bool ran = false;
  store->when_durable([&] { ran = true; });
  EXPECT_FALSE(ran);
  ASSERT_TRUE(queue_.run_until([&] { return ran; }));
}

TEST_F(SqliteStoreTest, GroupCommitLetsManyCallbacksShareOneCommit) {
  auto o = options();
  o.max_commit_delay = 20ms;
  auto store = open_store(o);
  const auto before = store->metrics().commits;
  constexpr int kMessages = 2000;
  int acknowledged = 0;
  for (int i = 0; i < kMessages; ++i) {
    store->save_queued(make_queued("sub", static_cast<std::uint64_t>(i), make_message("t", std::string(100, 'p'))));
    store->when_durable([&] { ++acknowledged; });
  }
  ASSERT_TRUE(queue_.run_until([&] { return acknowledged == kMessages; }));
  const auto m = store->metrics();
  EXPECT_LT(m.commits - before, kMessages / 20u);
  EXPECT_GE(m.max_batch_ops, 20u);
  // One sync covers every commit written before it began.
  EXPECT_GE(m.fsyncs, 1u);
  EXPECT_LE(m.fsyncs, m.commits);
}

TEST_F(SqliteStoreTest, CallbacksRunInRegistrationOrderWhateverTheSyncTiming) {
  // Acknowledgements follow these callbacks, and MQTT wants PUBACKs in PUBLISH order:
  // callbacks waiting for a sync and those registered once everything is synced must
  // not overtake each other.
  for (const Durability durability : {Durability::fsync, Durability::batch}) {
    SCOPED_TRACE(durability == Durability::fsync ? "fsync" : "batch");
    auto o = options(durability);
    o.max_commit_delay = 0ms;
    o.min_commit_interval = 0ms;
    auto store = open_store(o);
    std::vector<int> order;
    int registered = 0;
    for (int round = 0; round < 200; ++round) {
      for (int i = 0; i < round % 4; ++i)
        store->save_queued(make_queued("c", static_cast<std::uint64_t>(round * 4 + i), make_message("t", "p")));
      store->when_durable([&order, n = registered++] { order.push_back(n); });
      if (round % 7 == 0) {
        ASSERT_TRUE(queue_.run_until([&] { return static_cast<int>(order.size()) == registered; }));
      }
    }
    ASSERT_TRUE(queue_.run_until([&] { return static_cast<int>(order.size()) == registered; }));
    for (int i = 0; i < registered; ++i) ASSERT_EQ(order[static_cast<std::size_t>(i)], i);
    store->close();
  }
}

TEST_F(SqliteStoreTest, AFullBatchCommitsWithoutWaitingForTheDelay) {
  auto o = options();
  o.max_commit_delay = 60s;
  o.max_batch_ops = 16;
  auto store = open_store(o);
  bool durable = false;
  for (int i = 0; i < 16; ++i) store->save_queued(make_queued("c", static_cast<std::uint64_t>(i), make_message("t", "x")));
  store->when_durable([&] { durable = true; });
  ASSERT_TRUE(queue_.run_until([&] { return durable; }, 10s));
}

TEST_F(SqliteStoreTest, BatchOfCommitBytesCommitsWithoutWaitingForDelayOrInterval) {
  auto o = options();
  o.max_commit_delay = 60s;
  o.min_commit_interval = 60s;
  o.commit_bytes = 4096;
  auto store = open_store(o);
  bool durable = false;
  for (int i = 0; i < 5; ++i)
    store->save_queued(make_queued("c", static_cast<std::uint64_t>(i), make_message("t", std::string(1000, 'p'))));
  store->when_durable([&] { durable = true; });
  ASSERT_TRUE(queue_.run_until([&] { return durable; }, 10s));
}

// Under a steady trickle commits are spaced by min_commit_interval: a small batch waits
// (here until a later write fills it) instead of paying a commit of its own.
TEST_F(SqliteStoreTest, SmallBatchWaitsForTheIntervalAfterACommit) {
  auto o = options();
  o.max_commit_delay = 0ms;
  o.min_commit_interval = 60s;
  o.commit_bytes = 64 * 1024;
  o.commit_quiet = 60s;  // only the interval and commit_bytes decide here
  auto store = open_store(o);
  bool first = false;
  store->save_queued(make_queued("c", 1, make_message("t", "x")));
  store->when_durable([&] { first = true; });
  ASSERT_TRUE(queue_.run_until([&] { return first; }, 10s));  // after a quiet spell: at once
  const auto commits = store->metrics().commits;
  bool small = false;
  bool big = false;
  store->save_queued(make_queued("c", 2, make_message("t", "y")));
  store->when_durable([&] { small = true; });
  // 64 messages of 1,025 bytes: only the last one reaches commit_bytes, so the writer
  // (which may wake at once) takes all of them together with the small one.
  for (int i = 0; i < 64; ++i)
    store->save_queued(make_queued("c", static_cast<std::uint64_t>(10 + i), make_message("t", std::string(1024, 'p'))));
  store->when_durable([&] { big = true; });
  ASSERT_TRUE(queue_.run_until([&] { return small && big; }, 10s));
  EXPECT_EQ(store->metrics().commits - commits, 1u) << "the small batch was committed on its own";
}

// A sizeable batch (commit_bytes / 4) that stops growing is what publishers with full
// windows leave behind while they wait for it: it commits without waiting the interval.
TEST_F(SqliteStoreTest, QuietSizeableBatchCommitsBeforeTheInterval) {
  auto o = options();
  o.max_commit_delay = 0ms;
  o.min_commit_interval = 60s;
  o.commit_bytes = 8192;
  auto store = open_store(o);
  bool first = false;
  store->save_queued(make_queued("c", 1, make_message("t", "x")));
  store->when_durable([&] { first = true; });
  ASSERT_TRUE(queue_.run_until([&] { return first; }, 10s));
  bool durable = false;
  for (int i = 0; i < 3; ++i)
    store->save_queued(make_queued("c", static_cast<std::uint64_t>(10 + i), make_message("t", std::string(1000, 'p'))));
  store->when_durable([&] { durable = true; });
  ASSERT_TRUE(queue_.run_until([&] { return durable; }, 10s));
}

TEST_F(SqliteStoreTest, NewDatabaseUsesTheConfiguredPageSize) {
  auto o = options();
  o.page_size = 2048;
  { auto store = open_store(o); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(o.path.string().c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 2048);
  sqlite3_finalize(st);
  sqlite3_close(db);
  o.page_size = 1000;
  EXPECT_FALSE(SqliteStore::open(o));
}

TEST_F(SqliteStoreTest, TransactionsNeverExceedMaxBatchOps) {
  auto o = options();
  o.max_commit_delay = 50ms;
  o.max_batch_ops = 100;
  auto store = open_store(o);
  const auto before = store->metrics().ops_written;
  for (int i = 0; i < 1000; ++i) store->save_queued(make_queued("c", static_cast<std::uint64_t>(i), make_message("t", "x")));
  wait_durable(*store, queue_);
  EXPECT_LE(store->metrics().max_batch_ops, 100u);
  EXPECT_EQ(store->metrics().ops_written - before, 1000u);
}

// Atomic groups, with a writer that would commit within a millisecond and at most four
// writes to a transaction.
class SqliteStoreAtomicTest : public SqliteStoreTest {
 protected:
  void SetUp() override {
    auto o = options();
    o.max_commit_delay = 1ms;
    o.min_commit_interval = 0ms;
    o.max_batch_ops = 4;
    store_ = open_store(o);
  }
  void TearDown() override { store_->close(); }
  void save_messages(int count) {
    for (int i = 0; i < count; ++i)
      store_->save_queued(make_queued("c", static_cast<std::uint64_t>(i), make_message("t", "x")));
  }

  std::unique_ptr<SqliteStore> store_;
  bool durable_ = false;
};

// What one PUBLISH writes inside begin_atomic/end_atomic goes into one transaction, even
// past max_batch_ops, and nothing of it commits while the group is open.
TEST_F(SqliteStoreAtomicTest, AGroupIsNeverSplitAcrossTransactions) {
  const auto written_before = store_->metrics().ops_written;
  store_->begin_atomic();
  save_messages(10);
  store_->save_inbound_qos2("p", 7);
  store_->when_durable([&] { durable_ = true; });
  // The writer would commit within a millisecond; the open group holds it back.
  EXPECT_FALSE(queue_.run_until([&] { return durable_; }, 300ms));
  EXPECT_EQ(store_->metrics().ops_written, written_before);
  store_->end_atomic();
  ASSERT_TRUE(queue_.run_until([&] { return durable_; }));
  EXPECT_EQ(store_->metrics().ops_written - written_before, 11u);
  EXPECT_GE(store_->metrics().max_batch_ops, 11u) << "the group was split";
}

// Groups nest: only the outermost end_atomic closes one.
TEST_F(SqliteStoreAtomicTest, NestedGroupsCloseWithTheOutermost) {
  store_->begin_atomic();
  store_->begin_atomic();
  save_messages(6);
  store_->end_atomic();
  store_->when_durable([&] { durable_ = true; });
  EXPECT_FALSE(queue_.run_until([&] { return durable_; }, 200ms));
  store_->end_atomic();
  ASSERT_TRUE(queue_.run_until([&] { return durable_; }));
  EXPECT_GE(store_->metrics().max_batch_ops, 6u);
}

TEST_F(SqliteStoreTest, AMessageAcknowledgedBeforeItsCommitCostsNoRowWrite) {
  auto o = options();
  o.max_commit_delay = 2s;  // the whole exchange below fits in one batch:
  o.commit_bytes = 64 * 1024 * 1024;  // its 100 KB of messages must not fill one early
  auto store = open_store(o);
  const auto before = store->metrics();
  const auto wal_before = file_size_or_zero(store->path().string() + "-wal");
  for (std::uint64_t i = 0; i < 500; ++i) {
    store->save_queued(make_queued("sub", i, make_message("t", std::string(100, 'x'))));
    auto sent = make_queued("sub", i, make_message("t", std::string(100, 'x')));
    sent.stage = Stage::awaiting_puback;
    sent.packet_id = static_cast<std::uint16_t>(i + 1);
    store->save_queued(sent);
    store->remove_queued("sub", i);
  }
  store->save_retained(make_message("r", "1"));
  store->remove_retained("r");
  store->save_inbound_qos2("pub", 1);
  store->remove_inbound_qos2("pub", 1);
  broker::SessionRecord session;
  session.client_id = "sub";
  store->save_session(session);
  wait_durable(*store, queue_);
  const auto after = store->metrics();
  EXPECT_EQ(after.rows_changed - before.rows_changed, 1u);  // only the session row
  EXPECT_EQ(after.ops_coalesced - before.ops_coalesced, 1002u);
  EXPECT_LE(file_size_or_zero(store->path().string() + "-wal") - wal_before, 3u * 4096u + 200u);
  EXPECT_TRUE(store->load_queued().empty());
}

TEST_F(SqliteStoreTest, OnlyFsyncModeDefersAcknowledgements) {
  auto fsync = open_store(options(Durability::fsync));
  EXPECT_TRUE(fsync->defers_acknowledgements());
  fsync.reset();
  auto batch = open_store(options(Durability::batch));
  EXPECT_FALSE(batch->defers_acknowledgements());
  batch->save_queued(make_queued("c", 1, make_message("t", "x")));
  wait_durable(*batch, queue_);
  EXPECT_EQ(batch->metrics().fsyncs, 0u);
  batch = reopen(batch);
  EXPECT_EQ(batch->load_queued().size(), 1u);
}

TEST_F(SqliteStoreTest, PurgeExpiredDropsUnsentExpiredMessagesOnly) {
  auto store = open_store(options());
  const auto soon = clocks_.steady() + 5s;
  store->save_retained(full_message(soon));
  store->save_retained(make_message("forever", "x"));
  store->save_queued(make_queued("c", 1, full_message(soon)));
  auto in_flight = make_queued("c", 2, full_message(soon));
  in_flight.stage = Stage::awaiting_puback;
  in_flight.packet_id = 1;
  store->save_queued(in_flight);
  store->save_queued(make_queued("c", 3, make_message("t", "no expiry")));
  wait_durable(*store, queue_);
  clocks_.system_ms += 6000;
  clocks_.steady_ns += std::chrono::nanoseconds(6s).count();
  store->purge_expired();
  wait_durable(*store, queue_);
  EXPECT_EQ(store->metrics().expired_removed, 2u);
  RawDb raw(store->path(), SQLITE_OPEN_READONLY);
  EXPECT_EQ(raw.count("SELECT count(*) FROM retained"), 1);
  EXPECT_EQ(raw.count("SELECT count(*) FROM queued"), 2);
}

TEST_F(SqliteStoreTest, ExpiredMessagesAreDroppedAtStartUp) {
  auto store = open_store(options());
  store->save_retained(full_message(clocks_.steady() + 1s));
  store->save_queued(make_queued("c", 1, full_message(clocks_.steady() + 1s)));
  store->save_queued(make_queued("c", 2, make_message("t", "x")));
  store->close();
  store.reset();
  clocks_.system_ms += 2000;
  store = open_store(options());
  EXPECT_TRUE(store->load_retained().empty());
  const auto queued = store->load_queued();
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_EQ(queued[0].seq, 2u);
  RawDb raw(store->path(), SQLITE_OPEN_READONLY);
  EXPECT_EQ(raw.count("SELECT count(*) FROM queued"), 1);
}

TEST_F(SqliteStoreTest, DatabaseIsInWalModeWithoutPointerMaps) {
  auto store = open_store(options());
  RawDb raw(store->path(), SQLITE_OPEN_READONLY);
  EXPECT_EQ(raw.count("PRAGMA auto_vacuum"), 0);
  EXPECT_EQ(raw.count("PRAGMA user_version"), schema::kCurrentVersion);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(raw.handle(), "PRAGMA journal_mode", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
  sqlite3_finalize(stmt);
}

TEST_F(SqliteStoreTest, CloseCommitsWhatIsPendingAndPostsItsCallbacks) {
  auto o = options();
  o.max_commit_delay = 60s;
  auto store = open_store(o);
  bool durable = false;
  store->save_queued(make_queued("c", 1, make_message("t", "x")));
  store->when_durable([&] { durable = true; });
  store->close();
  ASSERT_TRUE(queue_.run_until([&] { return durable; }, 1s));
  store.reset();
  store = open_store(options());
  EXPECT_EQ(store->load_queued().size(), 1u);
}

}  // namespace
}  // namespace tern::store::test
