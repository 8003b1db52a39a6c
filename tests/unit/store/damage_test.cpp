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
    ASSERT_TRUE(schema::migrate(*db, 1).has_value());
    RawDb raw(db_path());
    EXPECT_EQ(raw.count("PRAGMA user_version"), 1);
    raw.exec("INSERT INTO sessions VALUES('old-client', 5, 3600, x'01')");
  }
  auto store = open_store(options_for(dir_.path(), queue_));
  EXPECT_EQ(store->damaged_stores_moved_aside(), 0u);
  const auto sessions = store->load_sessions();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].client_id, "old-client");
  RawDb raw(db_path(), SQLITE_OPEN_READONLY);
  EXPECT_EQ(raw.count("PRAGMA user_version"), schema::kCurrentVersion);
  EXPECT_EQ(raw.count("SELECT count(*) FROM stream_events"), 0);
}

TEST_F(DamageTest, RowsWithGarbageValuesAreSkippedWithAWarning) {
  make_valid_database(0);
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
  EXPECT_EQ(store->metrics().rows_skipped, 10u + 4u + 2u + 2u);
  EXPECT_NE(log.find("skipping queue entry"), std::string::npos);
  EXPECT_NE(log.find("\"warning\""), std::string::npos);
}

}  // namespace
}  // namespace tern::store::test
