#include "store/schema.hpp"

#include <iterator>
#include <memory>
#include <optional>
#include <string>

#include "store/records.hpp"

namespace tern::store::schema {
namespace {

// Version 1. Message fields are stored beside each queue entry rather than in a shared
// messages table: one row per entry is one B-tree write on the hot path, with no
// reference counting to keep consistent across crashes. WITHOUT ROWID keeps queue
// entries and inbound packet ids in their primary-key B-tree only (no second index to
// write). Expiry columns hold wall-clock Unix milliseconds; no index on them, because
// purging scans rarely while every indexed insert would cost one more page write.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE sessions(
  client_id TEXT NOT NULL PRIMARY KEY,
  protocol_version INTEGER NOT NULL,
  expiry_interval INTEGER NOT NULL,
  subscriptions BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE retained(
  topic TEXT NOT NULL PRIMARY KEY,
  qos INTEGER NOT NULL,
  payload BLOB NOT NULL,
  payload_format INTEGER,
  content_type TEXT,
  response_topic TEXT,
  correlation_data BLOB,
  user_properties BLOB NOT NULL,
  expires_at_ms INTEGER,
  origin_client_id TEXT NOT NULL
);

CREATE TABLE queued(
  client_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  qos INTEGER NOT NULL,
  retain INTEGER NOT NULL,
  subscription_ids BLOB NOT NULL,
  packet_id INTEGER NOT NULL,
  stage INTEGER NOT NULL,
  topic TEXT,
  payload BLOB,
  message_qos INTEGER,
  message_retain INTEGER,
  payload_format INTEGER,
  content_type TEXT,
  response_topic TEXT,
  correlation_data BLOB,
  user_properties BLOB,
  expires_at_ms INTEGER,
  origin_client_id TEXT,
  PRIMARY KEY(client_id, seq)
) WITHOUT ROWID;

CREATE TABLE inbound_qos2(
  client_id TEXT NOT NULL,
  packet_id INTEGER NOT NULL,
  PRIMARY KEY(client_id, packet_id)
) WITHOUT ROWID;

PRAGMA user_version = 1;
)sql";

// Version 2: event streams. Offsets are dense per stream and only grow, so the primary
// key keeps events in append order and retention deletes a key prefix. byte_start is
// the stream's payload byte count before the event: retention by bytes finds its cut
// without summing. `streams` remembers where a stream ended when retention emptied it,
// so offsets never restart.
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE stream_events(
  stream TEXT NOT NULL,
  event_offset INTEGER NOT NULL,
  timestamp_ms INTEGER NOT NULL,
  byte_start INTEGER NOT NULL,
  topic TEXT NOT NULL,
  payload BLOB NOT NULL,
  qos INTEGER NOT NULL,
  retain INTEGER NOT NULL,
  payload_format INTEGER,
  content_type TEXT,
  response_topic TEXT,
  correlation_data BLOB,
  user_properties BLOB NOT NULL,
  expires_at_ms INTEGER,
  origin_client_id TEXT NOT NULL,
  PRIMARY KEY(stream, event_offset)
) WITHOUT ROWID;

CREATE TABLE streams(
  name TEXT NOT NULL PRIMARY KEY,
  next_offset INTEGER NOT NULL,
  bytes_end INTEGER NOT NULL
) WITHOUT ROWID;

PRAGMA user_version = 2;
)sql";

// Version 3: lean queue rows. A queue row is written for every message that reaches an
// offline persistent session, so its size and its B-tree's write pattern set the disk
// bytes per message. A row is now an integer key, the session as a small integer (its
// client id once, in queue_owners) and the entry in one blob (records.hpp), instead of
// the client id repeated and eighteen columns. The key is a rowid that only grows (SQLite
// picks max + 1): every insert appends to the rightmost leaf, which SQLite splits by
// starting a new page, leaving the full one untouched; a WITHOUT ROWID key, even an
// increasing one, rebalances several leaves on each split and writes about half as many
// pages again. (owner, seq) has no index: the store keeps that map in memory (a few
// bytes a row), because an index would be one more B-tree written on every insert.
// purge_at_ms is the expiry of an entry not yet sent (NULL otherwise): what purging
// selects on.
constexpr const char* kSchemaV3 = R"sql(
CREATE TABLE queue_owners(
  id INTEGER PRIMARY KEY,
  client_id TEXT NOT NULL UNIQUE
);

CREATE TABLE queue_entries(
  id INTEGER PRIMARY KEY,
  owner INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  entry BLOB NOT NULL,
  purge_at_ms INTEGER
);

INSERT INTO queue_owners(client_id) SELECT DISTINCT client_id FROM queued ORDER BY client_id;

INSERT INTO queue_entries(owner, seq, entry, purge_at_ms)
SELECT o.id, q.seq,
       tern_v2_queue_entry(q.qos, q.retain, q.subscription_ids, q.packet_id, q.stage, q.topic, q.payload,
                           q.message_qos, q.message_retain, q.payload_format, q.content_type, q.response_topic,
                           q.correlation_data, q.user_properties, q.expires_at_ms),
       CASE WHEN q.stage = 0 THEN q.expires_at_ms END
FROM queued q JOIN queue_owners o ON o.client_id = q.client_id
ORDER BY q.client_id, q.seq;

DROP TABLE queued;
ALTER TABLE queue_entries RENAME TO queued;

PRAGMA user_version = 3;
)sql";

// tern_v2_queue_entry(qos, retain, subscription_ids, packet_id, stage, topic, payload,
// message_qos, message_retain, payload_format, content_type, response_topic,
// correlation_data, user_properties, expires_at_ms): a version 2 queue row's columns as
// a version 3 entry blob. It judges nothing: a value that does not fit the blob's field
// makes a blob of format 0, and the loader, which checks every entry, skips and counts
// it with the rows it finds wrong itself, as it did before the migration.
void v2_queue_entry(sqlite3_context* context, int argc, sqlite3_value** argv) {
  if (argc != 15) {
    sqlite3_result_error(context, "tern_v2_queue_entry takes 15 arguments", -1);
    return;
  }
  bool fits = true;
  auto integer = [&](int i, std::int64_t max) -> std::int64_t {
    if (sqlite3_value_type(argv[i]) != SQLITE_INTEGER) {
      fits = false;
      return 0;
    }
    const std::int64_t v = sqlite3_value_int64(argv[i]);
    if (v < 0 || v > max) fits = false;
    return fits ? v : 0;
  };
  auto bytes = [&](int i) -> std::string {
    const int type = sqlite3_value_type(argv[i]);
    if (type != SQLITE_TEXT && type != SQLITE_BLOB) {
      fits = false;
      return {};
    }
    const auto* p = static_cast<const char*>(sqlite3_value_blob(argv[i]));
    return std::string(p == nullptr ? "" : p, static_cast<std::size_t>(sqlite3_value_bytes(argv[i])));
  };
  auto optional_bytes = [&](int i) -> std::optional<std::string> {
    if (sqlite3_value_type(argv[i]) == SQLITE_NULL) return std::nullopt;
    return bytes(i);
  };

  broker::QueuedRecord r;
  r.qos = static_cast<mqtt::QoS>(integer(0, 255));
  r.retain = integer(1, 1) != 0;
  const std::string ids = bytes(2);
  if (ids.size() % 4 != 0) fits = false;
  for (std::size_t i = 0; fits && i < ids.size(); i += 4) {
    std::uint32_t id = 0;
    for (std::size_t k = 0; k < 4; ++k) id = (id << 8) | static_cast<std::uint8_t>(ids[i + k]);
    r.subscription_ids.push_back(id);
  }
  r.packet_id = static_cast<std::uint16_t>(integer(3, 0xFFFF));
  r.stage = static_cast<broker::QueuedRecord::Stage>(integer(4, 255));
  std::optional<std::int64_t> expires_at_ms;
  if (sqlite3_value_type(argv[5]) != SQLITE_NULL) {
    auto m = std::make_shared<broker::Message>();
    m->topic = bytes(5);
    m->payload = bytes(6);
    m->qos = static_cast<mqtt::QoS>(integer(7, 255));
    m->retain = integer(8, 1) != 0;
    if (sqlite3_value_type(argv[9]) != SQLITE_NULL)
      m->payload_format_indicator = static_cast<std::uint8_t>(integer(9, 255));
    m->content_type = optional_bytes(10);
    m->response_topic = optional_bytes(11);
    m->correlation_data = optional_bytes(12);
    if (sqlite3_value_type(argv[13]) != SQLITE_NULL) m->user_properties = bytes(13);
    if (sqlite3_value_type(argv[14]) == SQLITE_INTEGER)
      expires_at_ms = sqlite3_value_int64(argv[14]);
    else if (sqlite3_value_type(argv[14]) != SQLITE_NULL)
      fits = false;
    r.message = std::move(m);
  }
  if (!fits) {
    static constexpr char kUnconvertible = 0;
    sqlite3_result_blob(context, &kUnconvertible, 1, SQLITE_STATIC);
    return;
  }
  const std::string entry = records::encode_queue_entry(r, expires_at_ms);
  sqlite3_result_blob64(context, entry.data(), entry.size(), SQLITE_TRANSIENT);
}

constexpr Migration kMigrations[] = {
    {1, kSchemaV1},
    {2, kSchemaV2},
    {3, kSchemaV3},
};

}  // namespace

static_assert(std::size(kMigrations) == kCurrentVersion);
static_assert([] {
  for (std::size_t i = 0; i < std::size(kMigrations); ++i)
    if (kMigrations[i].to_version != static_cast<std::int64_t>(i) + 1) return false;
  return true;
}());

Expected<void, MigrationError> migrate(sqlite::Database& db, std::int64_t target) {
  auto sqlite_error = [](sqlite::Error e) {
    return make_unexpected(MigrationError{MigrationError::Kind::sqlite, 0, std::move(e)});
  };
  auto version = db.query_int("PRAGMA user_version");
  if (!version) return sqlite_error(version.error());
  if (*version > kCurrentVersion)
    return make_unexpected(MigrationError{MigrationError::Kind::future_version, *version, {}});
  if (*version < 0) return make_unexpected(MigrationError{MigrationError::Kind::invalid_version, *version, {}});

  if (*version == 0) {
    // Version 0 is either a brand-new file or one somebody else created. Only an empty
    // schema is ours to initialise.
    auto objects = db.query_int("SELECT count(*) FROM sqlite_schema");
    if (!objects) return sqlite_error(objects.error());
    if (*objects != 0) return make_unexpected(MigrationError{MigrationError::Kind::invalid_version, 0, {}});
  }

  // Used by the version 3 migration; this connection only (not persisted in the file).
  if (const int rc = sqlite3_create_function_v2(db.handle(), "tern_v2_queue_entry", 15,
                                                SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY, nullptr,
                                                v2_queue_entry, nullptr, nullptr, nullptr);
      rc != SQLITE_OK)
    return sqlite_error(db.last_error(rc));

  for (const Migration& m : kMigrations) {
    if (m.to_version <= *version || m.to_version > target) continue;
    if (auto r = db.exec("BEGIN IMMEDIATE"); !r) return sqlite_error(r.error());
    if (auto r = db.exec(m.sql); !r) {
      (void)db.exec("ROLLBACK");
      return sqlite_error(r.error());
    }
    if (auto r = db.exec("COMMIT"); !r) {
      (void)db.exec("ROLLBACK");
      return sqlite_error(r.error());
    }
  }
  return {};
}

}  // namespace tern::store::schema
