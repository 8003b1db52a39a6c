// SqliteStore: the durable Store, one SQLite database (WAL mode) per node.
//
// Group commit. The broker's thread never waits for the disk: every write is appended to
// an in-memory batch under a mutex (a vector push), and one writer thread commits
// batches. The writer swaps the whole batch out under the lock and runs it in one
// BEGIN..COMMIT without holding that lock, so while a commit (and its fsync) runs, new
// writes gather into the next batch. A batch is committed once the previous commit has
// finished, `max_commit_delay` has passed since its first write and `min_commit_interval`
// since the previous commit began, or as soon as it holds `commit_bytes` of messages or
// `max_batch_ops` writes; a transaction never holds more than `max_batch_ops` writes.
// After each commit the writer posts, through `post_to_owner`, the when_durable callbacks
// whose writes that commit covered, in registration order (in fsync mode it hands them to
// the sync thread, which posts them once the commit is synced; see Durability modes).
//
// Coalescing. Within the batch not yet taken by the writer, a write that a later write
// makes pointless is dropped: a queue entry saved and then removed (a QoS 1 message
// acknowledged before its commit) or saved twice, a retained message replaced, a session
// saved twice, an inbound QoS 2 id stored then released. The removal itself is kept (it
// costs a B-tree lookup and no page write when the row was never committed), so the
// outcome is the same as running every write in order.
//
// Durability modes: `fsync` defers acknowledgements until the commit that holds the
// writes is synced (survives power loss); `batch` (survives a crash of the process, not of
// the machine) lets the broker acknowledge at once. Both group commit the same way and run
// with synchronous=NORMAL: a commit only writes the WAL. In fsync mode a sync thread then
// runs fdatasync on the WAL and posts the callbacks of every commit written before that
// fdatasync began, so the writer writes the next batch while the previous one syncs (the
// fsync no longer sits between two batches), and one fdatasync may cover several commits.
//
// Damage. Opening never fails because of what the file holds: a file that is not a
// database, fails `PRAGMA quick_check`, or has a schema version newer than this build is
// renamed to `NAME.damaged-YYYYMMDDTHHMMSSZ` (with its -wal and -shm), logged at error
// level and counted, and an empty store takes its place. Rows that a loader cannot make
// sense of are skipped with a warning.
//
// Streams. Appends are writes like the others. Reads run on a second, query-only
// connection (WAL lets it read while the writer commits) and add the appends the owner
// issued that are not yet known committed, so a read sees every append issued before it.
//
// Thread-safety: as the Store interface says, every method is called from the broker's
// thread (the owner); metrics accessors may be called from any thread. Callbacks run
// wherever `post_to_owner` puts them. Loads are for start-up, before any write.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>
#include <vector>

#include "broker/store.hpp"
#include "core/expected.hpp"
#include "store/sqlite.hpp"

namespace tern::store {

enum class Durability { fsync, batch };

struct Metrics {
  std::uint64_t commits = 0;              // transactions committed
  std::uint64_t fsyncs = 0;               // fdatasyncs of the WAL (fsync mode); one may cover several commits
  std::uint64_t ops_submitted = 0;        // writes the broker issued
  std::uint64_t ops_coalesced = 0;        // writes dropped because a later one superseded them
  std::uint64_t ops_written = 0;          // statements run in committed transactions
  std::uint64_t rows_changed = 0;         // rows SQLite reports inserted, replaced or deleted
  std::uint64_t callbacks = 0;            // when_durable callbacks posted
  std::uint64_t write_errors = 0;         // failed transactions (retried)
  std::uint64_t rows_skipped = 0;         // unreadable rows skipped while loading
  std::uint64_t expired_removed = 0;      // expired messages deleted
  std::uint64_t vacuums = 0;              // vacuum runs (shrinking the file)
  std::uint64_t last_commit_us = 0;       // latency of the last commit (BEGIN to COMMIT done; fsync mode: and synced)
  std::uint64_t avg_commit_us = 0;
  std::uint64_t max_commit_us = 0;
  std::uint64_t max_batch_ops = 0;        // largest transaction, in writes
  double avg_batch_ops = 0;
  // Transactions by size: bucket i counts sizes in [2^i, 2^(i+1)), the last one the rest.
  std::array<std::uint64_t, 14> batch_size_histogram{};
};

class SqliteStore final : public broker::Store {
 public:
  struct Options {
    std::filesystem::path path;  // the database file; its directory is created if missing
    Durability durability = Durability::fsync;
    std::chrono::milliseconds max_commit_delay{2};
    // Commits start at least this far apart while writes keep coming, so that under a
    // steady trickle each commit (whose floor is about 7 KiB written: page 1, the queue's
    // parent page, the partly filled last leaf, and the file system's 4 KiB block of the
    // WAL that the previous commit left partly filled) carries many messages: bytes
    // written per message, and flash wear, stay low. 75 ms lets a 1,000 msg/s stream of
    // 100-byte messages queued for an offline session stay under 4x its payload bytes
    // (docs/benchmarks.md); 25 ms costs about 1.6x that. A write after a quiet spell is
    // not held back by it. Zero: no spacing.
    std::chrono::milliseconds min_commit_interval{75};
    // ... but a batch of at least commit_bytes / 4 to which no message was added for
    // this long is committed without waiting for the interval: its writers are waiting for it
    // (publishers with full windows), not adding to it. Longer than the gaps of a steady
    // stream of thousands of messages a second, short against a commit's fsync.
    std::chrono::microseconds commit_quiet{500};
    // A batch holding this many bytes of messages is committed without waiting for the
    // delay or the interval: a full batch has nothing left to gain from waiting.
    std::size_t commit_bytes = 32 * 1024;
    // Page size of a database file created by this store (existing files keep theirs).
    // WAL frames are whole pages, so small pages make small commits cheap on disk.
    int page_size = 1024;
    std::size_t max_batch_ops = 4096;
    // How to run a completion on the owner's thread (for ternd: asio::post to the
    // broker's io_context). Required.
    std::function<void(std::function<void()>)> post_to_owner;
    // WAL size after which a commit checkpoints into the database file. A checkpoint
    // copies every page changed since the last one, once, however often it changed: the
    // larger the WAL, the fewer copies of busy pages.
    std::int64_t wal_checkpoint_bytes = 2 * 1024 * 1024;
    // Clocks used to turn steady-clock expiry times into wall-clock times on disk and
    // back. Empty: the real clocks.
    std::function<std::chrono::steady_clock::time_point()> steady_now;
    std::function<std::chrono::system_clock::time_point()> system_now;
  };

  // Fails only when no usable database can be had at `path` at all (directory not
  // creatable, file not replaceable, disk unusable); a damaged file is moved aside.
  static Expected<std::unique_ptr<SqliteStore>, std::string> open(const Options& options);

  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  void save_session(const broker::SessionRecord& session) override;
  void remove_session(const std::string& client_id) override;
  void save_retained(const broker::MessagePtr& message) override;
  void remove_retained(const std::string& topic) override;
  void save_queued(const broker::QueuedRecord& record) override;
  void remove_queued(const std::string& client_id, std::uint64_t seq) override;
  void save_inbound_qos2(const std::string& client_id, std::uint16_t packet_id) override;
  void remove_inbound_qos2(const std::string& client_id, std::uint16_t packet_id) override;
  // Event streams. Appends are written like every other write; reads run on a second
  // connection, so they never wait for a commit, and add the appends not yet committed.
  void append_stream(const std::string& stream, const broker::StreamEvent& event) override;
  std::vector<broker::StreamEvent> read_stream(const std::string& stream, std::uint64_t from_offset,
                                               std::int64_t from_time_ms, std::size_t max_count) override;
  void trim_stream(const std::string& stream, std::int64_t older_than_ms, std::uint64_t max_bytes) override;
  std::uint64_t stream_end(const std::string& stream) override;

  void when_durable(std::function<void()> fn) override;
  bool defers_acknowledgements() const override { return durability_ == Durability::fsync; }
  void begin_atomic() override;
  void end_atomic() override;

  std::vector<broker::SessionRecord> load_sessions() override;
  std::vector<broker::MessagePtr> load_retained() override;
  std::vector<broker::QueuedRecord> load_queued() override;
  std::vector<std::pair<std::string, std::uint16_t>> load_inbound_qos2() override;

  // Deletes retained messages and not-yet-sent queue entries whose expiry has passed, on
  // the writer thread, in order with the writes issued before. Meant for a periodic timer.
  void purge_expired();

  // Commits what is pending, stops the writer and closes the database. Callbacks of the
  // last commits are still posted, so `post_to_owner` must stay callable until this
  // returns. Writes issued afterwards are dropped. The destructor calls it.
  void close();

  std::uint64_t damaged_stores_moved_aside() const { return damaged_moved_aside_; }
  Metrics metrics() const;
  const std::filesystem::path& path() const { return path_; }

 private:
  struct PurgeExpired {};
  struct RemoveSession {
    std::string client_id;
  };
  struct RemoveRetained {
    std::string topic;
  };
  struct RemoveQueued {
    std::string client_id;
    std::uint64_t seq;
  };
  struct InboundQos2 {
    std::string client_id;
    std::uint16_t packet_id;
    bool save;
  };
  struct AppendStream {
    std::string stream;
    broker::StreamEvent event;
  };
  struct TrimStream {
    std::string stream;
    std::int64_t older_than_ms;
    std::uint64_t max_bytes;
  };
  using OpData = std::variant<broker::SessionRecord, RemoveSession, broker::MessagePtr, RemoveRetained,
                              broker::QueuedRecord, RemoveQueued, InboundQos2, PurgeExpired, AppendStream, TrimStream>;
  struct Op {
    OpData data;
    bool live = true;
    bool joins_next = false;  // an atomic group goes on with the next op: never commit between them
  };
  struct Callback {
    std::size_t after_ops;  // runs once ops [0, after_ops) of its batch are committed
    std::function<void()> fn;
  };
  struct Batch {
    std::vector<Op> ops;
    std::vector<Callback> callbacks;
    std::chrono::steady_clock::time_point first_op_at;
    std::chrono::steady_clock::time_point last_message_at;  // the last write that carried a message
    void clear() {
      ops.clear();
      callbacks.clear();
    }
    bool empty() const { return ops.empty() && callbacks.empty(); }
  };
  struct KeyHash {
    std::size_t operator()(const std::pair<std::string, std::uint64_t>& k) const noexcept {
      return std::hash<std::string>{}(k.first) ^ (std::hash<std::uint64_t>{}(k.second) * 0x9E3779B97F4A7C15ULL);
    }
  };
  using KeyedIndex = std::unordered_map<std::pair<std::string, std::uint64_t>, std::size_t, KeyHash>;
  struct Statements;
  struct ReaderStatements;
  struct Opened;
  struct OpenFailure;
  static Expected<Opened, OpenFailure> open_database(const Options& options);

  SqliteStore(const Options& options, Opened opened, std::uint64_t damaged);

  void append(OpData data, bool notify_writer = false);
  static std::size_t op_bytes(const OpData& data);
  // Marks the pending op at `index[key]` dead when it is a `T`. Caller holds mutex_.
  template <class T, class Index, class Key>
  void supersede(Index& index, const Key& key);
  void writer_loop();
  // Commits a batch in transactions of at most max_batch_ops writes, posting each
  // callback after the transaction that holds the writes issued before it.
  void process(Batch& batch);
  // One transaction over the live ops in [begin, end). Retries a failed transaction
  // with a growing pause until it commits or the store is closing.
  bool commit_with_retry(const std::vector<Op>& ops, std::size_t begin, std::size_t end);
  bool commit_range(const std::vector<Op>& ops, std::size_t begin, std::size_t end);
  // Runs one write inside the open transaction; false when the transaction must stop.
  bool run_op(const Op& op);
  bool run_stream_op(const Op& op);
  // The queue's index: (seq, row id) of a session's entries in seq order.
  using QueueRows = std::deque<std::pair<std::uint64_t, std::int64_t>>;
  static QueueRows::iterator find_queue_row(QueueRows& rows, std::uint64_t seq);
  static void add_queue_row(QueueRows& rows, std::uint64_t seq, std::int64_t id);
  // The owner id of a session's queue rows; 0 when it has none and `create` is false,
  // -1 when the insert failed.
  std::int64_t owner_id(const std::string& client_id, bool create);
  // Reads the index from the tables (at open, and after a rollback or a purge).
  bool load_queue_index();
  // The stream's payload byte count so far (what the next event's byte_start is).
  std::optional<std::uint64_t> stream_bytes_end(const std::string& stream);
  void post_callbacks(std::vector<Callback>& callbacks, std::size_t begin, std::size_t end);
  void post_group(std::vector<std::function<void()>> fns);
  // fsync mode: fdatasync the WAL for the callbacks of written commits, then post them.
  void syncer_loop();
  bool sync_wal();
  void maintain();
  std::int64_t wall_ms(std::chrono::steady_clock::time_point t) const;
  std::int64_t now_wall_ms() const;

  const std::filesystem::path path_;
  const Durability durability_;
  const std::chrono::milliseconds max_commit_delay_;
  const std::chrono::milliseconds min_commit_interval_;
  const std::chrono::microseconds commit_quiet_;
  const std::size_t commit_bytes_;
  const std::size_t max_batch_ops_;
  const std::function<void(std::function<void()>)> post_to_owner_;
  const std::function<std::chrono::steady_clock::time_point()> steady_now_;
  const std::function<std::chrono::system_clock::time_point()> system_now_;
  const std::uint64_t damaged_moved_aside_;

  // Database state: used by the writer thread, and by loads at start-up. db_mutex_ is
  // never wanted by the owner's thread while it writes, so it costs the hot path nothing.
  std::mutex db_mutex_;
  sqlite::Database db_;
  std::unique_ptr<Statements> statements_;
  std::unordered_map<std::string, std::uint64_t> stream_bytes_end_;  // writer's running totals
  // Where each queue entry is (the table has no index on (owner, seq): see schema.cpp):
  // client id -> owner id, owner id -> its rows. A few bytes per queued message.
  std::unordered_map<std::string, std::int64_t> owner_ids_;
  std::unordered_map<std::int64_t, QueueRows> queue_rows_;
  bool queue_index_stale_ = true;
  const bool incremental_vacuum_;
  const std::int64_t page_size_;
  static constexpr std::int64_t kVacuumLiveBytes = 8 * 1024 * 1024;

  // Stream reads: the owner's thread only.
  sqlite::Database reader_;
  std::unique_ptr<ReaderStatements> reader_statements_;
  // Appends not known to be committed, per stream, in offset order.
  std::unordered_map<std::string, std::deque<broker::StreamEvent>> unconfirmed_appends_;

  // Owner's side: the batch being filled. Guarded by mutex_.
  std::mutex mutex_;
  std::condition_variable wake_writer_;
  Batch pending_;
  std::size_t pending_live_ = 0;  // ops in pending_ not superseded: what max_batch_ops bounds
  // Atomic groups (begin_atomic): while one is open the writer does not take the batch.
  unsigned atomic_depth_ = 0;
  std::size_t atomic_begin_ = 0;  // the group's first op in pending_
  std::size_t pending_bytes_ = 0;  // message bytes appended to pending_: what commit_bytes bounds
  std::chrono::steady_clock::time_point last_commit_at_{};  // when the writer last took a batch
  KeyedIndex queued_index_;   // (client_id, seq) -> index in pending_.ops
  KeyedIndex inbound_index_;  // (client_id, packet_id)
  std::unordered_map<std::string, std::size_t> retained_index_;
  std::unordered_map<std::string, std::size_t> session_index_;
  std::unordered_map<std::string, std::uint64_t> committed_stream_end_;  // stream -> last committed offset + 1
  bool writer_busy_ = false;  // the writer holds a batch it has not finished
  // fsync mode: callbacks of written commits, waiting for the next sync; whether a sync
  // runs; commits written by the writer, and the count the last sync covered.
  std::vector<std::function<void()>> awaiting_sync_;
  bool syncing_ = false;
  bool syncer_stopping_ = false;
  std::atomic<std::uint64_t> commits_written_{0};
  std::atomic<std::uint64_t> last_write_us_{0};  // BEGIN to COMMIT done, of the last commit
  std::uint64_t commits_synced_ = 0;
  std::condition_variable wake_syncer_;
  std::thread syncer_;
  int wal_fd_ = -1;  // the sync thread's own descriptor of the WAL
  bool stopping_ = false;
  bool closed_ = false;       // owner's thread only
  std::thread writer_;

  // Metrics, written by the writer thread (and the owner for ops_*), read from anywhere.
  std::atomic<std::uint64_t> commits_{0}, fsyncs_{0}, ops_submitted_{0}, ops_coalesced_{0}, ops_written_{0},
      rows_changed_{0}, callbacks_posted_{0}, write_errors_{0}, rows_skipped_{0}, expired_removed_{0},
      vacuums_{0}, last_commit_us_{0}, total_commit_us_{0}, max_commit_us_{0}, max_batch_{0}, total_batch_{0};
  std::array<std::atomic<std::uint64_t>, 14> batch_histogram_{};
};

}  // namespace tern::store
