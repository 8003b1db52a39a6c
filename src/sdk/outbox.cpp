#include "sdk/outbox.hpp"

#include <algorithm>

namespace tern::sdk {
namespace {

void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xFF));
}
void put_string(std::string& out, std::string_view s) {
  put_u32(out, static_cast<std::uint32_t>(s.size()));
  out.append(s);
}

struct Reader {
  std::string_view in;
  bool u32(std::uint32_t& v) {
    if (in.size() < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<std::uint8_t>(in[static_cast<std::size_t>(i)]);
    in.remove_prefix(4);
    return true;
  }
  bool string(std::string& s) {
    std::uint32_t n = 0;
    if (!u32(n) || in.size() < n) return false;
    s.assign(in.substr(0, n));
    in.remove_prefix(n);
    return true;
  }
};

// Field tags of the property encoding; unknown tags make the record unreadable rather
// than silently wrong.
enum Tag : char { kUser = 'u', kContentType = 'c', kResponseTopic = 'r', kCorrelation = 'd', kFormat = 'f', kExpiry = 'e' };

std::string sqlite_error(sqlite3* db, std::string_view what) {
  return std::string(what) + ": " + sqlite3_errmsg(db);
}

}  // namespace

std::string encode_message_properties(const Message& m) {
  std::string out;
  for (const auto& [k, v] : m.user_properties) {
    out.push_back(kUser);
    put_string(out, k);
    put_string(out, v);
  }
  if (m.content_type) { out.push_back(kContentType); put_string(out, *m.content_type); }
  if (m.response_topic) { out.push_back(kResponseTopic); put_string(out, *m.response_topic); }
  if (m.correlation_data) { out.push_back(kCorrelation); put_string(out, *m.correlation_data); }
  if (m.payload_format_indicator) { out.push_back(kFormat); put_u32(out, *m.payload_format_indicator); }
  if (m.message_expiry_interval) { out.push_back(kExpiry); put_u32(out, *m.message_expiry_interval); }
  return out;
}

bool decode_message_properties(std::string_view bytes, Message& m) {
  Reader r{bytes};
  while (!r.in.empty()) {
    const char tag = r.in.front();
    r.in.remove_prefix(1);
    std::string a;
    std::string b;
    std::uint32_t n = 0;
    switch (tag) {
      case kUser:
        if (!r.string(a) || !r.string(b)) return false;
        m.user_properties.emplace_back(std::move(a), std::move(b));
        break;
      case kContentType: if (!r.string(a)) return false; m.content_type = std::move(a); break;
      case kResponseTopic: if (!r.string(a)) return false; m.response_topic = std::move(a); break;
      case kCorrelation: if (!r.string(a)) return false; m.correlation_data = std::move(a); break;
      case kFormat: if (!r.u32(n)) return false; m.payload_format_indicator = static_cast<std::uint8_t>(n); break;
      case kExpiry: if (!r.u32(n)) return false; m.message_expiry_interval = n; break;
      default: return false;
    }
  }
  return true;
}

Expected<std::unique_ptr<OutboxStore>, std::string> OutboxStore::open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
    std::string err = db ? sqlite_error(db, "cannot open outbox " + path) : "cannot open outbox " + path;
    sqlite3_close(db);
    return make_unexpected(std::move(err));
  }
  std::unique_ptr<OutboxStore> store(new OutboxStore(db));
  static constexpr const char* kSchema =
      "PRAGMA journal_mode=WAL;"
      "PRAGMA synchronous=NORMAL;"
      "CREATE TABLE IF NOT EXISTS outbox_meta(version INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS outbox(seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
      " payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, props BLOB NOT NULL);";
  char* msg = nullptr;
  if (sqlite3_exec(db, kSchema, nullptr, nullptr, &msg) != SQLITE_OK) {
    std::string err = std::string("outbox schema: ") + (msg ? msg : "?");
    sqlite3_free(msg);
    return make_unexpected(std::move(err));
  }
  if (sqlite3_prepare_v2(db, "INSERT INTO outbox(topic,payload,qos,retain,props) VALUES(?,?,?,?,?)", -1,
                         &store->insert_, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "DELETE FROM outbox WHERE seq=?", -1, &store->delete_, nullptr) != SQLITE_OK) {
    return make_unexpected(sqlite_error(db, "outbox statements"));
  }
  return store;
}

OutboxStore::~OutboxStore() {
  sqlite3_finalize(insert_);
  sqlite3_finalize(delete_);
  sqlite3_close(db_);
}

Expected<std::int64_t, std::string> OutboxStore::append(const Message& m) {
  const std::string props = encode_message_properties(m);
  sqlite3_reset(insert_);
  const bool bound =
      sqlite3_bind_text(insert_, 1, m.topic.data(), static_cast<int>(m.topic.size()), SQLITE_STATIC) == SQLITE_OK &&
      sqlite3_bind_blob(insert_, 2, m.payload.data(), static_cast<int>(m.payload.size()), SQLITE_STATIC) == SQLITE_OK &&
      sqlite3_bind_int(insert_, 3, static_cast<int>(m.qos)) == SQLITE_OK &&
      sqlite3_bind_int(insert_, 4, m.retain ? 1 : 0) == SQLITE_OK &&
      sqlite3_bind_blob(insert_, 5, props.data(), static_cast<int>(props.size()), SQLITE_STATIC) == SQLITE_OK;
  if (!bound || sqlite3_step(insert_) != SQLITE_DONE) {
    std::string err = sqlite_error(db_, "outbox append");
    sqlite3_reset(insert_);
    return make_unexpected(std::move(err));
  }
  sqlite3_reset(insert_);
  sqlite3_clear_bindings(insert_);
  return static_cast<std::int64_t>(sqlite3_last_insert_rowid(db_));
}

Expected<void, std::string> OutboxStore::erase(std::int64_t seq) {
  sqlite3_reset(delete_);
  if (sqlite3_bind_int64(delete_, 1, seq) != SQLITE_OK || sqlite3_step(delete_) != SQLITE_DONE) {
    std::string err = sqlite_error(db_, "outbox erase");
    sqlite3_reset(delete_);
    return make_unexpected(std::move(err));
  }
  sqlite3_reset(delete_);
  return {};
}

Expected<std::vector<OutboxRecord>, std::string> OutboxStore::load() {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT seq,topic,payload,qos,retain,props FROM outbox ORDER BY seq", -1, &stmt,
                         nullptr) != SQLITE_OK) {
    return make_unexpected(sqlite_error(db_, "outbox load"));
  }
  std::vector<OutboxRecord> records;
  int rc = SQLITE_ROW;
  auto column = [&](int i) {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt, i));
    return std::string(p ? p : "", static_cast<std::size_t>(sqlite3_column_bytes(stmt, i)));
  };
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    OutboxRecord r;
    r.seq = sqlite3_column_int64(stmt, 0);
    r.message.topic = column(1);
    r.message.payload = column(2);
    r.message.qos = static_cast<Qos>(std::clamp(sqlite3_column_int(stmt, 3), 0, 2));
    r.message.retain = sqlite3_column_int(stmt, 4) != 0;
    if (!decode_message_properties(column(5), r.message)) {
      sqlite3_finalize(stmt);
      return make_unexpected(std::string("outbox record ") + std::to_string(r.seq) + " is corrupt");
    }
    records.push_back(std::move(r));
  }
  std::string err = rc == SQLITE_DONE ? std::string() : sqlite_error(db_, "outbox load");
  sqlite3_finalize(stmt);
  if (!err.empty()) return make_unexpected(std::move(err));
  return records;
}

Expected<void, std::string> PendingQueue::attach(std::unique_ptr<OutboxStore> store) {
  auto records = store->load();
  if (!records) return make_unexpected(records.error());
  store_ = std::move(store);
  std::deque<PendingPublish> loaded;
  for (auto& r : *records) {
    loaded.push_back(PendingPublish{r.seq, std::move(r.message), {}, true});
  }
  unacknowledged_ += loaded.size();
  for (auto& p : queue_) loaded.push_back(std::move(p));
  queue_ = std::move(loaded);
  return {};
}

std::error_code PendingQueue::push(Message message, PublishCallback done, std::vector<PendingPublish>& evicted) {
  if (unacknowledged_ >= capacity_) {
    if (policy_ == OutboxFullPolicy::reject_new || queue_.empty()) {
      ++rejected_;
      return Errc::outbox_full;
    }
    PendingPublish oldest = std::move(queue_.front());
    queue_.pop_front();
    acknowledged(oldest);
    ++dropped_;
    evicted.push_back(std::move(oldest));
  }
  PendingPublish p;
  p.message = std::move(message);
  p.done = std::move(done);
  if (store_ && p.message.qos != Qos::at_most_once) {
    auto seq = store_->append(p.message);
    if (!seq) {
      storage_error_ = seq.error();
      return Errc::storage_failed;
    }
    p.seq = *seq;
    p.persisted = true;
  } else {
    p.seq = next_memory_seq_--;
  }
  queue_.push_back(std::move(p));
  ++unacknowledged_;
  return {};
}

PendingPublish PendingQueue::take_front() {
  PendingPublish p = std::move(queue_.front());
  queue_.pop_front();
  return p;
}

void PendingQueue::put_back(std::vector<PendingPublish> messages) {
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) queue_.push_front(std::move(*it));
}

void PendingQueue::acknowledged(const PendingPublish& message) {
  if (unacknowledged_ > 0) --unacknowledged_;
  if (message.persisted && store_) {
    if (auto erased = store_->erase(message.seq); !erased) storage_error_ = erased.error();
  }
}

}  // namespace tern::sdk
