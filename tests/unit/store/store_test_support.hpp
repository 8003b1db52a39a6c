// Shared helpers for the store tests: a temporary directory, an owner-thread queue that
// plays the broker's io_context, and message builders.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>

#include "store/sqlite_store.hpp"

namespace tern::store::test {

// Completions posted by the store's writer thread, run by the test thread on demand.
class OwnerQueue {
 public:
  void post(std::function<void()> fn) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(fn));
    }
    cv_.notify_all();
  }
  // Runs posted functions until `done` holds; false on timeout.
  template <class Pred>
  bool run_until(Pred done, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mutex_);
        if (!cv_.wait_until(lock, deadline, [&] { return !queue_.empty(); })) return false;
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
    return true;
  }
  std::size_t size() {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
};

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tern-store-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::uint64_t file_size_or_zero(const std::filesystem::path& p) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(p, ec);
  return ec ? 0 : n;
}

// A raw connection for the tests' own reads and writes behind the store's back.
class RawDb {
 public:
  explicit RawDb(const std::filesystem::path& path, int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) {
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db_, flags, nullptr), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;
  void exec(const std::string& sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (err ? err : "");
    sqlite3_free(err);
  }
  std::int64_t count(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
    std::int64_t n = -1;
    if (stmt != nullptr && sqlite3_step(stmt) == SQLITE_ROW) n = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return n;
  }
  sqlite3* handle() { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

inline broker::MessagePtr make_message(std::string topic, std::string payload) {
  auto m = std::make_shared<broker::Message>();
  m->topic = std::move(topic);
  m->payload = std::move(payload);
  m->qos = mqtt::QoS::at_least_once;
  return m;
}

inline broker::QueuedRecord make_queued(std::string client_id, std::uint64_t seq, broker::MessagePtr m) {
  broker::QueuedRecord r;
  r.client_id = std::move(client_id);
  r.seq = seq;
  r.message = std::move(m);
  r.qos = mqtt::QoS::at_least_once;
  return r;
}

// Opens a store on `dir/ternd.db` posting completions to `queue`.
inline SqliteStore::Options options_for(const std::filesystem::path& dir, OwnerQueue& queue,
                                        Durability durability = Durability::fsync) {
  SqliteStore::Options o;
  o.path = dir / "ternd.db";
  o.durability = durability;
  o.post_to_owner = [&queue](std::function<void()> fn) { queue.post(std::move(fn)); };
  return o;
}

inline std::unique_ptr<SqliteStore> open_store(const SqliteStore::Options& o) {
  auto store = SqliteStore::open(o);
  EXPECT_TRUE(store.has_value()) << (store ? "" : store.error());
  return store ? std::move(*store) : nullptr;
}

// Waits until every write issued so far is durable.
inline void wait_durable(SqliteStore& store, OwnerQueue& queue) {
  bool done = false;
  store.when_durable([&] { done = true; });
  ASSERT_TRUE(queue.run_until([&] { return done; }));
}

}  // namespace tern::store::test
