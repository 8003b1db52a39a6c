// Thin RAII wrappers over the SQLite C API: a connection and a prepared statement.
//
// Every call that can fail reports it: open/prepare/exec return an Expected, and the
// statement helpers return the raw SQLite result code so the caller decides what is an
// error for that statement (SQLITE_ROW and SQLITE_DONE are both normal for step).
// Nothing here builds SQL from data: values reach SQLite only through bind_*.
//
// Thread-safety: a Database and its Statements are used by one thread at a time; the
// caller provides the exclusion (connections are opened with SQLITE_OPEN_NOMUTEX).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/expected.hpp"

namespace tern::store::sqlite {

struct Error {
  int code = SQLITE_ERROR;  // primary or extended SQLite result code
  std::string message;
};

class Statement;

class Database {
 public:
  Database() = default;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  Database(Database&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  Database& operator=(Database&& other) noexcept;
  ~Database() { close(); }

  static Expected<Database, Error> open(const std::filesystem::path& path, int flags);

  // Runs SQL without parameters (schema, pragmas, BEGIN/COMMIT). Rows are ignored.
  Expected<void, Error> exec(const char* sql);
  // A pragma or query returning one integer (e.g. "PRAGMA user_version").
  Expected<std::int64_t, Error> query_int(const char* sql);
  // A query returning one text value (e.g. "PRAGMA quick_check", "PRAGMA journal_mode").
  Expected<std::string, Error> query_text(const char* sql);

  Expected<Statement, Error> prepare(const char* sql, bool persistent = true);

  // The last error on this connection, with its code.
  Error last_error() const;
  Error last_error(int code) const;
  std::int64_t changes() const { return sqlite3_changes64(db_); }

  // Finalizes nothing itself: statements must be destroyed first (sqlite3_close_v2
  // defers the close until they are).
  void close() noexcept;
  sqlite3* handle() const noexcept { return db_; }
  explicit operator bool() const noexcept { return db_ != nullptr; }

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3* db_ = nullptr;
};

class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement(Statement&& other) noexcept : stmt_(std::exchange(other.stmt_, nullptr)) {}
  Statement& operator=(Statement&& other) noexcept;
  ~Statement() { sqlite3_finalize(stmt_); }

  // Bind helpers: parameters are 1-based. Text and blobs are bound SQLITE_STATIC: the
  // bytes must stay alive until the statement is reset.
  int bind_int64(int index, std::int64_t value) { return sqlite3_bind_int64(stmt_, index, value); }
  int bind_null(int index) { return sqlite3_bind_null(stmt_, index); }
  int bind_text(int index, std::string_view text);
  int bind_blob(int index, std::string_view bytes);
  int bind_optional_text(int index, const std::optional<std::string>& text) {
    return text ? bind_text(index, *text) : bind_null(index);
  }
  int bind_optional_blob(int index, const std::optional<std::string>& bytes) {
    return bytes ? bind_blob(index, *bytes) : bind_null(index);
  }

  int step() { return sqlite3_step(stmt_); }
  // Resets and clears bindings, so no pointer to a caller's bytes is kept.
  void reset() noexcept {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  int column_type(int column) const { return sqlite3_column_type(stmt_, column); }
  std::int64_t column_int64(int column) const { return sqlite3_column_int64(stmt_, column); }
  // TEXT and BLOB columns as bytes (a zero-length value is an empty string).
  std::string column_bytes(int column) const;

  sqlite3_stmt* handle() const noexcept { return stmt_; }
  explicit operator bool() const noexcept { return stmt_ != nullptr; }

 private:
  friend class Database;
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  sqlite3_stmt* stmt_ = nullptr;
};

// "SQLITE_CORRUPT (11): database disk image is malformed"-style text for logs.
std::string describe(const Error& error);

}  // namespace tern::store::sqlite
