#include "store/sqlite.hpp"

#include <fmt/format.h>

namespace tern::store::sqlite {

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    close();
    db_ = std::exchange(other.db_, nullptr);
  }
  return *this;
}

Expected<Database, Error> Database::open(const std::filesystem::path& path, int flags) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    Error error{rc, db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)};
    sqlite3_close_v2(db);
    return make_unexpected(std::move(error));
  }
  sqlite3_extended_result_codes(db, 1);
  return Database(db);
}

void Database::close() noexcept {
  if (db_ != nullptr) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
  }
}

Error Database::last_error() const { return Error{sqlite3_extended_errcode(db_), sqlite3_errmsg(db_)}; }

Error Database::last_error(int code) const {
  // The connection's message belongs to its most recent failure, which is `code` when
  // the caller checks right after the call.
  return Error{code, db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(code)};
}

Expected<void, Error> Database::exec(const char* sql) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    Error error{rc, message != nullptr ? message : sqlite3_errstr(rc)};
    sqlite3_free(message);
    return make_unexpected(std::move(error));
  }
  return {};
}

Expected<Statement, Error> Database::prepare(const char* sql, bool persistent) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql, -1, persistent ? SQLITE_PREPARE_PERSISTENT : 0, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return make_unexpected(last_error(rc));
  }
  if (stmt == nullptr) return make_unexpected(Error{SQLITE_MISUSE, "empty statement"});
  return Statement(stmt);
}

Expected<std::int64_t, Error> Database::query_int(const char* sql) {
  auto stmt = prepare(sql, false);
  if (!stmt) return make_unexpected(stmt.error());
  const int rc = stmt->step();
  if (rc == SQLITE_ROW) return stmt->column_int64(0);
  if (rc == SQLITE_DONE) return make_unexpected(Error{SQLITE_ERROR, fmt::format("no row from: {}", sql)});
  return make_unexpected(last_error(rc));
}

Expected<std::string, Error> Database::query_text(const char* sql) {
  auto stmt = prepare(sql, false);
  if (!stmt) return make_unexpected(stmt.error());
  const int rc = stmt->step();
  if (rc == SQLITE_ROW) return stmt->column_bytes(0);
  if (rc == SQLITE_DONE) return make_unexpected(Error{SQLITE_ERROR, fmt::format("no row from: {}", sql)});
  return make_unexpected(last_error(rc));
}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    stmt_ = std::exchange(other.stmt_, nullptr);
  }
  return *this;
}

int Statement::bind_text(int index, std::string_view text) {
  // A zero-length view may carry a null pointer, which SQLite would bind as NULL.
  return sqlite3_bind_text64(stmt_, index, text.empty() ? "" : text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
}

int Statement::bind_blob(int index, std::string_view bytes) {
  if (bytes.empty()) return sqlite3_bind_zeroblob(stmt_, index, 0);
  return sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_STATIC);
}

std::string Statement::column_bytes(int column) const {
  const void* data = sqlite3_column_blob(stmt_, column);
  const int size = sqlite3_column_bytes(stmt_, column);
  if (data == nullptr || size <= 0) return {};
  return std::string(static_cast<const char*>(data), static_cast<std::size_t>(size));
}

std::string describe(const Error& error) {
  return fmt::format("{} ({}): {}", sqlite3_errstr(error.code), error.code, error.message);
}

}  // namespace tern::store::sqlite
