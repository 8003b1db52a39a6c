// The store's schema and its migrations.
//
// The schema version lives in `PRAGMA user_version`. Migration i (schema.cpp) takes a
// database from version i to version i + 1 and sets user_version itself, inside the
// same transaction, so a crash mid-migration leaves the previous version intact. Adding
// a version is appending one entry to that table and raising kCurrentVersion. Version 3
// converts the queue's rows with an SQL function that migrate() registers on the
// connection (tern_v2_queue_entry, schema.cpp).
//
// A file whose version is newer than the last migration was written by a newer ternd;
// this one cannot know what it holds, so the caller treats it as damaged (moves it
// aside) rather than risk misreading it.
//
// Thread-safety: called once, at open, by the thread that owns the connection.
#pragma once

#include <cstdint>

#include "core/expected.hpp"
#include "store/sqlite.hpp"

namespace tern::store::schema {

struct Migration {
  std::int64_t to_version;
  const char* sql;  // runs inside BEGIN IMMEDIATE .. COMMIT; ends with PRAGMA user_version
};

inline constexpr std::int64_t kCurrentVersion = 3;

struct MigrationError {
  enum class Kind { future_version, invalid_version, sqlite } kind = Kind::sqlite;
  std::int64_t found_version = 0;
  sqlite::Error error;
};

// Brings `db` to `target` (an older version only to build test fixtures).
Expected<void, MigrationError> migrate(sqlite::Database& db, std::int64_t target = kCurrentVersion);

}  // namespace tern::store::schema
