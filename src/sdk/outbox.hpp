// The client's ordered queue of unacknowledged publishes, optionally mirrored in SQLite.
//
// Why both a deque and a table: the deque is what the sender walks; the table makes the
// queue survive a restart. A QoS 1/2 message is written to the table when it is queued
// and deleted when the broker acknowledged it, so a crash in between sends it again
// (at-least-once). QoS 0 messages are never written to disk (flash wear, DESIGN §5).
//
// Thread-safety: one thread (the client's io_context).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "core/expected.hpp"
#include "tern/client.hpp"
#include "tern/message.hpp"

namespace tern::sdk {

// Length-prefixed encoding of a Message's properties for the outbox table.
std::string encode_message_properties(const Message& message);
bool decode_message_properties(std::string_view bytes, Message& message);

struct OutboxRecord {
  std::int64_t seq = 0;
  Message message;
};

// A SQLite table of messages in insertion order. Every return code is checked.
class OutboxStore {
 public:
  static Expected<std::unique_ptr<OutboxStore>, std::string> open(const std::string& path);
  ~OutboxStore();
  OutboxStore(const OutboxStore&) = delete;
  OutboxStore& operator=(const OutboxStore&) = delete;

  Expected<std::int64_t, std::string> append(const Message& message);
  Expected<void, std::string> erase(std::int64_t seq);
  Expected<std::vector<OutboxRecord>, std::string> load();

 private:
  explicit OutboxStore(sqlite3* db) : db_(db) {}
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* delete_ = nullptr;
};

struct PendingPublish {
  std::int64_t seq = 0;
  Message message;
  PublishCallback done;
  bool persisted = false;
};

// Bounded: `capacity` counts every unacknowledged message, queued or in flight.
class PendingQueue {
 public:
  PendingQueue(std::size_t capacity, OutboxFullPolicy policy) : capacity_(capacity), policy_(policy) {}

  // Attaches the on-disk store and queues what it holds (before anything else).
  Expected<void, std::string> attach(std::unique_ptr<OutboxStore> store);

  // Queues a message. On a full queue: reject_new returns Errc::outbox_full;
  // drop_oldest moves the oldest queued message into `evicted`.
  std::error_code push(Message message, PublishCallback done, std::vector<PendingPublish>& evicted);

  bool empty() const noexcept { return queue_.empty(); }
  std::size_t queued() const noexcept { return queue_.size(); }
  std::size_t unacknowledged() const noexcept { return unacknowledged_; }
  const PendingPublish& front() const { return queue_.front(); }
  // Takes the oldest message to send it; it still counts until acknowledged().
  PendingPublish take_front();
  // Puts messages taken earlier back in front, in their original order (reconnect
  // without a session).
  void put_back(std::vector<PendingPublish> messages);
  // The broker acknowledged (or the client gave up on) a taken message.
  void acknowledged(const PendingPublish& message);

  std::uint64_t rejected() const noexcept { return rejected_; }
  std::uint64_t dropped() const noexcept { return dropped_; }
  const std::string& last_storage_error() const noexcept { return storage_error_; }

 private:
  std::size_t capacity_;
  OutboxFullPolicy policy_;
  std::unique_ptr<OutboxStore> store_;
  std::deque<PendingPublish> queue_;
  std::size_t unacknowledged_ = 0;
  std::int64_t next_memory_seq_ = -1;  // negative: never written to disk
  std::uint64_t rejected_ = 0;
  std::uint64_t dropped_ = 0;
  std::string storage_error_;
};

}  // namespace tern::sdk
