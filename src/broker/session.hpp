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

struct Session;

struct Connection {
  enum class State : std::uint8_t { awaiting_connect, connected };

  ConnectionId id = 0;
  State state = State::awaiting_connect;
  mqtt::Version version = mqtt::Version::v5;
  Session* session = nullptr;
  ClientIdentity identity;

  std::chrono::steady_clock::time_point last_activity{};
  std::uint16_t keep_alive = 0;  // effective, seconds; 0: none
  Timers::Id connect_timer = 0;
  Timers::Id keep_alive_timer = 0;

  // What the client announced in its CONNECT (5.0).
  std::uint16_t client_receive_maximum = 65535;
  std::uint32_t client_maximum_packet_size = 268435460;
  std::uint16_t client_topic_alias_maximum = 0;

  // Topic aliases the client uses towards the broker: index = alias.
  std::vector<std::string> inbound_aliases;
  // Topic aliases the broker uses towards the client.
  std::unordered_map<std::string, std::uint16_t> outbound_aliases;

  // QoS 1/2 messages received whose acknowledgement waits for the store.
  std::size_t acks_pending = 0;

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
};

struct Session {
  SessionKey key = 0;
  std::string client_id;
  ClientIdentity identity;  // of the last connection (for ACL checks while offline)
  mqtt::Version version = mqtt::Version::v5;
  Connection* connection = nullptr;
  std::uint32_t expiry_interval = 0;  // seconds; 0xFFFFFFFF: never

  // Full filter (including "$share/{group}/") to its subscription.
  std::map<std::string, StoredSubscription, std::less<>> subscriptions;

  LazyDeque<Delivery> queue;  // not yet sent
  std::size_t queued_bytes = 0;
  LazyDeque<InflightMessage> inflight;  // in send order; acknowledged mostly from the front
  std::uint16_t last_packet_id = 0;
  bool packet_ids_wrapped = false;
  std::uint64_t last_seq = 0;

  // QoS 2 packet ids received and answered with PUBREC, awaiting PUBREL (§4.3.3:
  // session state, so that a retransmission is never routed twice).
  std::vector<std::uint16_t> inbound_qos2;

  std::optional<WillMessage> will;
  Timers::Id will_timer = 0;
  Timers::Id expiry_timer = 0;

  // Scratch for routing: the route this session last took part in, and its slot there.
  std::uint64_t route_mark = 0;
  std::size_t route_slot = 0;
};

}  // namespace tern::broker
