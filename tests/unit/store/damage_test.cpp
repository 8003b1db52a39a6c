// Start-up never fails because of what the database file holds: damaged files are moved
// aside and replaced by an empty store; unreadable rows are skipped.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "store/schema.hpp"
#include "store/sqlite_store.hpp"
#include "store/store_test_support.hpp"

namespace tern::store::test {
namespace {

class DamageTest : public ::testing::Test {
 protected:
  std::filesystem::path db_path() const { return dir_.path() / "ternd.db"; }

  std::vector<std::filesystem::path> moved_aside() const {
    std::vector<std::filesystem::path> out;
    for (const auto& e : std::filesystem::directory_iterator(dir_.path())) {
      const std::string name = e.path().filename().string();
      if (name.starts_with("ternd.db.damaged-") && !name.ends_with("-wal") && !name.ends_with("-shm"))
        out.push_back(e.path());
    }
    return out;
  }

  // Writes a real database with one queued message and closes it.
  void make_valid_database(int messages = 1) {
    auto store = open_store(options_for(dir_.path(), queue_));
    for (int i = 0; i < messages; ++i)
      store->save_queued(make_queued("c", static_cast<std::uint64_t>(i), make_message("t", std::string(500, 'x'))));
    store->close();
  }

  // Opens the store, expecting the damaged file to be moved aside loudly, and checks the
  // replacement store works.
  void expect_moved_aside_and_fresh_start(const std::string& original_bytes) {
    ::testing::internal::CaptureStderr();
    auto store = SqliteStore::open(options_for(dir_.path(), queue_));
    const std::string log = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(store.has_value()) << store.error();
    EXPECT_EQ((*store)->damaged_stores_moved_aside(), 1u);
    EXPECT_NE(log.find("\"error\""), std::string::npos) << log;
    EXPECT_NE(log.find("\"store\""), std::string::npos) << log;
    EXPECT_NE(log.find("DAMAGED"), std::string::npos) << log;

    const auto aside = moved_aside();
    ASSERT_EQ(aside.size(), 1u);
    const std::string name = aside[0].filename().string();
    // ternd.db.damaged-YYYYMMDDTHHMMSSZ
    ASSERT_EQ(name.size(), std::string("ternd.db.damaged-").size() + 16) << name;
    EXPECT_EQ(name[std::string("ternd.db.damaged-").size() + 8], 'T');
    EXPECT_EQ(name.back(), 'Z');
    std::ifstream in(aside[0], std::ios::binary);
    const std::string kept((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Compared by size and first difference: the bytes themselves would flood the log.
    EXPECT_EQ(kept.size(), original_bytes.size());
    const auto diff = std::mismatch(kept.begin(), kept.end(), original_bytes.begin(), original_bytes.end());
    EXPECT_TRUE(diff.first == kept.end()) << "the damaged file changed at byte " << (diff.first - kept.begin());

    auto& s = **store;
    EXPECT_TRUE(s.load_queued().empty());
    s.save_queued(make_queued("after", 1, make_message("t", "x")));
    wait_durable(s, queue_);
    s.close();
    auto again = open_store(options_for(dir_.path(), queue_));
    EXPECT_EQ(again->load_queued().size(), 1u);
    EXPECT_EQ(again->damaged_stores_moved_aside(), 0u);
  }

  std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  TempDir dir_;
  OwnerQueue queue_;
};

TEST_F(DamageTest, GarbageFileIsMovedAside) {
  std::string garbage;
  for (int i = 0; i < 10000; ++i) garbage.push_back(static_cast<char>((i * 7919) % 251));
  std::ofstream(db_path(), std::ios::binary) << garbage;
  expect_moved_aside_and_fresh_start(garbage);
}

TEST_F(DamageTest, TruncatedDatabaseIsMovedAside) {
  make_valid_database(200);
  const auto size = std::filesystem::file_size(db_path());
  ASSERT_GT(size, 40'000u);
  std::filesystem::resize_file(db_path(), size / 2);
  expect_moved_aside_and_fresh_start(read_file(db_path()));
}

TEST_F(DamageTest, DatabaseTruncatedInsideItsHeaderIsMovedAside) {
  make_valid_database();
  std::filesystem::resize_file(db_path(), 60);
  expect_moved_aside_and_fresh_start(read_file(db_path()));
}

TEST_F(DamageTest, CorruptedPagesAreMovedAside) {
  make_valid_database(200);
  std::string bytes = read_file(db_path());
  for (std::size_t i = 4096 * 2; i < bytes.size(); i += 97) bytes[i] = static_cast<char>(~bytes[i]);
  std::ofstream(db_path(), std::ios::binary | std::ios::trunc) << bytes;
  expect_moved_aside_and_fresh_start(bytes);
}

TEST_F(DamageTest, SchemaVersionFromTheFutureIsMovedAside) {
  make_valid_database();
  {
    RawDb raw(db_path());
    raw.exec("PRAGMA user_version = 999");
  }
  expect_moved_aside_and_fresh_start(read_file(db_path()));
}

TEST_F(DamageTest, SomebodyElsesDatabaseIsMovedAside) {
  {
    RawDb raw(db_path());
    raw.exec("CREATE TABLE photos(id INTEGER PRIMARY KEY, data BLOB)");
  }
  expect_moved_aside_and_fresh_start(read_file(db_path()));
}

TEST_F(DamageTest, TablesMissingAtTheCurrentVersionAreMovedAside) {
  make_valid_database();
  {
    RawDb raw(db_path());
    raw.exec("DROP TABLE queued");
  }
  expect_moved_aside_and_fresh_start(read_file(db_path()));
}

TEST_F(DamageTest, AnEmptyFileIsANewDatabase) {
  std::ofstream(db_path(), std::ios::binary).flush();
  auto store = open_store(options_for(dir_.path(), queue_));
  EXPECT_EQ(store->damaged_stores_moved_aside(), 0u);
  EXPECT_TRUE(moved_aside().empty());
}

TEST_F(DamageTest, AnUnusablePathIsAnErrorNotACrash) {
  std::ofstream(dir_.path() / "file").flush();
  auto o = options_for(dir_.path(), queue_);
  o.path = dir_.path() / "file" / "ternd.db";  // a directory that cannot exist
  auto store = SqliteStore::open(o);
  EXPECT_FALSE(store.has_value());
}

TEST_F(DamageTest, AVersionOneDatabaseIsMigratedKeepingItsRows) {
  {
    auto db = sqlite::Database::open(db_path(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    ASSERT_TRUE(db.has_value());
    // As builds before version 3 created their files.
    ASSERT_TRUE(db->exec("PRAGMA page_size = 1024").has_value());
    ASSERT_TRUE(db->exec("PRAGMA auto_vacuum = INCREMENTAL").has_value());
    ASSERT_TRUE(db->exec("PRAGMA journal_mode = WAL").has_value());
    ASSERT_TRUE(schema::migrate(*db, 1).has_value());
    RawDb raw(db_path());
    EXPECT_EQ(raw.count("PRAGMA user_version"), 1);
    EXPECT_EQ(raw.count("PRAGMA auto_vacuum"), 2);
    raw.exec("INSERT INTO sessions VALUES('old-client', 5, 3600, x'01')");
    // Two sessions' queues, inserted out of order, one entry of every kind of content.
    const std::string cols =
        "client_id, seq, qos, retain, subscription_ids, packet_id, stage, topic, payload, message_qos, "
        "message_retain, payload_format, content_type, response_topic, correlation_data, user_properties, "
        "expires_at_ms, origin_client_id";
    raw.exec("INSERT INTO queued(" + cols + ") VALUES('old-client', 7, 2, 0, x'', 3, 3, NULL, NULL, NULL, NULL, "
             "NULL, NULL, NULL, NULL, NULL, NULL, NULL)");
    raw.exec("INSERT INTO queued(" + cols + ") VALUES('old-client', 2, 1, 1, x'00000005', 0, 0, 'a/b', x'00ff', 1, "
             "1, 1, 'text/plain', 'reply/to', x'c0', x'2600016b000176', 4102444800000, NULL)");
    raw.exec("INSERT INTO queued(" + cols + ") VALUES('other', 1, 1, 0, x'', 12, 1, 'c', 'text payload', 1, 0, "
             "NULL, NULL, NULL, NULL, x'', NULL, 'origin')");
  }
  auto store = open_store(options_for(dir_.path(), queue_));
  EXPECT_EQ(store->damaged_stores_moved_aside(), 0u);
  const auto sessions = store->load_sessions();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].client_id, "old-client");
  using Stage = broker::QueuedRecord::Stage;
  const auto queued = store->load_queued();
  ASSERT_EQ(queued.size(), 3u);
  EXPECT_EQ(store->metrics().rows_skipped, 0u);
  EXPECT_EQ(queued[0].client_id, "old-client");
  EXPECT_EQ(queued[0].seq, 2u);
  EXPECT_EQ(queued[0].stage, Stage::queued);
  EXPECT_TRUE(queued[0].retain);
  EXPECT_EQ(queued[0].subscription_ids, (std::vector<std::uint32_t>{5}));
  ASSERT_NE(queued[0].message, nullptr);
  const broker::Message& m = *queued[0].message;
  EXPECT_EQ(m.topic, "a/b");
  EXPECT_EQ(m.payload, std::string("\x00\xff", 2));
  EXPECT_EQ(m.qos, mqtt::QoS::at_least_once);
  EXPECT_TRUE(m.retain);
  EXPECT_EQ(m.payload_format_indicator, 1);
  EXPECT_EQ(m.content_type, "text/plain");
  EXPECT_EQ(m.response_topic, "reply/to");
  EXPECT_EQ(m.correlation_data, std::string("\xc0"));
  EXPECT_EQ(m.user_properties, std::string("\x26\x00\x01k\x00\x01v", 7));
  EXPECT_TRUE(m.expires_at.has_value());  // 2100-01-01
  EXPECT_EQ(queued[1].seq, 7u);
  EXPECT_EQ(queued[1].stage, Stage::awaiting_pubcomp);
  EXPECT_EQ(queued[1].packet_id, 3);
  EXPECT_EQ(queued[1].message, nullptr);
  EXPECT_EQ(queued[2].client_id, "other");
  EXPECT_EQ(queued[2].stage, Stage::awaiting_puback);
  EXPECT_EQ(queued[2].packet_id, 12);
  ASSERT_NE(queued[2].message, nullptr);
  EXPECT_EQ(queued[2].message->payload, "text payload");

  // The migrated queue is the store's own: entries are replaced and removed by key.
  auto moved_on = queued[0];
  moved_on.stage = Stage::awaiting_puback;
  moved_on.packet_id = 40;
  store->save_queued(moved_on);
  store->remove_queued("other", 1);
  store->save_queued(make_queued("other", 2, make_message("d", "new")));
  wait_durable(*store, queue_);
  store->close();
  store = open_store(options_for(dir_.path(), queue_));
  const auto after = store->load_queued();
  ASSERT_EQ(after.size(), 3u);
  EXPECT_EQ(after[0].stage, Stage::awaiting_puback);
  EXPECT_EQ(after[0].packet_id, 40);
  EXPECT_EQ(after[2].client_id, "other");
  EXPECT_EQ(after[2].seq, 2u);
  store->close();

  RawDb raw(db_path(), SQLITE_OPEN_READONLY);
  EXPECT_EQ(raw.count("PRAGMA user_version"), schema::kCurrentVersion);
  EXPECT_EQ(raw.count("SELECT count(*) FROM stream_events"), 0);
  EXPECT_EQ(raw.count("SELECT count(*) FROM queued"), 3);
  EXPECT_EQ(raw.count("PRAGMA auto_vacuum"), 0) << "the upgrade drops the pointer maps";
}

TEST_F(DamageTest, AVersionTwoQueueMigratesAndKeepsBeingWritten) {
  {
    auto db = sqlite::Database::open(db_path(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    ASSERT_TRUE(db.has_value());
    ASSERT_TRUE(db->exec("PRAGMA journal_mode = WAL").has_value());
    ASSERT_TRUE(schema::migrate(*db, 2).has_value());
    RawDb raw(db_path());
    for (int seq = 1; seq <= 300; ++seq)
      raw.exec("INSERT INTO queued(client_id, seq, qos, retain, subscription_ids, packet_id, stage, topic, payload, "
               "message_qos, message_retain, user_properties) VALUES('c', " + std::to_string(seq) +
               ", 1, 0, x'', 0, 0, 't', 'p', 1, 0, x'')");
  }
  auto store = open_store(options_for(dir_.path(), queue_));
  ASSERT_EQ(store->load_queued().size(), 300u);
  for (std::uint64_t seq = 1; seq <= 150; ++seq) store->remove_queued("c", seq);
  store->save_queued(make_queued("c", 301, make_message("t", "q")));
  wait_durable(*store, queue_);
  store->close();
  store = open_store(options_for(dir_.path(), queue_));
  const auto queued = store->load_queued();
  ASSERT_EQ(queued.size(), 151u);
  EXPECT_EQ(queued.front().seq, 151u);
  EXPECT_EQ(queued.back().seq, 301u);
}

TEST_F(DamageTest, RowsWithGarbageValuesAreSkippedWithAWarning) {
  {
    // Queue rows of version 2 (columns), converted by the migration to version 3
    // entries: what the old loader refused, the new one refuses.
    auto db = sqlite::Database::open(db_path(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    ASSERT_TRUE(db.has_value());
    ASSERT_TRUE(schema::migrate(*db, 2).has_value());
  }
  {
    RawDb raw(db_path());
    const std::string cols =
        "client_id, seq, qos, retain, subscription_ids, packet_id, stage, topic, payload, message_qos, "
        "message_retain, user_properties, origin_client_id";
    auto insert = [&](const std::string& values) { raw.exec("INSERT INTO queued(" + cols + ") VALUES(" + values + ")"); };
    insert("'good', 1, 1, 0, x'', 0, 0, 'a/b', x'00', 1, 0, x'', ''");
    insert("'bad-qos', 1, 7, 0, x'', 0, 0, 'a/b', x'00', 1, 0, x'', ''");
    insert("'bad-stage', 1, 1, 0, x'', 5, 9, 'a/b', x'00', 1, 0, x'', ''");
    insert("'bad-topic', 1, 1, 0, x'', 0, 0, CAST(x'61ff2f62' AS TEXT), x'00', 1, 0, x'', ''");
    insert("'wild-topic', 1, 1, 0, x'', 0, 0, 'a/#', x'00', 1, 0, x'', ''");
    insert("'bad-ids', 1, 1, 0, x'010203', 0, 0, 'a/b', x'00', 1, 0, x'', ''");
    insert("'bad-props', 1, 1, 0, x'', 0, 0, 'a/b', x'00', 1, 0, x'2600ff', ''");
    insert("'text-seq', 'one', 1, 0, x'', 0, 0, 'a/b', x'00', 1, 0, x'', ''");
    insert("'no-message', 1, 1, 0, x'', 3, 1, NULL, NULL, NULL, NULL, NULL, NULL");
    insert("'inconsistent', 1, 1, 0, x'', 0, 1, 'a/b', x'00', 1, 0, x'', ''");
    insert("CAST(x'c0af' AS TEXT), 1, 1, 0, x'', 0, 0, 'a/b', x'00', 1, 0, x'', ''");
    insert("'null-payload', 1, 1, 0, x'', 0, 0, 'a/b', NULL, 1, 0, x'', ''");
    insert("'text-qos', 1, 'one', 0, x'', 0, 0, 'a/b', x'00', 1, 0, x'', ''");
    raw.exec("INSERT INTO sessions VALUES('good', 5, 10, x'01')");
    raw.exec("INSERT INTO sessions VALUES('bad-version', 3, 10, x'01')");
    raw.exec("INSERT INTO sessions VALUES('bad-subs', 5, 10, x'01000561')");
    raw.exec("INSERT INTO sessions VALUES('hash-filter', 5, 10, x'010003612f230000000000')");
    raw.exec("INSERT INTO sessions VALUES('bad-filter', 5, 10, x'010003612b620000000000')");  // "a+b"
    raw.exec("INSERT INTO sessions VALUES('bad-expiry', 5, -1, x'01')");
    raw.exec("INSERT INTO retained(topic, qos, payload, user_properties, origin_client_id) VALUES('r/ok', 1, x'', x'', '')");
    raw.exec("INSERT INTO retained(topic, qos, payload, user_properties, origin_client_id) VALUES('r/bad', 3, x'', x'', '')");
    raw.exec("INSERT INTO retained(topic, qos, payload, payload_format, user_properties, origin_client_id) "
             "VALUES('r/pf', 1, x'', 2, x'', '')");
    raw.exec("INSERT INTO inbound_qos2 VALUES('good', 1)");
    raw.exec("INSERT INTO inbound_qos2 VALUES('zero', 0)");
    raw.exec("INSERT INTO inbound_qos2 VALUES('big', 70000)");
  }
  ::testing::internal::CaptureStderr();
  auto store = open_store(options_for(dir_.path(), queue_));
  const auto queued = store->load_queued();
  const auto sessions = store->load_sessions();
  const auto retained = store->load_retained();
  const auto inbound = store->load_inbound_qos2();
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_EQ(queued[0].client_id, "good");
  std::vector<std::string> session_ids;
  for (const auto& s : sessions) session_ids.push_back(s.client_id);
  // "a/#" is a valid filter: only the malformed ones go.
  EXPECT_EQ(session_ids, (std::vector<std::string>{"good", "hash-filter"}));
  ASSERT_EQ(retained.size(), 1u);
  EXPECT_EQ(retained[0]->topic, "r/ok");
  ASSERT_EQ(inbound.size(), 1u);
  EXPECT_EQ(inbound[0].first, "good");
  EXPECT_EQ(store->metrics().rows_skipped, 12u + 4u + 2u + 2u);
  EXPECT_NE(log.find("skipping queue entry"), std::string::npos);
  EXPECT_NE(log.find("\"warning\""), std::string::npos);
}

TEST_F(DamageTest, QueueEntriesWithGarbageAreSkippedAndTheRestStillWork) {
  make_valid_database(0);
  {
    RawDb raw(db_path());
    raw.exec("INSERT INTO queue_owners(id, client_id) VALUES(1, 'c'), (2, CAST(x'c0af' AS TEXT))");
    raw.exec("INSERT INTO queued(owner, seq, entry) VALUES(1, 1, x'0101000000000100010001740178')");  // good
    raw.exec("INSERT INTO queued(owner, seq, entry) VALUES(1, 2, x'0201')");                      // format 2
    raw.exec("INSERT INTO queued(owner, seq, entry) VALUES(1, 3, x'01010000000001000100017401')");    // truncated
    raw.exec("INSERT INTO queued(owner, seq, entry) VALUES(1, 4, 'text')");                      // format 't'
    raw.exec("INSERT INTO queued(owner, seq, entry) VALUES(1, 5, 17)");                          // not bytes
    raw.exec("INSERT INTO queued(owner, seq, entry) VALUES(1, 'six', x'0101000000000100010001740178')");
    raw.exec("INSERT INTO queued(owner, seq, entry) VALUES(2, 1, x'0101000000000100010001740178')");  // bad client id
    raw.exec("INSERT INTO queued(owner, seq, entry) VALUES(3, 1, x'0101000000000100010001740178')");  // no owner
  }
  ::testing::internal::CaptureStderr();
  auto store = open_store(options_for(dir_.path(), queue_));
  const auto queued = store->load_queued();
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_EQ(queued[0].client_id, "c");
  EXPECT_EQ(queued[0].seq, 1u);
  ASSERT_NE(queued[0].message, nullptr);
  EXPECT_EQ(queued[0].message->payload, "x");
  EXPECT_EQ(store->metrics().rows_skipped, 6u);
  EXPECT_NE(log.find("unknown queue entry format"), std::string::npos) << log;
  EXPECT_NE(log.find("queue entry is malformed"), std::string::npos) << log;
  // The good entry is still the store's to replace and remove.
  store->remove_queued("c", 1);
  store->save_queued(make_queued("c", 7, make_message("t", "y")));
  wait_durable(*store, queue_);
  store->close();
  store = open_store(options_for(dir_.path(), queue_));
  ::testing::internal::CaptureStderr();
  const auto after = store->load_queued();
  ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].seq, 7u);
}

}  // namespace
}  // namespace tern::store::test
