#include "store/sqlite_store.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <system_error>

#include "core/log.hpp"
#include "core/topic.hpp"
#include "store/records.hpp"
#include "store/schema.hpp"

namespace tern::store {

namespace {

constexpr std::string_view kLog = "store";

using Clock = std::chrono::steady_clock;

// A value fit for a log line: printable ASCII as is, other bytes as \xNN, cut short.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b < 0x7F && c != '\\')
      out.push_back(c);
    else
      out += fmt::format("\\x{:02x}", b);
  }
  if (s.size() > 64) out += "...";
  return out;
}

// Errors that belong to one statement's data; the rest of the transaction can go on.
bool is_op_specific(int code) {
  switch (code & 0xFF) {
    case SQLITE_TOOBIG:
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
      return true;
    default:
      return false;
  }
}

// Errors that, at open, mean the file's content is unusable (as opposed to the file
// being unreachable, locked by another process, or the disk failing or full, where
// moving the file aside would throw away data that may be fine).
bool is_damage(int code) {
  switch (code & 0xFF) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
    case SQLITE_FORMAT:
    case SQLITE_SCHEMA:
    case SQLITE_ERROR:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
      return true;
    default:
      return false;
  }
}

std::string utc_stamp(std::chrono::system_clock::time_point t) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return fmt::format("{:04}{:02}{:02}T{:02}{:02}{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

// Renames `path` and its -wal/-shm companions so that the damaged database can still be
// opened as one file set for a post-mortem. Returns the new name of the main file.
Expected<std::filesystem::path, std::string> move_aside(const std::filesystem::path& path,
                                                        std::chrono::system_clock::time_point now) {
  const std::string base = path.string() + ".damaged-" + utc_stamp(now);
  std::string target = base;
  std::error_code ec;
  for (int n = 2; std::filesystem::exists(target, ec) || std::filesystem::exists(target + "-wal", ec); ++n)
    target = fmt::format("{}-{}", base, n);
  std::filesystem::rename(path, target, ec);
  if (ec) return make_unexpected(fmt::format("cannot rename {} to {}: {}", path.string(), target, ec.message()));
  for (const char* suffix : {"-wal", "-shm", "-journal"}) {
    const std::filesystem::path companion = path.string() + suffix;
    if (!std::filesystem::exists(companion, ec)) continue;
    std::filesystem::rename(companion, target + suffix, ec);
    if (ec) return make_unexpected(fmt::format("cannot rename {}: {}", companion.string(), ec.message()));
  }
  return std::filesystem::path(target);
}

// Collects the first failing return code of a series of bind calls.
struct BindStatus {
  int code = SQLITE_OK;
  void operator()(int rc) {
    if (code == SQLITE_OK && rc != SQLITE_OK) code = rc;
  }
};

// Reads one row's columns, recording the first column that does not hold what the
// schema promises (SQLite's flexible typing lets any value into any column).
class RowReader {
 public:
  explicit RowReader(const sqlite::Statement& stmt) : stmt_(stmt) {}

  bool ok() const { return problem_.empty(); }
  const std::string& problem() const { return problem_; }
  void fail(std::string why) {
    if (problem_.empty()) problem_ = std::move(why);
  }

  bool is_null(int column) const { return stmt_.column_type(column) == SQLITE_NULL; }

  std::int64_t integer(int column, const char* name, std::int64_t min, std::int64_t max) {
    if (stmt_.column_type(column) != SQLITE_INTEGER) {
      fail(fmt::format("{} is not an integer", name));
      return min;
    }
    const std::int64_t v = stmt_.column_int64(column);
    if (v < min || v > max) {
      fail(fmt::format("{} {} out of range", name, v));
      return min;
    }
    return v;
  }
  std::optional<std::int64_t> optional_integer(int column, const char* name, std::int64_t min, std::int64_t max) {
    if (is_null(column)) return std::nullopt;
    return integer(column, name, min, max);
  }
  std::string bytes(int column, const char* name) {
    const int type = stmt_.column_type(column);
    if (type != SQLITE_TEXT && type != SQLITE_BLOB) {
      fail(fmt::format("{} is not text or bytes", name));
      return {};
    }
    return stmt_.column_bytes(column);
  }
  std::optional<std::string> optional_bytes(int column, const char* name) {
    if (is_null(column)) return std::nullopt;
    return bytes(column, name);
  }
  std::string utf8(int column, const char* name) {
    std::string s = bytes(column, name);
    if (ok() && !is_valid_mqtt_utf8(s)) fail(fmt::format("{} is not valid UTF-8", name));
    return s;
  }
  std::optional<std::string> optional_utf8(int column, const char* name) {
    if (is_null(column)) return std::nullopt;
    return utf8(column, name);
  }

 private:
  const sqlite::Statement& stmt_;
  std::string problem_;
};

// Positions of a message's fields: parameters of an INSERT (1-based) or columns of a
// SELECT (0-based). retain < 0: the table has no such column (retained messages).
// origin_client_id < 0 in parameters: bound to NULL at -origin_client_id.
struct MessageFields {
  int topic, payload, qos, retain, payload_format, content_type, response_topic, correlation_data, user_properties,
      expires_at_ms, origin_client_id;
};

// Parameters of upsert_retained, columns of the loaders' SELECTs.
constexpr MessageFields kRetainedParams{1, 3, 2, -1, 4, 5, 6, 7, 8, 9, 10};
constexpr MessageFields kRetainedColumns{0, 2, 1, -1, 3, 4, 5, 6, 7, 8, 9};
constexpr MessageFields kEventParams{5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
constexpr MessageFields kEventColumns{2, 4, 3, 5, 6, 7, 8, 9, 10, 11, 12};

void bind_message(sqlite::Statement& stmt, const MessageFields& f, const broker::Message& m,
                  std::optional<std::int64_t> expires_at_ms, BindStatus& status) {
  status(stmt.bind_text(f.topic, m.topic));
  status(stmt.bind_blob(f.payload, m.payload));
  status(stmt.bind_int64(f.qos, static_cast<std::int64_t>(m.qos)));
  if (f.retain > 0) status(stmt.bind_int64(f.retain, m.retain ? 1 : 0));
  status(m.payload_format_indicator ? stmt.bind_int64(f.payload_format, *m.payload_format_indicator)
                                    : stmt.bind_null(f.payload_format));
  status(stmt.bind_optional_text(f.content_type, m.content_type));
  status(stmt.bind_optional_text(f.response_topic, m.response_topic));
  status(stmt.bind_optional_blob(f.correlation_data, m.correlation_data));
  status(stmt.bind_blob(f.user_properties, m.user_properties));
  status(expires_at_ms ? stmt.bind_int64(f.expires_at_ms, *expires_at_ms) : stmt.bind_null(f.expires_at_ms));
  status(f.origin_client_id > 0 ? stmt.bind_text(f.origin_client_id, m.origin_client_id)
                                : stmt.bind_null(-f.origin_client_id));
}

// The instant a load runs, on both clocks: wall-clock expiry on disk becomes a
// steady-clock expiry relative to it.
struct TimeBase {
  Clock::time_point steady;
  std::int64_t wall_ms;
  Clock::time_point to_steady(std::int64_t ms) const {
    // A garbage value must not overflow the nanosecond arithmetic: no expiry is
    // meaningful beyond a century either way.
    constexpr std::int64_t kCenturyMs = 100LL * 366 * 24 * 3600 * 1000;
    ms = std::clamp(ms, wall_ms - kCenturyMs, wall_ms + kCenturyMs);
    return steady + std::chrono::milliseconds(ms - wall_ms);
  }
};

// Reads a message's columns; nullopt (with the reason in `row`) when they are unusable.
std::optional<broker::MessagePtr> read_message(RowReader& row, const MessageFields& f, const TimeBase& time) {
  auto m = std::make_shared<broker::Message>();
  m->topic = row.utf8(f.topic, "topic");
  if (row.ok() && !is_valid_topic_name(m->topic)) row.fail("topic is not a valid topic name");
  m->payload = row.bytes(f.payload, "payload");
  m->qos = static_cast<mqtt::QoS>(row.integer(f.qos, "message qos", 0, 2));
  m->retain = f.retain < 0 ? true : row.integer(f.retain, "message retain", 0, 1) != 0;
  if (auto pf = row.optional_integer(f.payload_format, "payload format", 0, 1))
    m->payload_format_indicator = static_cast<std::uint8_t>(*pf);
  m->content_type = row.optional_utf8(f.content_type, "content type");
  m->response_topic = row.optional_utf8(f.response_topic, "response topic");
  if (row.ok() && m->response_topic && !is_valid_topic_name(*m->response_topic))
    row.fail("response topic is not a valid topic name");
  m->correlation_data = row.optional_bytes(f.correlation_data, "correlation data");
  if (!row.is_null(f.user_properties)) m->user_properties = row.bytes(f.user_properties, "user properties");
  if (row.ok() && !records::valid_user_properties(m->user_properties)) row.fail("user properties are malformed");
  if (auto ms = row.optional_integer(f.expires_at_ms, "expiry", INT64_MIN, INT64_MAX))
    m->expires_at = time.to_steady(*ms);
  if (!row.is_null(f.origin_client_id)) m->origin_client_id = row.utf8(f.origin_client_id, "origin client id");
  if (!row.ok()) return std::nullopt;
  return broker::MessagePtr(std::move(m));
}

}  // namespace

struct SqliteStore::Statements {
  sqlite::Statement begin, commit, rollback;
  sqlite::Statement upsert_session, delete_session, delete_session_inbound;
  sqlite::Statement upsert_retained, delete_retained;
  sqlite::Statement insert_queued, update_queued, delete_queued, insert_owner, delete_owner;
  sqlite::Statement insert_inbound, delete_inbound;
  sqlite::Statement purge_retained, purge_queued;
  sqlite::Statement freelist_count, page_count;
  sqlite::Statement insert_event, event_cut_by_time, event_cut_by_bytes, delete_events_before, remember_stream_end,
      stream_bytes_end;

  static Expected<std::unique_ptr<Statements>, sqlite::Error> prepare(sqlite::Database& db) {
    auto s = std::make_unique<Statements>();
    struct Entry {
      sqlite::Statement* target;
      const char* sql;
    };
    const Entry entries[] = {
        {&s->begin, "BEGIN IMMEDIATE"},
        {&s->commit, "COMMIT"},
        {&s->rollback, "ROLLBACK"},
        {&s->upsert_session,
         "INSERT OR REPLACE INTO sessions(client_id, protocol_version, expiry_interval, subscriptions) "
         "VALUES(?1, ?2, ?3, ?4)"},
        {&s->delete_session, "DELETE FROM sessions WHERE client_id = ?1"},
        {&s->delete_session_inbound, "DELETE FROM inbound_qos2 WHERE client_id = ?1"},
        {&s->upsert_retained,
         "INSERT OR REPLACE INTO retained(topic, qos, payload, payload_format, content_type, response_topic, "
         "correlation_data, user_properties, expires_at_ms, origin_client_id) "
         "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"},
        {&s->delete_retained, "DELETE FROM retained WHERE topic = ?1"},
        {&s->insert_queued, "INSERT INTO queued(owner, seq, entry, purge_at_ms) VALUES(?1, ?2, ?3, ?4)"},
        {&s->update_queued, "UPDATE queued SET entry = ?2, purge_at_ms = ?3 WHERE id = ?1"},
        {&s->delete_queued, "DELETE FROM queued WHERE id = ?1"},
        {&s->insert_owner, "INSERT INTO queue_owners(client_id) VALUES(?1)"},
        {&s->delete_owner, "DELETE FROM queue_owners WHERE id = ?1"},
        {&s->insert_inbound, "INSERT OR IGNORE INTO inbound_qos2(client_id, packet_id) VALUES(?1, ?2)"},
        {&s->delete_inbound, "DELETE FROM inbound_qos2 WHERE client_id = ?1 AND packet_id = ?2"},
        {&s->purge_retained, "DELETE FROM retained WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ?1"},
        // Entries already sent stay: their QoS flow must complete whatever the expiry.
        {&s->purge_queued, "DELETE FROM queued WHERE purge_at_ms IS NOT NULL AND purge_at_ms <= ?1"},
        {&s->insert_event,
         "INSERT OR REPLACE INTO stream_events(stream, event_offset, timestamp_ms, byte_start, topic, payload, qos, "
         "retain, payload_format, content_type, response_topic, correlation_data, user_properties, expires_at_ms, "
         "origin_client_id) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"},
        // Retention cuts a prefix: the first event to keep, found by walking only the
        // events that go (both columns grow with the offset).
        {&s->event_cut_by_time,
         "SELECT event_offset FROM stream_events WHERE stream = ?1 AND timestamp_ms >= ?2 "
         "ORDER BY event_offset LIMIT 1"},
        {&s->event_cut_by_bytes,
         "SELECT event_offset FROM stream_events WHERE stream = ?1 AND byte_start >= ?2 "
         "ORDER BY event_offset LIMIT 1"},
        {&s->delete_events_before, "DELETE FROM stream_events WHERE stream = ?1 AND event_offset < ?2"},
        {&s->remember_stream_end,
         "INSERT OR REPLACE INTO streams(name, next_offset, bytes_end) "
         "SELECT ?1, max(event_offset) + 1, ?2 FROM stream_events WHERE stream = ?1 "
         "HAVING max(event_offset) IS NOT NULL"},
        {&s->stream_bytes_end,
         "SELECT max(coalesce((SELECT byte_start + length(payload) FROM stream_events WHERE stream = ?1 "
         "ORDER BY event_offset DESC LIMIT 1), 0), coalesce((SELECT bytes_end FROM streams WHERE name = ?1), 0))"},
        {&s->freelist_count, "PRAGMA freelist_count"},
        {&s->page_count, "PRAGMA page_count"},
    };
    for (const Entry& e : entries) {
      auto stmt = db.prepare(e.sql);
      if (!stmt) return make_unexpected(stmt.error());
      *e.target = std::move(*stmt);
    }
    return s;
  }
};

struct SqliteStore::ReaderStatements {
  sqlite::Statement read_events, stream_end;

  static Expected<std::unique_ptr<ReaderStatements>, sqlite::Error> prepare(sqlite::Database& db) {
    auto s = std::make_unique<ReaderStatements>();
    auto read = db.prepare(
        "SELECT event_offset, timestamp_ms, topic, qos, payload, retain, payload_format, content_type, "
        "response_topic, correlation_data, user_properties, expires_at_ms, origin_client_id FROM stream_events "
        "WHERE stream = ?1 AND event_offset >= ?2 AND event_offset < ?3 AND timestamp_ms >= ?4 "
        "ORDER BY event_offset LIMIT ?5");
    if (!read) return make_unexpected(read.error());
    s->read_events = std::move(*read);
    auto end = db.prepare(
        "SELECT max(coalesce((SELECT max(event_offset) + 1 FROM stream_events WHERE stream = ?1), 0), "
        "coalesce((SELECT next_offset FROM streams WHERE name = ?1), 0))");
    if (!end) return make_unexpected(end.error());
    s->stream_end = std::move(*end);
    return s;
  }
};

struct SqliteStore::Opened {
  sqlite::Database db;
  std::unique_ptr<Statements> statements;
  sqlite::Database reader;
  std::unique_ptr<ReaderStatements> reader_statements;
  bool incremental_vacuum = false;  // a file from before version 3 that kept its pointer maps
  std::int64_t page_size = 1024;
};

struct SqliteStore::OpenFailure {
  bool damaged = false;  // the file's content is unusable; anything else is the environment
  std::string reason;
};

Expected<SqliteStore::Opened, SqliteStore::OpenFailure> SqliteStore::open_database(const Options& o) {
  auto failure = [](const sqlite::Error& e, const char* what) {
    return make_unexpected(OpenFailure{is_damage(e.code), fmt::format("{}: {}", what, sqlite::describe(e))});
  };
  auto db = sqlite::Database::open(o.path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX);
  if (!db) return failure(db.error(), "open");
  if (const int rc = sqlite3_busy_timeout(db->handle(), 5000); rc != SQLITE_OK)
    return failure(db->last_error(rc), "busy_timeout");

  // Nothing may write to the file before it is known to be ours and sound: a damaged
  // file is kept exactly as found. Closing would checkpoint a WAL into it.
  if (const int rc = sqlite3_db_config(db->handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr); rc != SQLITE_OK)
    return failure(db->last_error(rc), "no_ckpt_on_close");

  // quick_check reads every page of every B-tree: it finds a truncated file, garbage and
  // broken pages before any load trusts them. It is linear in the file's size but far
  // cheaper than integrity_check (no cross-check of indexes against tables).
  auto check = db->query_text("PRAGMA quick_check");
  if (!check) return failure(check.error(), "quick_check");
  if (*check != "ok") return make_unexpected(OpenFailure{true, fmt::format("quick_check: {}", printable(*check))});

  auto version = db->query_int("PRAGMA user_version");
  if (!version) return failure(version.error(), "user_version");
  if (*version > schema::kCurrentVersion)
    return make_unexpected(OpenFailure{
        true, fmt::format("schema version {} is newer than this build's {}", *version, schema::kCurrentVersion)});
  if (*version < 0) return make_unexpected(OpenFailure{true, fmt::format("schema version {} is invalid", *version)});
  if (*version == 0) {
    auto objects = db->query_int("SELECT count(*) FROM sqlite_schema");
    if (!objects) return failure(objects.error(), "schema");
    if (*objects != 0) return make_unexpected(OpenFailure{true, "tables of another application (schema version 0)"});
    // Only a new file: must precede the switch to WAL, which writes the file's header.
    // PRAGMA takes no bound parameters; the value is a number checked in open().
    // No auto_vacuum: its pointer-map pages would be one more page written by nearly
    // every commit that allocates a page; maintain() shrinks the file instead.
    if (auto r = db->exec(fmt::format("PRAGMA page_size = {}", o.page_size).c_str()); !r)
      return failure(r.error(), "page_size");
  }

  auto mode = db->query_text("PRAGMA journal_mode = WAL");
  if (!mode) return failure(mode.error(), "journal_mode");
  if (*mode != "wal") return make_unexpected(OpenFailure{false, fmt::format("journal_mode is {}, not wal", *mode)});

  if (auto migrated = schema::migrate(*db); !migrated) {
    const auto& e = migrated.error();
    switch (e.kind) {
      case schema::MigrationError::Kind::future_version:
        return make_unexpected(OpenFailure{true, fmt::format("schema version {} is newer than this build's {}",
                                                             e.found_version, schema::kCurrentVersion)});
      case schema::MigrationError::Kind::invalid_version:
        return make_unexpected(OpenFailure{
            true, fmt::format("schema version {} with tables this build did not create", e.found_version)});
      case schema::MigrationError::Kind::sqlite:
        return failure(e.error, "migration");
    }
  }

  // Files created before version 3 have incremental auto-vacuum; going to version 3
  // rewrote their queue anyway, so they also lose the pointer maps, once. If VACUUM
  // cannot run (it needs the file's size again in free space), the file keeps them and
  // still works.
  auto auto_vacuum = db->query_int("PRAGMA auto_vacuum");
  if (!auto_vacuum) return failure(auto_vacuum.error(), "auto_vacuum");
  if (*version > 0 && *version < 3 && *auto_vacuum != 0) {
    if (auto r = db->exec("PRAGMA auto_vacuum = NONE"); r) r = db->exec("VACUUM");
    else log::warn(kLog, "cannot drop auto-vacuum: {}", sqlite::describe(r.error()));
    auto_vacuum = db->query_int("PRAGMA auto_vacuum");
    if (!auto_vacuum) return failure(auto_vacuum.error(), "auto_vacuum");
  }

  // NORMAL in both modes: a commit does not sync the WAL (checkpoints still sync it before
  // copying, and the database file after). In fsync mode the sync thread makes commits
  // durable, so the writer goes on with the next batch while the previous one syncs.
  if (auto r = db->exec("PRAGMA synchronous = NORMAL"); !r) return failure(r.error(), "synchronous");
  auto page_size = db->query_int("PRAGMA page_size");
  if (!page_size) return failure(page_size.error(), "page_size");
  const auto checkpoint_pages = static_cast<int>(std::max<std::int64_t>(16, o.wal_checkpoint_bytes / *page_size));
  if (const int rc = sqlite3_wal_autocheckpoint(db->handle(), checkpoint_pages); rc != SQLITE_OK)
    return failure(db->last_error(rc), "wal_autocheckpoint");
  // After a checkpoint resets the WAL, a WAL grown by one large transaction is cut back
  // to this size instead of keeping its high-water mark on disk.
  const std::int64_t limit = std::int64_t{checkpoint_pages} * *page_size;
  // PRAGMA takes no bound parameters; the value is a number computed here, not input.
  if (auto r = db->exec(fmt::format("PRAGMA journal_size_limit = {}", limit).c_str()); !r)
    return failure(r.error(), "journal_size_limit");

  auto statements = Statements::prepare(*db);
  if (!statements) return failure(statements.error(), "prepare");
  if (const int rc = sqlite3_db_config(db->handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr); rc != SQLITE_OK)
    return failure(db->last_error(rc), "no_ckpt_on_close");

  // The reader sees committed data only and never writes; WAL lets it read while the
  // writer commits.
  auto reader = sqlite::Database::open(o.path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX);
  if (!reader) return failure(reader.error(), "open reader");
  if (auto r = reader->exec("PRAGMA query_only = 1"); !r) return failure(r.error(), "query_only");
  if (const int rc = sqlite3_busy_timeout(reader->handle(), 5000); rc != SQLITE_OK)
    return failure(reader->last_error(rc), "busy_timeout");
  auto reader_statements = ReaderStatements::prepare(*reader);
  if (!reader_statements) return failure(reader_statements.error(), "prepare reader");
  return Opened{std::move(*db), std::move(*statements), std::move(*reader), std::move(*reader_statements),
                *auto_vacuum == 2, *page_size};
}
Expected<std::unique_ptr<SqliteStore>, std::string> SqliteStore::open(const Options& options) {
  if (!options.post_to_owner) return make_unexpected(std::string("store: post_to_owner is required"));
  if (options.path.empty()) return make_unexpected(std::string("store: no database path"));
  if (options.max_batch_ops == 0) return make_unexpected(std::string("store: max_batch_ops must be positive"));
  if (options.page_size < 512 || options.page_size > 65536 || (options.page_size & (options.page_size - 1)) != 0)
    return make_unexpected(fmt::format("store: page_size {} is not a power of two from 512 to 65536", options.page_size));
  if (options.path.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(options.path.parent_path(), ec);
    if (ec)
      return make_unexpected(fmt::format("store: cannot create {}: {}", options.path.parent_path().string(),
                                         ec.message()));
  }
  std::uint64_t damaged = 0;
  // Two attempts: the file as found, then a fresh one after moving a damaged file aside.
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto opened = open_database(options);
    if (opened) return std::unique_ptr<SqliteStore>(new SqliteStore(options, std::move(*opened), damaged));
    if (!opened.error().damaged || attempt > 0)
      return make_unexpected(fmt::format("store: {}: {}", options.path.string(), opened.error().reason));
    const auto now = options.system_now ? options.system_now() : std::chrono::system_clock::now();
    auto moved = move_aside(options.path, now);
    if (!moved) {
      log::error(kLog, "database {} is damaged ({}) and cannot be moved aside: {}", options.path.string(),
                 opened.error().reason, moved.error());
      return make_unexpected(fmt::format("store: {}", moved.error()));
    }
    ++damaged;
    log::error(kLog, "DAMAGED DATABASE {}: {}; moved aside to {}; starting with an empty store",
               options.path.string(), opened.error().reason, moved->string());
  }
  return make_unexpected(std::string("store: unreachable"));
}

SqliteStore::SqliteStore(const Options& o, Opened opened, std::uint64_t damaged)
    : path_(o.path),
      durability_(o.durability),
      max_commit_delay_(o.max_commit_delay),
      min_commit_interval_(o.min_commit_interval),
      commit_quiet_(o.commit_quiet),
      commit_bytes_(o.commit_bytes),
      max_batch_ops_(o.max_batch_ops),
      post_to_owner_(o.post_to_owner),
      steady_now_(o.steady_now ? o.steady_now : [] { return Clock::now(); }),
      system_now_(o.system_now ? o.system_now : [] { return std::chrono::system_clock::now(); }),
      damaged_moved_aside_(damaged),
      db_(std::move(opened.db)),
      statements_(std::move(opened.statements)),
      incremental_vacuum_(opened.incremental_vacuum),
      page_size_(opened.page_size),
      reader_(std::move(opened.reader)),
      reader_statements_(std::move(opened.reader_statements)) {
  // Expired messages go before the broker loads anything; nothing else runs yet.
  std::vector<Op> purge;
  purge.push_back(Op{PurgeExpired{}});
  if (!commit_range(purge, 0, 1)) log::error(kLog, "purging expired messages at start-up failed");
  maintain();
  writer_ = std::thread([this] { writer_loop(); });
  if (durability_ == Durability::fsync) syncer_ = std::thread([this] { syncer_loop(); });
}

SqliteStore::~SqliteStore() { close(); }

void SqliteStore::close() {
  if (closed_) return;
  closed_ = true;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_writer_.notify_one();
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard lock(mutex_);
    syncer_stopping_ = true;
  }
  wake_syncer_.notify_one();
  if (syncer_.joinable()) syncer_.join();  // after the last callbacks' sync
  if (wal_fd_ >= 0) ::close(wal_fd_);
  wal_fd_ = -1;
  reader_statements_.reset();
  reader_.close();
  std::lock_guard db_lock(db_mutex_);
  statements_.reset();
  db_.close();  // checkpoints the WAL into the database file and removes it
}

// ---- owner's side: appending to the pending batch ----

void SqliteStore::append(OpData data, bool notify_writer) {
  // Called with mutex_ held by the public methods, which also update the indexes.
  const auto now = Clock::now();
  if (pending_.ops.empty()) {
    pending_.first_op_at = now;
    notify_writer = true;
  }

  const std::size_t bytes = op_bytes(data);
  pending_.ops.push_back(Op{std::move(data)});
  if (++pending_live_ == max_batch_ops_) notify_writer = true;
  if (bytes > 0) {
    pending_.last_message_at = now;
    const std::size_t before = pending_bytes_;
    pending_bytes_ += bytes;
    // The writer waits on these two thresholds (see writer_loop): tell it when one is crossed.
    for (const std::size_t threshold : {commit_bytes_ / 4, commit_bytes_}) {
      if (before < threshold && pending_bytes_ >= threshold) notify_writer = true;
    }
  }
  if (notify_writer) wake_writer_.notify_one();
}

std::size_t SqliteStore::op_bytes(const OpData& data) {
  if (const auto* q = std::get_if<broker::QueuedRecord>(&data))
    return q->message ? q->message->topic.size() + q->message->payload.size() : 0;
  if (const auto* m = std::get_if<broker::MessagePtr>(&data)) return *m ? (*m)->topic.size() + (*m)->payload.size() : 0;
  if (const auto* a = std::get_if<AppendStream>(&data))
    return a->event.message ? a->event.message->topic.size() + a->event.message->payload.size() : 0;
  return 0;
}

template <class T, class Index, class Key>
void SqliteStore::supersede(Index& index, const Key& key) {
  auto it = index.find(key);
  if (it == index.end()) return;
  Op& op = pending_.ops[it->second];
  if (op.live && std::holds_alternative<T>(op.data)) {
    op.live = false;
    --pending_live_;
    ops_coalesced_.fetch_add(1, std::memory_order_relaxed);
  }
}

void SqliteStore::save_session(const broker::SessionRecord& session) {
  ops_submitted_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  supersede<broker::SessionRecord>(session_index_, session.client_id);
  session_index_[session.client_id] = pending_.ops.size();
  append(session);
}

void SqliteStore::remove_session(const std::string& client_id) {
  ops_submitted_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  // The removal deletes every row of the client: its pending saves need not run.
  for (Op& op : pending_.ops) {
    if (!op.live) continue;
    const std::string* owner = nullptr;
    if (auto* s = std::get_if<broker::SessionRecord>(&op.data)) owner = &s->client_id;
    if (auto* q = std::get_if<broker::QueuedRecord>(&op.data)) owner = &q->client_id;
    if (auto* i = std::get_if<InboundQos2>(&op.data)) owner = &i->client_id;
    if (owner != nullptr && *owner == client_id) {
      op.live = false;
      --pending_live_;
      ops_coalesced_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  append(RemoveSession{client_id});
}

void SqliteStore::save_retained(const broker::MessagePtr& message) {
  ops_submitted_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  if (stopping_ || !message) return;
  supersede<broker::MessagePtr>(retained_index_, message->topic);
  supersede<RemoveRetained>(retained_index_, message->topic);
  retained_index_[message->topic] = pending_.ops.size();
  append(message);
}

void SqliteStore::remove_retained(const std::string& topic) {
  ops_submitted_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  supersede<broker::MessagePtr>(retained_index_, topic);
  supersede<RemoveRetained>(retained_index_, topic);
  retained_index_[topic] = pending_.ops.size();
  append(RemoveRetained{topic});
}

void SqliteStore::save_queued(const broker::QueuedRecord& record) {
  ops_submitted_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  auto key = std::make_pair(record.client_id, record.seq);
  supersede<broker::QueuedRecord>(queued_index_, key);
  supersede<RemoveQueued>(queued_index_, key);
  queued_index_[std::move(key)] = pending_.ops.size();
  append(record);
}

void SqliteStore::remove_queued(const std::string& client_id, std::uint64_t seq) {
  ops_submitted_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  auto key = std::make_pair(client_id, seq);
  supersede<broker::QueuedRecord>(queued_index_, key);
  supersede<RemoveQueued>(queued_index_, key);
  queued_index_[std::move(key)] = pending_.ops.size();
  append(RemoveQueued{client_id, seq});
}

void SqliteStore::save_inbound_qos2(const std::string& client_id, std::uint16_t packet_id) {
  ops_submitted_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  auto key = std::make_pair(client_id, std::uint64_t{packet_id});
  supersede<InboundQos2>(inbound_index_, key);
  inbound_index_[std::move(key)] = pending_.ops.size();
  append(InboundQos2{client_id, packet_id, true});
}

void SqliteStore::remove_inbound_qos2(const std::string& client_id, std::uint16_t packet_id) {
  ops_submitted_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  auto key = std::make_pair(client_id, std::uint64_t{packet_id});
  supersede<InboundQos2>(inbound_index_, key);
  inbound_index_[std::move(key)] = pending_.ops.size();
  append(InboundQos2{client_id, packet_id, false});
}

void SqliteStore::append_stream(const std::string& stream, const broker::StreamEvent& event) {
  ops_submitted_.fetch_add(1, std::memory_order_relaxed);
  if (!event.message) return;
  std::uint64_t committed_end = 0;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    if (auto it = committed_stream_end_.find(stream); it != committed_stream_end_.end()) committed_end = it->second;
    append(AppendStream{stream, event});
  }
  auto& unconfirmed = unconfirmed_appends_[stream];
  while (!unconfirmed.empty() && unconfirmed.front().offset < committed_end) unconfirmed.pop_front();
  unconfirmed.push_back(event);
}

void SqliteStore::trim_stream(const std::string& stream, std::int64_t older_than_ms, std::uint64_t max_bytes) {
  if (older_than_ms <= 0 && max_bytes == 0) return;
  ops_submitted_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  append(TrimStream{stream, older_than_ms, max_bytes});
}

std::vector<broker::StreamEvent> SqliteStore::read_stream(const std::string& stream, std::uint64_t from_offset,
                                                          std::int64_t from_time_ms, std::size_t max_count) {
  std::vector<broker::StreamEvent> out;
  if (max_count == 0 || !reader_) return out;
  // What is committed comes from the database, the rest from the unconfirmed appends:
  // drop from those what is known committed, then read the database only below them.
  // An append committed in between is in both; the offset bound keeps it once.
  std::deque<broker::StreamEvent>* unconfirmed = nullptr;
  if (auto it = unconfirmed_appends_.find(stream); it != unconfirmed_appends_.end()) {
    unconfirmed = &it->second;
    std::uint64_t committed_end = 0;
    {
      std::lock_guard lock(mutex_);
      if (auto c = committed_stream_end_.find(stream); c != committed_stream_end_.end()) committed_end = c->second;
    }
    while (!unconfirmed->empty() && unconfirmed->front().offset < committed_end) unconfirmed->pop_front();
  }
  const std::uint64_t below =
      unconfirmed != nullptr && !unconfirmed->empty() ? unconfirmed->front().offset : std::uint64_t{INT64_MAX};
  if (from_offset < below) {
    sqlite::Statement& q = reader_statements_->read_events;
    BindStatus bind;
    bind(q.bind_text(1, stream));
    bind(q.bind_int64(2, static_cast<std::int64_t>(std::min<std::uint64_t>(from_offset, INT64_MAX))));
    bind(q.bind_int64(3, static_cast<std::int64_t>(std::min<std::uint64_t>(below, INT64_MAX))));
    bind(q.bind_int64(4, from_time_ms));
    bind(q.bind_int64(5, static_cast<std::int64_t>(std::min<std::size_t>(max_count, INT64_MAX))));
    const TimeBase time{steady_now_(), now_wall_ms()};
    int rc = bind.code;
    while (bind.code == SQLITE_OK && (rc = q.step()) == SQLITE_ROW) {
      RowReader row(q);
      broker::StreamEvent e;
      e.offset = static_cast<std::uint64_t>(row.integer(0, "offset", 0, INT64_MAX));
      e.timestamp_ms = row.integer(1, "timestamp", INT64_MIN, INT64_MAX);
      if (auto m = row.ok() ? read_message(row, kEventColumns, time) : std::nullopt) e.message = std::move(*m);
      if (!row.ok()) {
        rows_skipped_.fetch_add(1, std::memory_order_relaxed);
        log::warn(kLog, "skipping event {} of stream {}: {}", q.column_int64(0), printable(stream), row.problem());
        continue;
      }
      out.push_back(std::move(e));
    }
    if (rc != SQLITE_DONE)
      log::error(kLog, "reading stream {} failed: {}", printable(stream), sqlite::describe(reader_.last_error(rc)));
    q.reset();
  }
  if (unconfirmed != nullptr) {
    for (const broker::StreamEvent& e : *unconfirmed) {
      if (out.size() >= max_count) break;
      if (e.offset >= from_offset && e.timestamp_ms >= from_time_ms) out.push_back(e);
    }
  }
  return out;
}

std::uint64_t SqliteStore::stream_end(const std::string& stream) {
  if (auto it = unconfirmed_appends_.find(stream); it != unconfirmed_appends_.end() && !it->second.empty())
    return it->second.back().offset + 1;
  if (!reader_) return 0;
  sqlite::Statement& q = reader_statements_->stream_end;
  std::uint64_t end = 0;
  const int bound = q.bind_text(1, stream);
  const int rc = bound == SQLITE_OK ? q.step() : bound;
  if (rc == SQLITE_ROW)
    end = static_cast<std::uint64_t>(std::max<std::int64_t>(q.column_int64(0), 0));
  else
    log::error(kLog, "reading the end of stream {} failed: {}", printable(stream),
               sqlite::describe(reader_.last_error(rc)));
  q.reset();
  return end;
}

void SqliteStore::purge_expired() {
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  append(PurgeExpired{});
}

void SqliteStore::when_durable(std::function<void()> fn) {
  std::unique_lock lock(mutex_);
  if (stopping_) return;  // closed: nothing will be written any more
  if (pending_.empty() && !writer_busy_ && awaiting_sync_.empty() && !syncing_ &&
      commits_synced_ == commits_written_.load(std::memory_order_relaxed)) {
    // Everything issued so far is committed (and, in fsync mode, synced). Posted all the
    // same, so the caller's control flow does not depend on the store's timing.
    lock.unlock();
    callbacks_posted_.fetch_add(1, std::memory_order_relaxed);
    post_to_owner_(std::move(fn));
    return;
  }
  if (pending_.empty() && !writer_busy_) {
    // Everything issued so far is committed but not all of it synced: the next sync,
    // which starts after this, covers it. Queued behind the callbacks waiting for it.
    awaiting_sync_.push_back(std::move(fn));
    lock.unlock();
    wake_syncer_.notify_one();
    return;
  }
  pending_.callbacks.push_back(Callback{pending_.ops.size(), std::move(fn)});
}

void SqliteStore::begin_atomic() {
  std::lock_guard lock(mutex_);
  if (atomic_depth_++ == 0) atomic_begin_ = pending_.ops.size();
}

void SqliteStore::end_atomic() {
  {
    std::lock_guard lock(mutex_);
    if (atomic_depth_ == 0 || --atomic_depth_ > 0) return;
    for (std::size_t i = atomic_begin_; i + 1 < pending_.ops.size(); ++i) pending_.ops[i].joins_next = true;
  }
  wake_writer_.notify_one();  // it may be waiting for the group to close
}

// ---- writer thread ----

void SqliteStore::writer_loop() {
  Batch work;
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_writer_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
    if (pending_.empty()) break;  // stopping, and everything is written
    if (!pending_.ops.empty() && !stopping_) {
      // Group commit: let the batch gather for max_commit_delay after its first write,
      // and while writes keep coming, until min_commit_interval after the previous commit
      // began. Writes issued while the previous commit ran have already waited.
      // A sizeable batch (a quarter of commit_bytes) that stopped growing for commit_quiet
      // goes at once: its writers are most likely waiting for this very commit (publishers
      // whose windows are full), and holding it back would only slow them down. A small
      // one waits: a commit costs a few pages whatever it holds.
      for (;;) {
        const bool sizeable = pending_bytes_ >= commit_bytes_ / 4;
        const auto quiet_at = sizeable ? std::max(pending_.first_op_at + max_commit_delay_,
                                                  pending_.last_message_at + commit_quiet_)
                                       : Clock::time_point::max();
        const auto ready_at = std::max(pending_.first_op_at + max_commit_delay_, last_commit_at_ + min_commit_interval_);
        const auto deadline = std::min(quiet_at, ready_at);
        auto full = [&] { return stopping_ || pending_live_ >= max_batch_ops_ || pending_bytes_ >= commit_bytes_; };
        wake_writer_.wait_until(lock, deadline,
                                [&] { return full() || (!sizeable && pending_bytes_ >= commit_bytes_ / 4); });
        if (full() || Clock::now() >= ready_at) break;
        if (sizeable && Clock::now() >= pending_.last_message_at + commit_quiet_) break;  // quiet since
      }
    }
    // Never in the middle of an atomic group: the broker's thread closes it within the
    // handling of one packet.
    wake_writer_.wait(lock, [&] { return atomic_depth_ == 0; });
    last_commit_at_ = Clock::now();
    std::swap(work, pending_);
    pending_live_ = 0;
    pending_bytes_ = 0;
    queued_index_.clear();
    inbound_index_.clear();
    retained_index_.clear();
    session_index_.clear();
    writer_busy_ = true;
    lock.unlock();
    process(work);
    work.clear();  // keeps the vectors' capacity for the next swap
    lock.lock();
    writer_busy_ = false;
  }
}

void SqliteStore::process(Batch& batch) {
  std::size_t begin = 0;
  std::size_t next_callback = 0;
  do {
    std::size_t end = begin;
    std::size_t live = 0;
    while (end < batch.ops.size() && (live < max_batch_ops_ || batch.ops[end - 1].joins_next)) {
      if (batch.ops[end].live) ++live;
      ++end;
    }
    if (live > 0 && !commit_with_retry(batch.ops, begin, end)) {
      log::error(kLog, "store closing with {} writes not committed; {} durability callbacks dropped",
                 batch.ops.size() - begin, batch.callbacks.size() - next_callback);
      return;
    }
    {
      std::lock_guard lock(mutex_);
      for (std::size_t i = begin; i < end; ++i) {
        if (const auto* a = std::get_if<AppendStream>(&batch.ops[i].data))
          committed_stream_end_[a->stream] = a->event.offset + 1;
      }
    }
    const std::size_t first_callback = next_callback;
    while (next_callback < batch.callbacks.size() && batch.callbacks[next_callback].after_ops <= end) ++next_callback;
    post_callbacks(batch.callbacks, first_callback, next_callback);
    begin = end;
  } while (begin < batch.ops.size());
  post_callbacks(batch.callbacks, next_callback, batch.callbacks.size());
}

void SqliteStore::post_callbacks(std::vector<Callback>& callbacks, std::size_t begin, std::size_t end) {
  if (begin >= end) return;
  if (durability_ == Durability::fsync) {
    // Committed, not yet durable: the sync thread posts them after its next fdatasync,
    // which starts after this commit was written.
    {
      std::lock_guard lock(mutex_);
      for (std::size_t i = begin; i < end; ++i) awaiting_sync_.push_back(std::move(callbacks[i].fn));
    }
    wake_syncer_.notify_one();
    return;
  }
  std::vector<std::function<void()>> fns;
  fns.reserve(end - begin);
  for (std::size_t i = begin; i < end; ++i) fns.push_back(std::move(callbacks[i].fn));
  post_group(std::move(fns));
}

void SqliteStore::post_group(std::vector<std::function<void()>> fns) {
  if (fns.empty()) return;
  callbacks_posted_.fetch_add(fns.size(), std::memory_order_relaxed);
  if (fns.size() == 1) {
    post_to_owner_(std::move(fns.front()));
    return;
  }
  // One post for the whole group: one wake-up of the owner instead of one per callback.
  post_to_owner_([fns = std::move(fns)] {
    for (const auto& fn : fns) fn();
  });
}

// ---- sync thread (fsync mode) ----

void SqliteStore::syncer_loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_syncer_.wait(lock, [&] { return syncer_stopping_ || !awaiting_sync_.empty(); });
    if (awaiting_sync_.empty()) break;  // stopping, and every callback is posted
    std::vector<std::function<void()>> group;
    group.swap(awaiting_sync_);
    // Every commit counted here was written before this read: the fdatasync below,
    // which starts later, covers it, and every callback in `group` waits for one of them.
    const std::uint64_t target = commits_written_.load(std::memory_order_relaxed);
    syncing_ = true;
    lock.unlock();
    const auto started = Clock::now();
    const bool synced = sync_wal();
    // Commit latency in fsync mode: the last commit's write plus the sync that made it
    // durable (what an acknowledgement waits for, beyond the batch's gathering).
    const auto us = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count());
    const std::uint64_t latency = last_write_us_.load(std::memory_order_relaxed) + us;
    last_commit_us_.store(latency, std::memory_order_relaxed);
    total_commit_us_.fetch_add(us, std::memory_order_relaxed);
    if (latency > max_commit_us_.load(std::memory_order_relaxed))
      max_commit_us_.store(latency, std::memory_order_relaxed);
    lock.lock();
    syncing_ = false;
    if (!synced) {
      // Linux may have dropped the pages it could not write: nothing here is known to be
      // on disk, so nothing is acknowledged (the clients resend after a reconnect).
      write_errors_.fetch_add(1, std::memory_order_relaxed);
      log::error(kLog, "WAL sync failed; {} durability callbacks dropped", group.size());
      continue;
    }
    commits_synced_ = target;
    // Posted under the lock: a when_durable that finds everything synced posts after these.
    post_group(std::move(group));
  }
}

bool SqliteStore::sync_wal() {
  if (wal_fd_ < 0) {
    const std::string wal = path_.string() + "-wal";
    wal_fd_ = ::open(wal.c_str(), O_RDONLY | O_CLOEXEC);
    if (wal_fd_ < 0) {
      log::error(kLog, "cannot open {} to sync it: {}", wal, std::strerror(errno));
      return false;
    }
  }
  // The same inode as SQLite's descriptor (it never replaces the WAL while the database is
  // open): fdatasync writes out every page of it, whichever descriptor dirtied them.
  if (::fdatasync(wal_fd_) != 0) {
    log::error(kLog, "fdatasync of the WAL failed: {}", std::strerror(errno));
    return false;
  }
  fsyncs_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool SqliteStore::commit_with_retry(const std::vector<Op>& ops, std::size_t begin, std::size_t end) {
  auto pause = std::chrono::milliseconds(50);
  for (int attempt = 1;; ++attempt) {
    if (commit_range(ops, begin, end)) return true;
    write_errors_.fetch_add(1, std::memory_order_relaxed);
    std::unique_lock lock(mutex_);
    // Closing: a few more tries, then give up rather than hang the shutdown.
    if (stopping_ && attempt >= 3) return false;
    wake_writer_.wait_for(lock, pause, [&] { return stopping_ && attempt >= 3; });
    pause = std::min(pause * 2, std::chrono::milliseconds(5000));
  }
}

bool SqliteStore::commit_range(const std::vector<Op>& ops, std::size_t begin, std::size_t end) {
  std::lock_guard db_lock(db_mutex_);
  Statements& s = *statements_;
  const auto started = Clock::now();
  auto fail = [&](const char* what, int rc) {
    log::error(kLog, "transaction failed at {}: {}", what, sqlite::describe(db_.last_error(rc)));
    stream_bytes_end_.clear();  // may count appends that are rolled back: reread them
    queue_index_stale_ = true;  // may hold rows that are rolled back
    if (sqlite3_get_autocommit(db_.handle()) == 0) {
      const int rollback = s.rollback.step();
      s.rollback.reset();
      if (rollback != SQLITE_DONE)
        log::error(kLog, "rollback failed: {}", sqlite::describe(db_.last_error(rollback)));
    }
    return false;
  };
  int rc = s.begin.step();
  s.begin.reset();
  if (rc != SQLITE_DONE) return fail("BEGIN", rc);
  std::size_t written = 0;
  for (std::size_t i = begin; i < end; ++i) {
    if (!ops[i].live) continue;
    if (!run_op(ops[i])) return fail("write", db_.last_error().code);
    ++written;
  }
  rc = s.commit.step();
  s.commit.reset();
  if (rc != SQLITE_DONE) return fail("COMMIT", rc);

  const auto us = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count());
  commits_.fetch_add(1, std::memory_order_relaxed);
  if (durability_ == Durability::fsync) commits_written_.fetch_add(1, std::memory_order_relaxed);
  ops_written_.fetch_add(written, std::memory_order_relaxed);
  last_write_us_.store(us, std::memory_order_relaxed);
  total_commit_us_.fetch_add(us, std::memory_order_relaxed);
  if (durability_ != Durability::fsync) {  // in fsync mode the sync thread adds the sync
    last_commit_us_.store(us, std::memory_order_relaxed);
    if (us > max_commit_us_.load(std::memory_order_relaxed)) max_commit_us_.store(us, std::memory_order_relaxed);
  }
  if (written > max_batch_.load(std::memory_order_relaxed)) max_batch_.store(written, std::memory_order_relaxed);
  total_batch_.fetch_add(written, std::memory_order_relaxed);
  std::size_t bucket = 0;
  while (bucket + 1 < batch_histogram_.size() && (std::size_t{2} << bucket) <= written) ++bucket;
  batch_histogram_[bucket].fetch_add(1, std::memory_order_relaxed);
  maintain();
  return true;
}

std::int64_t SqliteStore::now_wall_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(system_now_().time_since_epoch()).count();
}

std::int64_t SqliteStore::wall_ms(Clock::time_point t) const {
  return now_wall_ms() + std::chrono::duration_cast<std::chrono::milliseconds>(t - steady_now_()).count();
}

namespace {
bool seq_before(const std::pair<std::uint64_t, std::int64_t>& row, std::uint64_t seq) { return row.first < seq; }
}  // namespace

SqliteStore::QueueRows::iterator SqliteStore::find_queue_row(QueueRows& rows, std::uint64_t seq) {
  const auto it = std::lower_bound(rows.begin(), rows.end(), seq, seq_before);
  return it != rows.end() && it->first == seq ? it : rows.end();
}

void SqliteStore::add_queue_row(QueueRows& rows, std::uint64_t seq, std::int64_t id) {
  // A session's new entries come with growing seqs: almost always an append.
  if (rows.empty() || rows.back().first < seq) {
    rows.emplace_back(seq, id);
    return;
  }
  const auto it = std::lower_bound(rows.begin(), rows.end(), seq, seq_before);
  if (it != rows.end() && it->first == seq)
    it->second = id;
  else
    rows.emplace(it, seq, id);
}

std::int64_t SqliteStore::owner_id(const std::string& client_id, bool create) {
  if (auto it = owner_ids_.find(client_id); it != owner_ids_.end()) return it->second;
  if (!create) return 0;
  sqlite::Statement& insert = statements_->insert_owner;
  const int bound = insert.bind_text(1, client_id);
  const int rc = bound == SQLITE_OK ? insert.step() : bound;
  insert.reset();
  if (rc != SQLITE_DONE) return -1;
  const std::int64_t id = sqlite3_last_insert_rowid(db_.handle());
  owner_ids_.emplace(client_id, id);
  return id;
}

bool SqliteStore::load_queue_index() {
  owner_ids_.clear();
  queue_rows_.clear();
  auto owners = db_.prepare("SELECT id, client_id FROM queue_owners", false);
  auto rows = db_.prepare("SELECT owner, seq, id FROM queued", false);
  if (!owners || !rows) {
    log::error(kLog, "cannot read the queue index: {}", sqlite::describe(owners ? rows.error() : owners.error()));
    return false;
  }
  int rc;
  while ((rc = owners->step()) == SQLITE_ROW) owner_ids_.emplace(owners->column_bytes(1), owners->column_int64(0));
  if (rc == SQLITE_DONE) {
    while ((rc = rows->step()) == SQLITE_ROW) {
      QueueRows& r = queue_rows_[rows->column_int64(0)];
      const auto seq = static_cast<std::uint64_t>(rows->column_int64(1));
      const std::int64_t id = rows->column_int64(2);
      // Row ids follow insertion, which follows seq within a session: sorted already but
      // for the rare entry whose seq arrived late.
      if (r.empty() || r.back().first < seq)
        r.emplace_back(seq, id);
      else
        add_queue_row(r, seq, id);
    }
  }
  if (rc != SQLITE_DONE) {
    log::error(kLog, "cannot read the queue index: {}", sqlite::describe(db_.last_error(rc)));
    return false;
  }
  queue_index_stale_ = false;
  return true;
}

bool SqliteStore::run_op(const Op& op) {
  Statements& s = *statements_;
  BindStatus bind;
  sqlite::Statement* stmt = nullptr;
  std::string scratch;  // encoded blob bound SQLITE_STATIC: lives until the step below
  std::function<std::string()> what;  // names the row in a warning (built only then)
  // A queue row being inserted: its (seq, row id) joins the index once the insert is done.
  std::optional<std::pair<std::deque<std::pair<std::uint64_t, std::int64_t>>*, std::uint64_t>> inserted_queue_row;

  if (auto* session = std::get_if<broker::SessionRecord>(&op.data)) {
    stmt = &s.upsert_session;
    scratch = records::encode_subscriptions(session->subscriptions);
    bind(stmt->bind_text(1, session->client_id));
    bind(stmt->bind_int64(2, static_cast<std::int64_t>(session->version)));
    bind(stmt->bind_int64(3, session->session_expiry_interval));
    bind(stmt->bind_blob(4, scratch));
    what = [session] { return "session " + printable(session->client_id); };
  } else if (auto* removal = std::get_if<RemoveSession>(&op.data)) {
    // The queue first, then the rest; the session row goes last so a reader never sees
    // a queue whose session is gone.
    auto run = [&](sqlite::Statement& d, auto&& bind_key) {
      BindStatus b;
      b(bind_key(d));
      const int rc = b.code == SQLITE_OK ? d.step() : b.code;
      if (rc == SQLITE_DONE) rows_changed_.fetch_add(static_cast<std::uint64_t>(db_.changes()));
      d.reset();
      return rc == SQLITE_DONE;
    };
    if (queue_index_stale_ && !load_queue_index()) return false;
    const std::int64_t owner = owner_id(removal->client_id, false);
    if (owner < 0) return false;
    if (owner > 0) {
      if (auto rows = queue_rows_.find(owner); rows != queue_rows_.end()) {
        for (const auto& [seq, id] : rows->second)
          if (!run(s.delete_queued, [id](sqlite::Statement& d) { return d.bind_int64(1, id); })) return false;
        queue_rows_.erase(rows);
      }
      if (!run(s.delete_owner, [owner](sqlite::Statement& d) { return d.bind_int64(1, owner); })) return false;
      owner_ids_.erase(removal->client_id);
    }
    for (sqlite::Statement* d : {&s.delete_session_inbound, &s.delete_session})
      if (!run(*d, [removal](sqlite::Statement& st) { return st.bind_text(1, removal->client_id); })) return false;
    return true;
  } else if (auto* retained = std::get_if<broker::MessagePtr>(&op.data)) {
    const broker::Message& m = **retained;
    stmt = &s.upsert_retained;
    bind_message(*stmt, kRetainedParams, m, m.expires_at ? std::optional(wall_ms(*m.expires_at)) : std::nullopt,
                 bind);
    what = [&m] { return "retained message on " + printable(m.topic); };
  } else if (auto* unretain = std::get_if<RemoveRetained>(&op.data)) {
    stmt = &s.delete_retained;
    bind(stmt->bind_text(1, unretain->topic));
  } else if (auto* queued = std::get_if<broker::QueuedRecord>(&op.data)) {
    if (queue_index_stale_ && !load_queue_index()) return false;
    const std::int64_t owner = owner_id(queued->client_id, true);
    if (owner < 0) return false;
    std::optional<std::int64_t> expires_at_ms;
    if (queued->message && queued->message->expires_at) expires_at_ms = wall_ms(*queued->message->expires_at);
    scratch = records::encode_queue_entry(*queued, expires_at_ms);
    // Only an entry not sent yet may be purged when it expires.
    const auto purge_at_ms = queued->stage == broker::QueuedRecord::Stage::queued ? expires_at_ms : std::nullopt;
    auto& rows = queue_rows_[owner];
    const auto row = find_queue_row(rows, queued->seq);
    if (row != rows.end()) {
      stmt = &s.update_queued;
      bind(stmt->bind_int64(1, row->second));
      bind(stmt->bind_blob(2, scratch));
      bind(purge_at_ms ? stmt->bind_int64(3, *purge_at_ms) : stmt->bind_null(3));
    } else {
      stmt = &s.insert_queued;
      bind(stmt->bind_int64(1, owner));
      bind(stmt->bind_int64(2, static_cast<std::int64_t>(queued->seq)));
      bind(stmt->bind_blob(3, scratch));
      bind(purge_at_ms ? stmt->bind_int64(4, *purge_at_ms) : stmt->bind_null(4));
      inserted_queue_row = std::pair(&rows, queued->seq);
    }
    what = [queued] { return fmt::format("queue entry {} of {}", queued->seq, printable(queued->client_id)); };
  } else if (auto* unqueue = std::get_if<RemoveQueued>(&op.data)) {
    // An entry this store never wrote (saved and removed within one batch, or already
    // gone) costs no statement at all.
    if (queue_index_stale_ && !load_queue_index()) return false;
    const std::int64_t owner = owner_id(unqueue->client_id, false);
    if (owner < 0) return false;
    auto rows = queue_rows_.find(owner);
    if (owner == 0 || rows == queue_rows_.end()) return true;
    const auto row = find_queue_row(rows->second, unqueue->seq);
    if (row == rows->second.end()) return true;
    stmt = &s.delete_queued;
    bind(stmt->bind_int64(1, row->second));
    rows->second.erase(row);
  } else if (auto* inbound = std::get_if<InboundQos2>(&op.data)) {
    stmt = inbound->save ? &s.insert_inbound : &s.delete_inbound;
    bind(stmt->bind_text(1, inbound->client_id));
    bind(stmt->bind_int64(2, inbound->packet_id));
  } else if (std::holds_alternative<AppendStream>(op.data) || std::holds_alternative<TrimStream>(op.data)) {
    return run_stream_op(op);
  } else {
    const std::int64_t now = now_wall_ms();
    bool purged_queue_rows = false;
    for (sqlite::Statement* d : {&s.purge_retained, &s.purge_queued}) {
      BindStatus b;
      b(d->bind_int64(1, now));
      const int rc = b.code == SQLITE_OK ? d->step() : b.code;
      if (rc == SQLITE_DONE) {
        const auto n = static_cast<std::uint64_t>(db_.changes());
        rows_changed_.fetch_add(n, std::memory_order_relaxed);
        expired_removed_.fetch_add(n, std::memory_order_relaxed);
        purged_queue_rows = purged_queue_rows || (n > 0 && d == &s.purge_queued);
      }
      d->reset();
      if (rc != SQLITE_DONE) return false;
    }
    // Rare: the index is read again from the table before the next queue write.
    if (purged_queue_rows) queue_index_stale_ = true;
    return true;
  }

  const int rc = bind.code == SQLITE_OK ? stmt->step() : bind.code;
  if (rc == SQLITE_DONE) {
    rows_changed_.fetch_add(static_cast<std::uint64_t>(db_.changes()), std::memory_order_relaxed);
    if (inserted_queue_row)
      add_queue_row(*inserted_queue_row->first, inserted_queue_row->second, sqlite3_last_insert_rowid(db_.handle()));
  }
  stmt->reset();
  if (rc == SQLITE_DONE) return true;
  if (is_op_specific(rc) && sqlite3_get_autocommit(db_.handle()) == 0) {
    // This row cannot be stored (too big, say); the others of the batch still can.
    log::error(kLog, "cannot store {}: {}", what ? what() : std::string("a row"), sqlite::describe(db_.last_error(rc)));
    return true;
  }
  return false;
}

std::optional<std::uint64_t> SqliteStore::stream_bytes_end(const std::string& stream) {
  if (auto it = stream_bytes_end_.find(stream); it != stream_bytes_end_.end()) return it->second;
  sqlite::Statement& q = statements_->stream_bytes_end;
  const int bound = q.bind_text(1, stream);
  const int rc = bound == SQLITE_OK ? q.step() : bound;
  std::optional<std::uint64_t> end;
  if (rc == SQLITE_ROW) end = static_cast<std::uint64_t>(std::max<std::int64_t>(q.column_int64(0), 0));
  q.reset();
  if (end) stream_bytes_end_.emplace(stream, *end);
  return end;
}

bool SqliteStore::run_stream_op(const Op& op) {
  Statements& s = *statements_;
  auto run = [&](sqlite::Statement& stmt, BindStatus& bind, int expect) {
    const int rc = bind.code == SQLITE_OK ? stmt.step() : bind.code;
    if (rc == SQLITE_DONE) rows_changed_.fetch_add(static_cast<std::uint64_t>(db_.changes()), std::memory_order_relaxed);
    return rc == expect || rc == SQLITE_DONE ? rc : -rc;
  };
  if (const auto* a = std::get_if<AppendStream>(&op.data)) {
    const auto start = stream_bytes_end(a->stream);
    if (!start) return false;
    const broker::Message& m = *a->event.message;
    sqlite::Statement& stmt = s.insert_event;
    BindStatus bind;
    bind(stmt.bind_text(1, a->stream));
    bind(stmt.bind_int64(2, static_cast<std::int64_t>(a->event.offset)));
    bind(stmt.bind_int64(3, a->event.timestamp_ms));
    bind(stmt.bind_int64(4, static_cast<std::int64_t>(*start)));
    bind_message(stmt, kEventParams, m, m.expires_at ? std::optional(wall_ms(*m.expires_at)) : std::nullopt, bind);
    const int rc = run(stmt, bind, SQLITE_DONE);
    stmt.reset();
    if (rc != SQLITE_DONE) return false;
    stream_bytes_end_[a->stream] = *start + m.payload.size();
    return true;
  }
  const auto& t = std::get<TrimStream>(op.data);
  constexpr std::int64_t kEverything = INT64_MAX;
  std::int64_t cut = 0;  // events with a lower offset go
  auto first_kept = [&](sqlite::Statement& q, std::int64_t bound) -> std::optional<std::int64_t> {
    BindStatus bind;
    bind(q.bind_text(1, t.stream));
    bind(q.bind_int64(2, bound));
    const int rc = run(q, bind, SQLITE_ROW);
    std::optional<std::int64_t> found;
    if (rc == SQLITE_ROW) found = q.column_int64(0);
    if (rc == SQLITE_DONE) found = kEverything;
    q.reset();
    return found;
  };
  if (t.older_than_ms > 0) {
    auto c = first_kept(s.event_cut_by_time, t.older_than_ms);
    if (!c) return false;
    cut = std::max(cut, *c);
  }
  const auto total = stream_bytes_end(t.stream);
  if (!total) return false;
  if (t.max_bytes > 0 && *total > t.max_bytes) {
    auto c = first_kept(s.event_cut_by_bytes, static_cast<std::int64_t>(*total - t.max_bytes));
    if (!c) return false;
    cut = std::max(cut, *c);
  }
  if (cut == 0) return true;
  if (cut == kEverything) {
    // The stream becomes empty: remember where it ended, or its offsets would restart.
    BindStatus bind;
    bind(s.remember_stream_end.bind_text(1, t.stream));
    bind(s.remember_stream_end.bind_int64(2, static_cast<std::int64_t>(*total)));
    const int rc = run(s.remember_stream_end, bind, SQLITE_DONE);
    s.remember_stream_end.reset();
    if (rc != SQLITE_DONE) return false;
  }
  BindStatus bind;
  bind(s.delete_events_before.bind_text(1, t.stream));
  bind(s.delete_events_before.bind_int64(2, cut));
  const int rc = run(s.delete_events_before, bind, SQLITE_DONE);
  s.delete_events_before.reset();
  return rc == SQLITE_DONE;
}

void SqliteStore::maintain() {
  // Pages freed by deletions stay in the file for reuse. When they are a large share of
  // it (a long queue drained, many retained messages cleared), give them back: the WAL
  // holds the shrink until the next checkpoint truncates the file.
  Statements& s = *statements_;
  auto read = [](sqlite::Statement& stmt) -> std::int64_t {
    const int rc = stmt.step();
    const std::int64_t v = rc == SQLITE_ROW ? stmt.column_int64(0) : -1;
    stmt.reset();
    return v;
  };
  const std::int64_t free_pages = read(s.freelist_count);
  const std::int64_t pages = read(s.page_count);
  if (free_pages < 0 || pages < 0) {
    log::warn(kLog, "cannot read the free page count: {}", sqlite::describe(db_.last_error()));
    return;
  }
  if (incremental_vacuum_) {
    if (free_pages < 256 || free_pages * 4 < pages) return;
    if (auto r = db_.exec("PRAGMA incremental_vacuum"); !r) {
      log::warn(kLog, "incremental vacuum failed: {}", sqlite::describe(r.error()));
      return;
    }
    vacuums_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Without auto-vacuum, shrinking is a VACUUM: it rewrites what is live, and the writer
  // waits for it. So only when at least three quarters of the file are free and what is
  // live is small (kVacuumLiveBytes): the pause stays short and the bytes it writes few.
  // A large file with much live data keeps its free pages, which later writes reuse:
  // the file stays at the high-water mark of its live data until that data is small.
  // Row ids (INTEGER PRIMARY KEY) survive VACUUM, so the queue's index stays valid.
  const std::int64_t live = pages - free_pages;
  if (free_pages < 256 || free_pages < 3 * live || live * page_size_ > kVacuumLiveBytes) return;
  if (auto r = db_.exec("VACUUM"); !r) {
    log::warn(kLog, "vacuum failed: {}", sqlite::describe(r.error()));
    return;
  }
  vacuums_.fetch_add(1, std::memory_order_relaxed);
}

// ---- start-up loads ----

std::vector<broker::SessionRecord> SqliteStore::load_sessions() {
  std::vector<broker::SessionRecord> out;
  std::lock_guard db_lock(db_mutex_);
  if (!db_) return out;
  auto stmt = db_.prepare(
      "SELECT client_id, protocol_version, expiry_interval, subscriptions FROM sessions ORDER BY client_id", false);
  if (!stmt) {
    log::error(kLog, "cannot load sessions: {}", sqlite::describe(stmt.error()));
    return out;
  }
  int rc;
  while ((rc = stmt->step()) == SQLITE_ROW) {
    RowReader row(*stmt);
    broker::SessionRecord r;
    r.client_id = row.utf8(0, "client id");
    const auto version = row.integer(1, "protocol version", 4, 5);
    r.version = static_cast<mqtt::Version>(version);
    r.session_expiry_interval = static_cast<std::uint32_t>(row.integer(2, "session expiry", 0, 0xFFFFFFFF));
    const std::string subscriptions = row.bytes(3, "subscriptions");
    if (row.ok()) {
      if (auto decoded = records::decode_subscriptions(subscriptions))
        r.subscriptions = std::move(*decoded);
      else
        row.fail("subscriptions are malformed");
    }
    if (!row.ok()) {
      rows_skipped_.fetch_add(1, std::memory_order_relaxed);
      log::warn(kLog, "skipping session {}: {}", printable(stmt->column_bytes(0)), row.problem());
      continue;
    }
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) log::error(kLog, "loading sessions stopped: {}", sqlite::describe(db_.last_error(rc)));
  return out;
}

std::vector<broker::MessagePtr> SqliteStore::load_retained() {
  std::vector<broker::MessagePtr> out;
  std::lock_guard db_lock(db_mutex_);
  if (!db_) return out;
  auto stmt = db_.prepare(
      "SELECT topic, qos, payload, payload_format, content_type, response_topic, correlation_data, "
      "user_properties, expires_at_ms, origin_client_id FROM retained ORDER BY topic",
      false);
  if (!stmt) {
    log::error(kLog, "cannot load retained messages: {}", sqlite::describe(stmt.error()));
    return out;
  }
  const TimeBase time{steady_now_(), now_wall_ms()};
  int rc;
  while ((rc = stmt->step()) == SQLITE_ROW) {
    RowReader row(*stmt);
    auto message = read_message(row, kRetainedColumns, time);
    if (!message) {
      rows_skipped_.fetch_add(1, std::memory_order_relaxed);
      log::warn(kLog, "skipping retained message on {}: {}", printable(stmt->column_bytes(0)), row.problem());
      continue;
    }
    if ((*message)->expires_at && *(*message)->expires_at <= time.steady) continue;
    out.push_back(std::move(*message));
  }
  if (rc != SQLITE_DONE)
    log::error(kLog, "loading retained messages stopped: {}", sqlite::describe(db_.last_error(rc)));
  return out;
}

std::vector<broker::QueuedRecord> SqliteStore::load_queued() {
  std::vector<broker::QueuedRecord> out;
  std::lock_guard db_lock(db_mutex_);
  if (!db_) return out;
  // One scan serves the load and the writer's index (which holds every row, readable or
  // not: a later save of the same key must replace the row, not add a second). Rows come
  // in row id order, which is each session's seq order but for entries that arrived late;
  // sorted here, not by SQL (there is no index on (owner, seq) to sort by).
  auto owners = db_.prepare("SELECT id, client_id FROM queue_owners", false);
  auto stmt = db_.prepare("SELECT owner, seq, entry, id FROM queued", false);
  if (!owners || !stmt) {
    log::error(kLog, "cannot load queued messages: {}", sqlite::describe(owners ? stmt.error() : owners.error()));
    return out;
  }
  std::unordered_map<std::int64_t, std::string> client_ids;
  owner_ids_.clear();
  queue_rows_.clear();
  queue_index_stale_ = true;
  int rc;
  while ((rc = owners->step()) == SQLITE_ROW) {
    client_ids.emplace(owners->column_int64(0), owners->column_bytes(1));
    owner_ids_.emplace(owners->column_bytes(1), owners->column_int64(0));
  }
  if (rc != SQLITE_DONE) {
    log::error(kLog, "cannot load queue owners: {}", sqlite::describe(db_.last_error(rc)));
    return out;
  }
  using Stage = broker::QueuedRecord::Stage;
  const TimeBase time{steady_now_(), now_wall_ms()};
  while ((rc = stmt->step()) == SQLITE_ROW) {
    const std::int64_t owner_id = stmt->column_int64(0);
    add_queue_row(queue_rows_[owner_id], static_cast<std::uint64_t>(stmt->column_int64(1)), stmt->column_int64(3));
    const auto client = client_ids.find(owner_id);
    if (client == client_ids.end()) continue;  // no owner: not a queue this store can name
    RowReader row(*stmt);
    std::string client_id = client->second;
    if (!is_valid_mqtt_utf8(client_id)) row.fail("client id is not valid UTF-8");
    const auto seq = static_cast<std::uint64_t>(row.integer(1, "seq", INT64_MIN, INT64_MAX));
    const std::string bytes = row.bytes(2, "entry");
    std::optional<records::QueueEntry> entry;
    if (row.ok()) {
      std::string problem;
      entry = records::decode_queue_entry(bytes, problem);
      if (!entry) row.fail(std::move(problem));
    }
    if (!row.ok()) {
      rows_skipped_.fetch_add(1, std::memory_order_relaxed);
      log::warn(kLog, "skipping queue entry {} of {}: {}", stmt->column_int64(1), printable(client->second),
                row.problem());
      continue;
    }
    broker::QueuedRecord& r = entry->record;
    r.client_id = std::move(client_id);
    r.seq = seq;
    if (r.message && entry->expires_at_ms) {
      auto m = std::const_pointer_cast<broker::Message>(r.message);
      m->expires_at = time.to_steady(*entry->expires_at_ms);
    }
    // Not sent yet and expired: it would be dropped at once (and is purged on disk).
    if (r.stage == Stage::queued && r.message && r.message->expires_at && *r.message->expires_at <= time.steady)
      continue;
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE)
    log::error(kLog, "loading queued messages stopped: {}", sqlite::describe(db_.last_error(rc)));
  else
    queue_index_stale_ = false;
  auto by_key = [](const broker::QueuedRecord& a, const broker::QueuedRecord& b) {
    return a.client_id != b.client_id ? a.client_id < b.client_id : a.seq < b.seq;
  };
  if (!std::is_sorted(out.begin(), out.end(), by_key)) std::sort(out.begin(), out.end(), by_key);
  return out;
}

std::vector<std::pair<std::string, std::uint16_t>> SqliteStore::load_inbound_qos2() {
  std::vector<std::pair<std::string, std::uint16_t>> out;
  std::lock_guard db_lock(db_mutex_);
  if (!db_) return out;
  auto stmt = db_.prepare("SELECT client_id, packet_id FROM inbound_qos2 ORDER BY client_id, packet_id", false);
  if (!stmt) {
    log::error(kLog, "cannot load inbound QoS 2 state: {}", sqlite::describe(stmt.error()));
    return out;
  }
  int rc;
  while ((rc = stmt->step()) == SQLITE_ROW) {
    RowReader row(*stmt);
    std::string client_id = row.utf8(0, "client id");
    const auto packet_id = static_cast<std::uint16_t>(row.integer(1, "packet id", 1, 0xFFFF));
    if (!row.ok()) {
      rows_skipped_.fetch_add(1, std::memory_order_relaxed);
      log::warn(kLog, "skipping inbound QoS 2 id of {}: {}", printable(stmt->column_bytes(0)), row.problem());
      continue;
    }
    out.emplace_back(std::move(client_id), packet_id);
  }
  if (rc != SQLITE_DONE)
    log::error(kLog, "loading inbound QoS 2 state stopped: {}", sqlite::describe(db_.last_error(rc)));
  return out;
}

Metrics SqliteStore::metrics() const {
  auto get = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  Metrics m;
  m.commits = get(commits_);
  m.fsyncs = get(fsyncs_);
  m.ops_submitted = get(ops_submitted_);
  m.ops_coalesced = get(ops_coalesced_);
  m.ops_written = get(ops_written_);
  m.rows_changed = get(rows_changed_);
  m.callbacks = get(callbacks_posted_);
  m.write_errors = get(write_errors_);
  m.rows_skipped = get(rows_skipped_);
  m.expired_removed = get(expired_removed_);
  m.vacuums = get(vacuums_);
  m.last_commit_us = get(last_commit_us_);
  m.avg_commit_us = m.commits == 0 ? 0 : get(total_commit_us_) / m.commits;
  m.max_commit_us = get(max_commit_us_);
  m.max_batch_ops = get(max_batch_);
  m.avg_batch_ops = m.commits == 0 ? 0.0 : static_cast<double>(get(total_batch_)) / static_cast<double>(m.commits);
  for (std::size_t i = 0; i < m.batch_size_histogram.size(); ++i) m.batch_size_histogram[i] = get(batch_histogram_[i]);
  return m;
}

}  // namespace tern::store
