// StateStore on SQLite. One table, `kv(key BLOB PRIMARY KEY, value BLOB)`, in the
// service's state file; every SQLite return code is checked.
#include "tern/state.hpp"

#include <sqlite3.h>

#include "tern/error.hpp"

namespace tern {

namespace {

constexpr int kSchemaVersion = 1;

// The smallest key greater than every key starting with `prefix`; empty when none is
// (the prefix is empty or all 0xFF bytes).
std::string prefix_upper_bound(std::string_view prefix) {
  std::string bound(prefix);
  while (!bound.empty() && static_cast<unsigned char>(bound.back()) == 0xFF) bound.pop_back();
  if (!bound.empty()) bound.back() = static_cast<char>(static_cast<unsigned char>(bound.back()) + 1);
  return bound;
}

bool bind_blob(sqlite3_stmt* s, int index, std::string_view bytes) {
  // A non-null pointer even for empty bytes: SQLite stores NULL for a null pointer.
  static const char empty = 0;
  return sqlite3_bind_blob(s, index, bytes.empty() ? &empty : bytes.data(), static_cast<int>(bytes.size()),
                           SQLITE_TRANSIENT) == SQLITE_OK;
}

std::string column_blob(sqlite3_stmt* s, int index) {
  const auto* data = static_cast<const char*>(sqlite3_column_blob(s, index));
  const int size = sqlite3_column_bytes(s, index);
  return data ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

}  // namespace

struct StateTransaction::Impl {
  std::string path;
  sqlite3* db = nullptr;
  sqlite3_stmt* select = nullptr;
  sqlite3_stmt* upsert = nullptr;
  sqlite3_stmt* remove = nullptr;
  sqlite3_stmt* range = nullptr;      // key >= ?1 AND key < ?2
  sqlite3_stmt* range_open = nullptr;  // key >= ?1
  bool in_transaction = false;
  std::string error;

  ~Impl() {
    for (sqlite3_stmt* s : {select, upsert, remove, range, range_open}) sqlite3_finalize(s);
    sqlite3_close(db);
  }

  std::error_code fail() {
    error = db ? sqlite3_errmsg(db) : "cannot open the state store";
    return Errc::storage_failed;
  }

  std::error_code exec(const char* sql) {
    char* message = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
      error = message ? message : sqlite3_errmsg(db);
      sqlite3_free(message);
      return Errc::storage_failed;
    }
    return {};
  }

  std::error_code open() {
    if (db) return {};
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
      auto ec = fail();
      sqlite3_close(db);
      db = nullptr;
      return ec;
    }
    sqlite3_busy_timeout(db, 5000);
    if (auto ec = exec("PRAGMA journal_mode=WAL;"
                       "CREATE TABLE IF NOT EXISTS kv(key BLOB PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;"
                       "CREATE TABLE IF NOT EXISTS kv_meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);")) {
      return ec;
    }
    if (sqlite3_prepare_v2(db, "SELECT value FROM kv_meta WHERE name = 'schema_version'", -1, &select, nullptr) != SQLITE_OK) {
      return fail();
    }
    const int rc = sqlite3_step(select);
    const int version = rc == SQLITE_ROW ? sqlite3_column_int(select, 0) : 0;
    sqlite3_finalize(select);
    select = nullptr;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fail();
    if (version > kSchemaVersion) {
      error = "state store written by a newer version (schema " + std::to_string(version) + ")";
      return Errc::storage_failed;
    }
    if (version == 0) {
      if (auto ec = exec("INSERT OR REPLACE INTO kv_meta(name, value) VALUES('schema_version', 1)")) return ec;
    }
    if (sqlite3_prepare_v2(db, "SELECT value FROM kv WHERE key = ?1", -1, &select, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT INTO kv(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
                           -1, &upsert, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "DELETE FROM kv WHERE key = ?1", -1, &remove, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT key, value FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key", -1, &range,
                           nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT key, value FROM kv WHERE key >= ?1 ORDER BY key", -1, &range_open, nullptr) !=
            SQLITE_OK) {
      return fail();
    }
    return {};
  }

  Expected<std::optional<std::string>, std::error_code> get(std::string_view key) {
    if (auto ec = open()) return make_unexpected(ec);
    sqlite3_reset(select);
    if (!bind_blob(select, 1, key)) return make_unexpected(fail());
    const int rc = sqlite3_step(select);
    std::optional<std::string> value;
    if (rc == SQLITE_ROW) value = column_blob(select, 0);
    sqlite3_reset(select);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return make_unexpected(fail());
    return value;
  }

  std::error_code step_done(sqlite3_stmt* s) {
    const int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? std::error_code() : fail();
  }

  std::error_code put(std::string_view key, std::string_view value) {
    if (auto ec = open()) return ec;
    sqlite3_reset(upsert);
    if (!bind_blob(upsert, 1, key) || !bind_blob(upsert, 2, value)) return fail();
    return step_done(upsert);
  }

  std::error_code erase(std::string_view key) {
    if (auto ec = open()) return ec;
    sqlite3_reset(remove);
    if (!bind_blob(remove, 1, key)) return fail();
    return step_done(remove);
  }

  Expected<std::vector<std::pair<std::string, std::string>>, std::error_code> list(std::string_view prefix,
                                                                                  std::size_t limit) {
    if (auto ec = open()) return make_unexpected(ec);
    const std::string upper = prefix_upper_bound(prefix);
    sqlite3_stmt* s = upper.empty() ? range_open : range;
    sqlite3_reset(s);
    if (!bind_blob(s, 1, prefix) || (!upper.empty() && !bind_blob(s, 2, upper))) return make_unexpected(fail());
    std::vector<std::pair<std::string, std::string>> out;
    int rc = SQLITE_DONE;
    while ((limit == 0 || out.size() < limit) && (rc = sqlite3_step(s)) == SQLITE_ROW) {
      out.emplace_back(column_blob(s, 0), column_blob(s, 1));
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return make_unexpected(fail());
    return out;
  }
};

Expected<std::optional<std::string>, std::error_code> StateTransaction::get(std::string_view key) const {
  return impl_->get(key);
}
std::error_code StateTransaction::put(std::string_view key, std::string_view value) { return impl_->put(key, value); }
std::error_code StateTransaction::erase(std::string_view key) { return impl_->erase(key); }

StateStore::StateStore(std::string path) : impl_(std::make_unique<StateTransaction::Impl>()) {
  impl_->path = std::move(path);
}
StateStore::~StateStore() = default;
std::error_code StateStore::open() { return impl_->open(); }
Expected<std::optional<std::string>, std::error_code> StateStore::get(std::string_view key) const {
  return impl_->get(key);
}
std::error_code StateStore::put(std::string_view key, std::string_view value) { return impl_->put(key, value); }
std::error_code StateStore::erase(std::string_view key) { return impl_->erase(key); }
Expected<std::vector<std::pair<std::string, std::string>>, std::error_code> StateStore::list(std::string_view prefix,
                                                                                            std::size_t limit) const {
  return impl_->list(prefix, limit);
}
const std::string& StateStore::last_error() const noexcept { return impl_->error; }

std::error_code StateStore::transaction(const std::function<std::error_code(StateTransaction&)>& body) {
  if (auto ec = impl_->open()) return ec;
  if (impl_->in_transaction) {
    impl_->error = "transactions do not nest";
    return Errc::invalid_argument;
  }
  if (auto ec = impl_->exec("BEGIN IMMEDIATE")) return ec;
  impl_->in_transaction = true;
  StateTransaction tx(*impl_);
  std::error_code result;
  try {
    result = body(tx);
  } catch (...) {
    impl_->exec("ROLLBACK");
    impl_->in_transaction = false;
    throw;
  }
  impl_->in_transaction = false;
  if (result) {
    if (auto ec = impl_->exec("ROLLBACK")) return ec;
    return result;
  }
  if (auto ec = impl_->exec("COMMIT")) {
    impl_->exec("ROLLBACK");
    return ec;
  }
  return {};
}

}  // namespace tern
