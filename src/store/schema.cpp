#include "store/schema.hpp"

#include <iterator>
#include <string>

namespace tern::store::schema {

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

constexpr Migration kMigrations[] = {
    {1, kSchemaV1},
    {2, kSchemaV2},
};

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
    if (auto r = db.exec("PRAGMA auto_vacuum = INCREMENTAL"); !r) return sqlite_error(r.error());
  }

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
