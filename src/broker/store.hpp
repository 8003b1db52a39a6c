// Store: where the broker keeps what must outlive a connection, and, with a durable
// implementation, the process.
//
// The broker holds the live state in memory and writes every change through this
// interface; at start-up it loads what the store holds. Only persistent sessions
// (session expiry > 0) are written, and never a QoS 0 message.
//
// Durability contract: writes are buffered; `when_durable(fn)` runs `fn` on the broker's
// thread once every write issued before the call is durable (for a SQLite store in fsync
// mode: committed and synced; group commit lets many callbacks share one fsync). The
// broker sends PUBACK / PUBREC for a QoS 1 / 2 message only from such a callback, so an
// acknowledged message is never lost. MemoryStore runs `fn` at once.
//
// Thread-safety: every method is called from the broker's thread only. An
// implementation may do its I/O on a thread of its own.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "broker/message.hpp"
#include "mqtt/packets.hpp"

namespace tern::broker {

struct StoredSubscription {
  std::string filter;  // including "$share/{group}/" for shared subscriptions
  mqtt::SubscriptionOptions options;
  std::uint32_t subscription_id = 0;
};

struct SessionRecord {
  std::string client_id;
  mqtt::Version version = mqtt::Version::v5;
  std::uint32_t session_expiry_interval = 0;  // seconds; 0xFFFFFFFF never
  std::vector<StoredSubscription> subscriptions;
};

// One message queued for, or in flight to, a persistent session. `seq` orders a
// session's queue and identifies the entry; it only grows.
struct QueuedRecord {
  enum class Stage : std::uint8_t { queued = 0, awaiting_puback = 1, awaiting_pubrec = 2, awaiting_pubcomp = 3 };
  std::string client_id;
  std::uint64_t seq = 0;
  MessagePtr message;  // null when stage is awaiting_pubcomp (only the packet id matters)
  mqtt::QoS qos = mqtt::QoS::at_least_once;
  bool retain = false;
  std::vector<std::uint32_t> subscription_ids;
  std::uint16_t packet_id = 0;  // 0 while queued
  Stage stage = Stage::queued;
};

// One event of a stream (event sourcing): the offset is assigned by the broker, dense
// and increasing per stream.
struct StreamEvent {
  std::uint64_t offset = 0;
  std::int64_t timestamp_ms = 0;  // wall clock, when the broker received it
  MessagePtr message;
};

class Store {
 public:
  virtual ~Store() = default;

  // Sessions and their subscriptions. save_session replaces the whole record.
  virtual void save_session(const SessionRecord& session) = 0;
  // Removes the session with its queue and inbound QoS 2 state.
  virtual void remove_session(const std::string& client_id) = 0;

  // Retained messages, by topic.
  virtual void save_retained(const MessagePtr& message) = 0;
  virtual void remove_retained(const std::string& topic) = 0;

  // Outbound queue and in-flight state of persistent sessions.
  virtual void save_queued(const QueuedRecord& record) = 0;  // insert or replace (client_id, seq)
  virtual void remove_queued(const std::string& client_id, std::uint64_t seq) = 0;

  // Inbound QoS 2 packet ids answered with PUBREC and awaiting PUBREL, so that a
  // retransmission after a restart is not routed twice.
  virtual void save_inbound_qos2(const std::string& client_id, std::uint16_t packet_id) = 0;
  virtual void remove_inbound_qos2(const std::string& client_id, std::uint16_t packet_id) = 0;

  // Event streams. Appends are writes like any other (durable before when_durable's
  // callback runs). read_stream sees every append issued before it.
  virtual void append_stream(const std::string& stream, const StreamEvent& event) = 0;
  // Events with offset >= from_offset and timestamp >= from_time_ms, in offset order, at most max_count.
  virtual std::vector<StreamEvent> read_stream(const std::string& stream, std::uint64_t from_offset,
                                               std::int64_t from_time_ms, std::size_t max_count) = 0;
  // Retention: removes events older than `older_than_ms` (wall clock; 0: none), then the
  // oldest while the stream's payload bytes exceed `max_bytes` (0: no limit).
  virtual void trim_stream(const std::string& stream, std::int64_t older_than_ms, std::uint64_t max_bytes) = 0;
  // The offset the next append gets (0 for a new stream).
  virtual std::uint64_t stream_end(const std::string& stream) = 0;

  // Runs `fn` on the broker's thread once every write issued so far is durable.
  virtual void when_durable(std::function<void()> fn) = 0;
  // Whether when_durable defers (a durable store in fsync mode): the broker then holds
  // acknowledgements until the callback.
  virtual bool defers_acknowledgements() const = 0;

  // The writes issued between begin_atomic() and end_atomic() (which nest) are committed
  // together or not at all. The broker groups what one PUBLISH writes: its deliveries to
  // persistent sessions and its QoS 2 packet id, so that a crash cannot keep a delivery
  // and lose the record that makes the publisher's retransmission a duplicate.
  virtual void begin_atomic() {}
  virtual void end_atomic() {}

  // Start-up.
  virtual std::vector<SessionRecord> load_sessions() = 0;
  virtual std::vector<MessagePtr> load_retained() = 0;
  virtual std::vector<QueuedRecord> load_queued() = 0;  // every session's, ordered by client_id then seq
  virtual std::vector<std::pair<std::string, std::uint16_t>> load_inbound_qos2() = 0;
};

// Keeps everything in memory: state survives a Broker object, not the process.
class MemoryStore final : public Store {
 public:
  void save_session(const SessionRecord& session) override { sessions_[session.client_id] = session; }
  void remove_session(const std::string& client_id) override {
    sessions_.erase(client_id);
    queued_.erase(client_id);
    inbound_qos2_.erase(client_id);
  }
  void save_retained(const MessagePtr& message) override { retained_[message->topic] = message; }
  void remove_retained(const std::string& topic) override { retained_.erase(topic); }
  void save_queued(const QueuedRecord& record) override { queued_[record.client_id][record.seq] = record; }
  void remove_queued(const std::string& client_id, std::uint64_t seq) override {
    auto it = queued_.find(client_id);
    if (it != queued_.end()) it->second.erase(seq);
  }
  void save_inbound_qos2(const std::string& client_id, std::uint16_t packet_id) override {
    inbound_qos2_[client_id].push_back(packet_id);
  }
  void remove_inbound_qos2(const std::string& client_id, std::uint16_t packet_id) override {
    auto it = inbound_qos2_.find(client_id);
    if (it == inbound_qos2_.end()) return;
    std::erase(it->second, packet_id);
  }
  void append_stream(const std::string& stream, const StreamEvent& event) override {
    auto& st = streams_[stream];
    st.bytes += event.message->payload.size();
    st.events.push_back(event);
  }
  std::vector<StreamEvent> read_stream(const std::string& stream, std::uint64_t from_offset, std::int64_t from_time_ms,
                                       std::size_t max_count) override {
    std::vector<StreamEvent> out;
    auto it = streams_.find(stream);
    if (it == streams_.end()) return out;
    for (const StreamEvent& e : it->second.events) {
      if (out.size() >= max_count) break;
      if (e.offset >= from_offset && e.timestamp_ms >= from_time_ms) out.push_back(e);
    }
    return out;
  }
  void trim_stream(const std::string& stream, std::int64_t older_than_ms, std::uint64_t max_bytes) override {
    auto it = streams_.find(stream);
    if (it == streams_.end()) return;
    auto& st = it->second;
    while (!st.events.empty() && ((older_than_ms > 0 && st.events.front().timestamp_ms < older_than_ms) ||
                                  (max_bytes > 0 && st.bytes > max_bytes))) {
      st.bytes -= st.events.front().message->payload.size();
      st.events.pop_front();
    }
  }
  std::uint64_t stream_end(const std::string& stream) override {
    auto it = streams_.find(stream);
    return it == streams_.end() || it->second.events.empty() ? 0 : it->second.events.back().offset + 1;
  }

  void when_durable(std::function<void()> fn) override { fn(); }
  bool defers_acknowledgements() const override { return false; }

  std::vector<SessionRecord> load_sessions() override {
    std::vector<SessionRecord> out;
    for (auto& [_, s] : sessions_) out.push_back(s);
    return out;
  }
  std::vector<MessagePtr> load_retained() override {
    std::vector<MessagePtr> out;
    for (auto& [_, m] : retained_) out.push_back(m);
    return out;
  }
  std::vector<QueuedRecord> load_queued() override {
    std::vector<QueuedRecord> out;
    for (auto& [_, by_seq] : queued_)
      for (auto& [__, r] : by_seq) out.push_back(r);
    return out;
  }
  std::vector<std::pair<std::string, std::uint16_t>> load_inbound_qos2() override {
    std::vector<std::pair<std::string, std::uint16_t>> out;
    for (auto& [id, ids] : inbound_qos2_)
      for (std::uint16_t p : ids) out.emplace_back(id, p);
    return out;
  }

 private:
  std::map<std::string, SessionRecord> sessions_;
  std::map<std::string, MessagePtr> retained_;
  std::map<std::string, std::map<std::uint64_t, QueuedRecord>> queued_;
  std::map<std::string, std::vector<std::uint16_t>> inbound_qos2_;
  struct Stream {
    std::deque<StreamEvent> events;
    std::uint64_t bytes = 0;
  };
  std::map<std::string, Stream> streams_;
};

}  // namespace tern::broker
