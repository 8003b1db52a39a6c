// Connection and Session: the broker's per-client state.
//
// A Connection is one network connection (it exists from accept to close). A Session is
// the MQTT session (§4.1): subscriptions, the queue of messages not yet sent, and the
// QoS 1/2 messages in flight towards the client. A session outlives its connection when
// its session expiry interval says so; a new connection with the same client id takes it
// over.
//
// Thread-safety: owned by the Broker; broker thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/deadline_queue.hpp"
#include "broker/interfaces.hpp"
#include "broker/message.hpp"
#include "broker/store.hpp"
#include "broker/subscription_tree.hpp"
#include "mqtt/packets.hpp"

namespace tern::broker {

// A deque that allocates nothing while empty. libstdc++'s std::deque allocates its map and
// a 512-byte block on construction; a session has two of them, which made every idle
// client cost over a kilobyte. The deque is created on the first push and released when
// it empties again.
template <class T>
class LazyDeque {
 public:
  using iterator = typename std::deque<T>::iterator;
  bool empty() const noexcept { return !d_ || d_->empty(); }
  std::size_t size() const noexcept { return d_ ? d_->size() : 0; }
  T& front() { return d_->front(); }
  void push_back(T&& v) {
    if (!d_) d_ = std::make_unique<std::deque<T>>();
    d_->push_back(std::move(v));
  }
  void pop_front() {
    d_->pop_front();
    if (d_->empty()) d_.reset();
  }
  iterator begin() { return d_ ? d_->begin() : iterator(); }
  iterator end() { return d_ ? d_->end() : iterator(); }
  iterator erase(iterator it) { return d_->erase(it); }  // callers iterate; shrink_if_empty() after
  void shrink_if_empty() {
    if (d_ && d_->empty()) d_.reset();
  }

 private:
  std::unique_ptr<std::deque<T>> d_;
};

// A map that allocates nothing while empty: std::map is 48 bytes even then, and many
// clients (publishers) never subscribe. Released again when it empties.
template <class K, class V>
class LazyMap {
 public:
  using Map = std::map<K, V, std::less<>>;
  using iterator = typename Map::iterator;
  using const_iterator = typename Map::const_iterator;
  bool empty() const noexcept { return !m_ || m_->empty(); }
  std::size_t size() const noexcept { return m_ ? m_->size() : 0; }
  iterator begin() { return m_ ? m_->begin() : iterator(); }
  iterator end() { return m_ ? m_->end() : iterator(); }
  const_iterator begin() const { return m_ ? m_->cbegin() : const_iterator(); }
  const_iterator end() const { return m_ ? m_->cend() : const_iterator(); }
  template <class Key>
  iterator find(const Key& key) {
    return m_ ? m_->find(key) : iterator();
  }
  template <class Key>
  bool contains(const Key& key) const {
    return m_ && m_->contains(key);
  }
  V& operator[](const K& key) {
    if (!m_) m_ = std::make_unique<Map>();
    return (*m_)[key];
  }
  void erase(iterator it) {
    m_->erase(it);
    if (m_->empty()) m_.reset();
  }

 private:
  std::unique_ptr<Map> m_;
};

// A vector that allocates nothing while empty (one pointer instead of three): the QoS 2
// packet ids of a session, which most sessions never hold.
template <class T>
class LazyVector {
 public:
  using iterator = typename std::vector<T>::iterator;
  bool empty() const noexcept { return !v_ || v_->empty(); }
  std::size_t size() const noexcept { return v_ ? v_->size() : 0; }
  iterator begin() { return v_ ? v_->begin() : iterator(); }
  iterator end() { return v_ ? v_->end() : iterator(); }
  void push_back(const T& value) {
    if (!v_) v_ = std::make_unique<std::vector<T>>();
    v_->push_back(value);
  }
  void erase(iterator it) {
    v_->erase(it);
    if (v_->empty()) v_.reset();
  }

 private:
  std::unique_ptr<std::vector<T>> v_;
};

struct Session;

// Sessions by key: one pointer each. A key is a slot index in its low 32 bits and a serial
// number above them, so that a key kept after its session ended finds nothing.
class SessionSlots {
 public:
  SessionKey add(Session* session) {
    std::uint32_t slot = 0;
    if (free_.empty()) {
      slot = static_cast<std::uint32_t>(slots_.size());
      slots_.push_back(session);
    } else {
      slot = free_.back();
      free_.pop_back();
      slots_[slot] = session;
    }
    return (static_cast<SessionKey>(++serial_) << 32) | slot;
  }
  Session* find(SessionKey key) const;
  void remove(SessionKey key) {
    if (find(key) == nullptr) return;
    const auto slot = static_cast<std::uint32_t>(key);
    slots_[slot] = nullptr;
    free_.push_back(slot);
  }

 private:
  std::vector<Session*> slots_;
  std::vector<std::uint32_t> free_;
  std::uint32_t serial_ = 0;
};

// Topic aliases of a 5.0 connection, allocated when the first one is used.
struct TopicAliases {
  std::vector<std::string> inbound;  // the client's, towards the broker: index = alias
  std::unordered_map<std::string, std::uint16_t> outbound;  // the broker's, towards the client
};

// Fields are ordered by size so that an idle connection stays small: it is one of the
// per-client costs (DESIGN §4, about 700 bytes for everything an idle client holds).
struct Connection {
  enum class State : std::uint8_t { awaiting_connect, connected };

  // The connection's identity: its own until CONNECT completes, then its session's, so
  // that a connected client holds one copy.
  ClientIdentity& identity();
  const ClientIdentity& identity() const;

  TopicAliases& topic_aliases() {
    if (!aliases) aliases = std::make_unique<TopicAliases>();
    return *aliases;
  }

  ConnectionId id = 0;
  Session* session = nullptr;
  std::unique_ptr<ClientIdentity> own_identity;  // until CONNECT completes
  std::unique_ptr<TopicAliases> aliases;
  std::chrono::steady_clock::time_point last_activity{};

  // What the client announced in its CONNECT (5.0).
  std::uint32_t client_maximum_packet_size = 268435460;
  // Position in the broker's DeadlineQueue (CONNECT timeout, then keep-alive).
  std::uint32_t deadline_slot = kDeadlineNone;
  // QoS 1/2 messages received whose acknowledgement waits for the store.
  std::uint32_t acks_pending = 0;
  std::uint16_t client_receive_maximum = 65535;
  std::uint16_t client_topic_alias_maximum = 0;
  std::uint16_t keep_alive = 0;  // effective, seconds; 0: none

  State state = State::awaiting_connect;
  mqtt::Version version = mqtt::Version::v5;
  bool will_cleared = false;  // normal DISCONNECT: the will is not sent
  bool reading_paused = false;  // throttled by the policy
};

// A message waiting for, or in, delivery to one session.
struct Delivery {
  MessagePtr message;
  mqtt::QoS qos = mqtt::QoS::at_most_once;
  bool retain = false;
  std::vector<std::uint32_t> subscription_ids;
  std::string shared_group;  // non-empty when delivered through a shared subscription
  std::uint64_t seq = 0;     // the store's key for it in a persistent session; 0: not stored
};

struct InflightMessage {
  enum class Stage : std::uint8_t { awaiting_puback, awaiting_pubrec, awaiting_pubcomp };
  std::uint16_t packet_id = 0;
  Stage stage = Stage::awaiting_puback;
  Delivery delivery;
};

struct WillMessage {
  MessagePtr message;
  std::uint32_t delay_seconds = 0;
  std::optional<std::uint32_t> message_expiry;  // seconds, from publication
  // While the session is offline and the will waits for its delay (or the session's end).
  Timers::Id timer = 0;
};

// Fields are ordered by size (no padding holes): one of these exists for every client.
struct Session {
  // The client id is identity.client_id: one copy.
  const std::string& client_id() const noexcept { return identity.client_id; }

  SessionKey key = 0;
  Connection* connection = nullptr;
  ClientIdentity identity;  // of the last connection (for ACL checks while offline)

  // Full filter (including "$share/{group}/") to its subscription.
  LazyMap<std::string, StoredSubscription> subscriptions;

  LazyDeque<Delivery> queue;  // not yet sent
  LazyDeque<InflightMessage> inflight;  // in send order; acknowledged mostly from the front
  std::size_t queued_bytes = 0;
  std::uint64_t last_seq = 0;

  // QoS 2 packet ids received and answered with PUBREC, awaiting PUBREL (§4.3.3:
  // session state, so that a retransmission is never routed twice).
  LazyVector<std::uint16_t> inbound_qos2;

  std::unique_ptr<WillMessage> will;  // holds the will delay's timer, too
  Timers::Id expiry_timer = 0;

  // Scratch for routing: the route this session last took part in, and its slot there.
  std::uint64_t route_mark = 0;
  std::size_t route_slot = 0;

  std::uint32_t expiry_interval = 0;  // seconds; 0xFFFFFFFF: never
  std::uint16_t last_packet_id = 0;
  mqtt::Version version = mqtt::Version::v5;
  bool packet_ids_wrapped = false;
};

inline Session* SessionSlots::find(SessionKey key) const {
  const auto slot = static_cast<std::uint32_t>(key);
  if (slot >= slots_.size()) return nullptr;
  Session* session = slots_[slot];
  return session != nullptr && session->key == key ? session : nullptr;
}

inline ClientIdentity& Connection::identity() { return session != nullptr ? session->identity : *own_identity; }
inline const ClientIdentity& Connection::identity() const {
  return session != nullptr ? session->identity : *own_identity;
}

}  // namespace tern::broker
