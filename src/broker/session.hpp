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

#include <algorithm>
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

// Topic aliases of a 5.0 connection.
struct TopicAliases {
  std::vector<std::string> inbound;  // the client's, towards the broker: index = alias
  std::unordered_map<std::string, std::uint16_t> outbound;  // the broker's, towards the client
};

// What a connection holds only for a while: its own identity until CONNECT completes (then
// the session's is used), and topic aliases once a 5.0 client uses them.
struct ConnectionRare {
  ClientIdentity own_identity;
  TopicAliases aliases;
};

// Fields are ordered by size so that an idle connection stays small: it is one of the
// per-client costs (DESIGN §4, about 700 bytes for everything an idle client holds). 56
// bytes: a 64-byte heap chunk.
struct Connection {
  enum class State : std::uint8_t { awaiting_connect, connected };

  // The connection's identity: its own until CONNECT completes, then its session's, so
  // that a connected client holds one copy.
  ClientIdentity& identity();
  const ClientIdentity& identity() const;

  TopicAliases& topic_aliases() {
    if (!rare) rare = std::make_unique<ConnectionRare>();
    return rare->aliases;
  }

  ConnectionId id = 0;
  Session* session = nullptr;
  std::unique_ptr<ConnectionRare> rare;  // always until CONNECT completes; then null until aliases are used
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

// What a session holds only now and then: its will, its expiry timer while it is offline,
// and the QoS 2 packet ids received and answered with PUBREC, awaiting PUBREL (§4.3.3:
// session state, so that a retransmission is never routed twice).
struct SessionRare {
  std::unique_ptr<WillMessage> will;
  Timers::Id expiry_timer = 0;
  std::vector<std::uint16_t> inbound_qos2;
};

// Fields are ordered by size (no padding holes): one of these exists for every client.
// 168 bytes: a 176-byte heap chunk.
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

  // The will (which holds the will delay's timer, too); null when there is none.
  WillMessage* will() const noexcept { return rare ? rare->will.get() : nullptr; }
  void set_will(std::unique_ptr<WillMessage> will) {
    if (!will && !rare) return;
    rare_part().will = std::move(will);
    trim();
  }
  // The session expiry timer while offline; 0: none.
  Timers::Id expiry_timer() const noexcept { return rare ? rare->expiry_timer : 0; }
  void set_expiry_timer(Timers::Id id) {
    if (id == 0 && !rare) return;
    rare_part().expiry_timer = id;
    trim();
  }
  // Inbound QoS 2 packet ids awaiting PUBREL.
  std::size_t inbound_qos2_count() const noexcept { return rare ? rare->inbound_qos2.size() : 0; }
  bool has_inbound_qos2(std::uint16_t packet_id) const noexcept {
    return rare && std::find(rare->inbound_qos2.begin(), rare->inbound_qos2.end(), packet_id) != rare->inbound_qos2.end();
  }
  void add_inbound_qos2(std::uint16_t packet_id) { rare_part().inbound_qos2.push_back(packet_id); }
  // False when the id was not there.
  bool remove_inbound_qos2(std::uint16_t packet_id) {
    if (!has_inbound_qos2(packet_id)) return false;
    auto& ids = rare->inbound_qos2;
    ids.erase(std::find(ids.begin(), ids.end(), packet_id));
    if (ids.empty()) std::vector<std::uint16_t>().swap(ids);
    trim();
    return true;
  }

  std::unique_ptr<SessionRare> rare;  // null while the session has none of its parts

  // Scratch for routing: the route this session last took part in, and its slot there.
  std::uint64_t route_mark = 0;
  std::size_t route_slot = 0;

  std::uint32_t expiry_interval = 0;  // seconds; 0xFFFFFFFF: never
  std::uint16_t last_packet_id = 0;
  mqtt::Version version = mqtt::Version::v5;
  bool packet_ids_wrapped = false;

 private:
  SessionRare& rare_part() {
    if (!rare) rare = std::make_unique<SessionRare>();
    return *rare;
  }
  void trim() {
    if (!rare->will && rare->expiry_timer == 0 && rare->inbound_qos2.empty()) rare.reset();
  }
};

static_assert(sizeof(Session) <= 168, "a session should fit a 176-byte heap chunk");

inline Session* SessionSlots::find(SessionKey key) const {
  const auto slot = static_cast<std::uint32_t>(key);
  if (slot >= slots_.size()) return nullptr;
  Session* session = slots_[slot];
  return session != nullptr && session->key == key ? session : nullptr;
}

inline ClientIdentity& Connection::identity() { return session != nullptr ? session->identity : rare->own_identity; }
inline const ClientIdentity& Connection::identity() const {
  return session != nullptr ? session->identity : rare->own_identity;
}

static_assert(sizeof(Connection) <= 56, "a connection should fit a 64-byte heap chunk");

}  // namespace tern::broker
