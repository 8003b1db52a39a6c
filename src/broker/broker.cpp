// The broker core.
//
// Data flow: data_received() frames and decodes packets in place from the transport's
// buffer and dispatches them by type. An inbound PUBLISH becomes one immutable Message,
// which route() hands to every matching session as a Delivery; deliver() sends it at
// once when the session's connection and its in-flight window allow, and otherwise
// queues it, within the session's bounds.
//
// Closing: close_connection() forgets a connection at once (the transport flushes and
// closes the socket). Callers that may have closed the connection they are working on
// re-find it by id before touching it again.
#include "broker/broker.hpp"

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <tuple>
#include <unordered_map>

#include "broker/pointer_table.hpp"
#include "broker/session.hpp"
#include "broker/stream_request.hpp"
#include "broker/subscription_tree.hpp"
#include "core/log.hpp"
#include "core/topic.hpp"
#include "mqtt/codec.hpp"

namespace tern::broker {

namespace {

constexpr std::uint32_t kNeverExpires = 0xFFFFFFFF;
constexpr std::string_view kLog = "broker";

using mqtt::QoS;
using mqtt::ReasonCode;
using mqtt::Version;

QoS min_qos(QoS a, QoS b) { return static_cast<std::uint8_t>(a) < static_cast<std::uint8_t>(b) ? a : b; }

bool is_sys_filter(std::string_view filter) { return filter.starts_with("$SYS"); }

constexpr std::string_view kStreamsRoot = "$tern/streams/";

}  // namespace

struct Broker::Impl {
  Impl(BrokerConfig c, Transport& t, Timers& tm, Clock& cl, Store& s, Policy& p)
      : config(std::move(c)), transport(t), timers(tm), clock(cl), store(s), policy(p) {
    started = clock.now();
    load_from_store();
    for (const StreamConfig& sc : config.streams) {
      streams.push_back(StreamState{sc, store.stream_end(sc.name), 0});
    }
    if (!streams.empty()) schedule_retention();
  }

  BrokerConfig config;
  Transport& transport;
  Tracer* tracer = nullptr;
  std::chrono::steady_clock::time_point received_at{};  // of the bytes being handled
  Timers& timers;
  Clock& clock;
  Store& store;
  Policy& policy;
  BrokerStats stats;
  std::chrono::steady_clock::time_point started;

  // Connections by id and sessions by client id: one allocation and one table slot each
  // (a session's key is its own client id: no second copy).
  struct ConnectionById {
    static ConnectionId key(const Connection& c) noexcept { return c.id; }
    static std::uint64_t hash(ConnectionId id) noexcept { return id; }
  };
  struct SessionByClientId {
    static std::string_view key(const Session& s) noexcept { return s.client_id(); }
    static std::uint64_t hash(std::string_view id) noexcept { return std::hash<std::string_view>{}(id); }
  };
  PointerTable<Connection, ConnectionById> connections;
  PointerTable<Session, SessionByClientId> sessions;
  SessionSlots sessions_by_key;
  std::uint64_t assigned_id_counter = 0;
  SubscriptionTree tree;
  DeadlineQueue<Connection> deadlines;
  Timers::Id deadline_timer = 0;
  std::chrono::steady_clock::time_point deadline_timer_at{};
  bool handling_deadlines = false;
  std::map<std::string, MessagePtr, std::less<>> retained;

  struct StreamState {
    StreamConfig config;
    std::uint64_t next_offset = 0;
    std::uint64_t appended_since_trim = 0;
  };
  std::vector<StreamState> streams;
  Timers::Id retention_timer = 0;

  std::size_t sys_subscriptions = 0;
  Timers::Id sys_timer = 0;
  Broker::SysContributor sys_contributor;
  Broker::SysFigures sys_figures;  // reused by every $SYS cycle
  bool shutting_down = false;

  // CONNECTs whose authentication finishes later (Policy::start_authentication). While
  // one is parked its connection is not read (what arrived after the CONNECT stays with
  // the transport) and its CONNECT timeout keeps running; the packet's bytes are kept so
  // that the CONNECT completes from them when the verdict comes. A verdict whose ticket
  // does not match (the connection closed, its id reused) is ignored.
  struct ParkedConnect {
    std::string packet;  // the whole CONNECT, fixed header included
    std::uint64_t ticket = 0;
    bool assigned_client_id = false;
  };
  std::unordered_map<ConnectionId, ParkedConnect> authenticating;
  std::uint64_t authentication_tickets = 0;
  // Verdicts posted to the loop after the broker is gone find it expired.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  // Scratch for route(): reused so that routing does not allocate in steady state.
  struct Target {
    Session* session;
    QoS qos;
    bool retain_as_published;
    std::vector<std::uint32_t> subscription_ids;
  };
  std::vector<Target> targets;
  std::size_t targets_used = 0;
  std::uint64_t route_generation = 0;

  // ---------------------------------------------------------------- helpers

  // Store writes made in its scope are committed together (Store::begin_atomic).
  class AtomicWrites {
   public:
    explicit AtomicWrites(Store& store) : store_(store) { store_.begin_atomic(); }
    ~AtomicWrites() { store_.end_atomic(); }
    AtomicWrites(const AtomicWrites&) = delete;
    AtomicWrites& operator=(const AtomicWrites&) = delete;

   private:
    Store& store_;
  };

  Connection* find_connection(ConnectionId id) {
    return connections.find(id);
  }

  void send(Connection& conn, const mqtt::Packet& packet) {
    auto bytes = take_bytes(0);
    mqtt::encode(packet, conn.version, *bytes);
    stats.bytes_sent += bytes->size();
    transport.send(conn.id, std::move(bytes));
  }

  // A buffer for one encoded packet. The network transport copies small packets into its
  // own write buffers and lets go of ours at once, so while nobody else holds it the same
  // buffer serves packet after packet instead of one allocation each.
  static constexpr std::size_t kScratchBytesKept = 16 * 1024;
  std::shared_ptr<std::string> scratch_bytes;
  std::shared_ptr<std::string> take_bytes(std::size_t size) {
    if (size > kScratchBytesKept) {
      auto large = std::make_shared<std::string>();
      large->reserve(size);
      return large;
    }
    if (scratch_bytes && scratch_bytes.use_count() == 1 && scratch_bytes->capacity() <= kScratchBytesKept) {
      // The last other holder may have let go on another thread (a network thread,
      // net/server.cpp): its reads of the bytes happen before the writes below.
      std::atomic_thread_fence(std::memory_order_acquire);
      scratch_bytes->clear();
    } else {
      scratch_bytes = std::make_shared<std::string>();
    }
    scratch_bytes->reserve(size);
    return scratch_bytes;
  }

  std::string describe(const Connection& conn) const {
    if (conn.identity().client_id.empty()) return conn.identity().peer;
    return fmt::format("{} ({})", conn.identity().client_id, conn.identity().peer);
  }

  // Closes a connection for a protocol reason: 5.0 clients that completed CONNECT get a
  // DISCONNECT with `reason` first. The will is published as for any abnormal loss.
  void close_with(Connection& conn, ReasonCode reason, std::string_view why) {
    if (mqtt::is_error(reason)) {
      ++stats.protocol_errors;
      log::warn(kLog, "closing {}: {} ({})", describe(conn), mqtt::to_string(reason), why);
    } else {
      log::debug(kLog, "closing {}: {} ({})", describe(conn), mqtt::to_string(reason), why);
    }
    if (conn.state == Connection::State::connected && conn.version == Version::v5) {
      mqtt::Disconnect d;
      d.reason_code = reason;
      send(conn, d);
    }
    close_connection(conn, /*graceful=*/false);
  }

  // Forgets the connection and closes it. The session (if any) goes offline.
  void close_connection(Connection& conn, bool graceful) {
    const ConnectionId id = conn.id;
    deadlines.remove(conn);  // the timer stays armed: firing early finds nothing due
    Session* session = conn.session;
    const bool send_will = !graceful && !conn.will_cleared;
    if (conn.state == Connection::State::connected) policy.client_disconnected(conn.identity());
    if (conn.state == Connection::State::awaiting_connect) authenticating.erase(id);
    const auto owned = connections.erase(id);  // destroyed on return; `conn` is not used below
    --stats.connections_current;
    transport.close(id);
    if (session != nullptr) {
      session->connection = nullptr;
      --stats.clients_connected;
      session_went_offline(*session, send_will);
    }
  }

  // ---------------------------------------------------------------- sessions

  Session& create_session(const std::string& client_id, Version version) {
    auto s = std::make_unique<Session>();
    s->key = sessions_by_key.add(s.get());
    s->identity.client_id = client_id;
    s->version = version;
    Session& ref = *s;
    sessions.insert(std::move(s));  // the id is not in use: callers looked
    ++stats.sessions;
    return ref;
  }

  void destroy_session(Session& session) {
    if (WillMessage* will = session.will(); will != nullptr && will->timer) {
      timers.cancel(will->timer);
      will->timer = 0;
      publish_will(session);
    }
    if (session.expiry_timer()) timers.cancel(session.expiry_timer());
    for (auto& [filter, sub] : session.subscriptions) remove_from_tree(filter, session.key);
    store.remove_session(session.client_id());
    sessions_by_key.remove(session.key);
    --stats.sessions;
    sessions.erase(session.client_id());  // `session` is destroyed here
  }

  void persist_session(const Session& session) {
    if (session.expiry_interval == 0) return;
    SessionRecord rec;
    rec.client_id = session.client_id();
    rec.version = session.version;
    rec.session_expiry_interval = session.expiry_interval;
    for (auto& [_, sub] : session.subscriptions) rec.subscriptions.push_back(sub);
    store.save_session(rec);
  }

  bool is_service_log_topic(std::string_view topic) const {
    constexpr std::string_view prefix = "$tern/logs/";
    if (!topic.starts_with(prefix)) return false;
    const std::string_view rest = topic.substr(prefix.size());
    return !(rest.starts_with(config.node_name) && rest.size() > config.node_name.size() &&
             rest[config.node_name.size()] == '/');
  }

  // ---------------------------------------------------------------- write-through

  static bool persistent(const Session& session) { return session.expiry_interval > 0; }

  // Records a QoS 1/2 delivery of a persistent session in the store at `stage`.
  void store_delivery(Session& session, Delivery& d, QueuedRecord::Stage stage, std::uint16_t packet_id) {
    if (!persistent(session) || d.qos == QoS::at_most_once) return;
    if (d.seq == 0) d.seq = ++session.last_seq;
    QueuedRecord rec;
    rec.client_id = session.client_id();
    rec.seq = d.seq;
    rec.message = d.message;
    rec.qos = d.qos;
    rec.retain = d.retain;
    rec.subscription_ids = d.subscription_ids;
    rec.packet_id = packet_id;
    rec.stage = stage;
    store.save_queued(rec);
  }

  void unstore_delivery(Session& session, Delivery& d) {
    if (d.seq == 0) return;
    store.remove_queued(session.client_id(), d.seq);
    d.seq = 0;
  }

  static QueuedRecord::Stage record_stage(InflightMessage::Stage s) {
    switch (s) {
      case InflightMessage::Stage::awaiting_puback: return QueuedRecord::Stage::awaiting_puback;
      case InflightMessage::Stage::awaiting_pubrec: return QueuedRecord::Stage::awaiting_pubrec;
      case InflightMessage::Stage::awaiting_pubcomp: return QueuedRecord::Stage::awaiting_pubcomp;
    }
    return QueuedRecord::Stage::queued;
  }

  void session_went_offline(Session& session, bool send_will) {
    redispatch_shared(session);
    if (WillMessage* will = session.will(); send_will && will != nullptr) {
      const std::uint32_t delay = std::min(will->delay_seconds, session.expiry_interval);
      if (delay == 0) {
        publish_will(session);
      } else {
        const SessionKey key = session.key;
        will->timer = timers.schedule(std::chrono::seconds(delay), [this, key] {
          Session* s = sessions_by_key.find(key);
          if (s == nullptr) return;
          if (WillMessage* w = s->will()) w->timer = 0;
          publish_will(*s);
        });
      }
    } else {
      session.set_will(nullptr);
    }
    if (session.expiry_interval == 0) {
      destroy_session(session);
      return;
    }
    schedule_expiry(session);
  }

  void schedule_expiry(Session& session) {
    if (session.expiry_interval == kNeverExpires) return;
    const SessionKey key = session.key;
    session.set_expiry_timer(timers.schedule(std::chrono::seconds(session.expiry_interval), [this, key] {
      Session* found = sessions_by_key.find(key);
      if (found == nullptr) return;
      Session& s = *found;
      s.set_expiry_timer(0);
      if (s.connection == nullptr) {
        log::debug(kLog, "session {} expired", s.client_id());
        destroy_session(s);
      }
    }));
  }

  void publish_will(Session& session) {
    const WillMessage* will = session.will();
    if (will == nullptr) return;
    MessagePtr msg = will->message;
    if (will->message_expiry) {  // the expiry runs from when the will is published
      auto copy = std::make_shared<Message>(*msg);
      copy->expires_at = clock.now() + std::chrono::seconds(*will->message_expiry);
      msg = std::move(copy);
    }
    session.set_will(nullptr);
    if (!policy.may_publish(session.identity, msg->topic)) {
      ++stats.dropped_not_authorized;
      return;
    }
    if (msg->retain) set_retained(msg);
    route(msg, nullptr);
  }

  void load_from_store() {
    for (MessagePtr& m : store.load_retained()) {
      retained[m->topic] = m;
    }
    stats.retained_messages = retained.size();
    for (SessionRecord& rec : store.load_sessions()) {
      Session& s = create_session(rec.client_id, rec.version);
      s.expiry_interval = rec.session_expiry_interval;
      for (StoredSubscription& sub : rec.subscriptions) add_subscription(s, sub);
      schedule_expiry(s);
    }
    for (QueuedRecord& q : store.load_queued()) {
      Session* found = sessions.find(q.client_id);
      if (found == nullptr) {
        store.remove_queued(q.client_id, q.seq);
        continue;
      }
      Session& s = *found;
      s.last_seq = std::max(s.last_seq, q.seq);
      Delivery d;
      d.message = std::move(q.message);
      d.qos = q.qos;
      d.retain = q.retain;
      d.subscription_ids = std::move(q.subscription_ids);
      d.seq = q.seq;
      if (q.stage == QueuedRecord::Stage::queued) {
        if (!d.message) continue;
        s.queued_bytes += d.message->payload.size();
        s.queue.push_back(std::move(d));
        continue;
      }
      InflightMessage m;
      m.packet_id = q.packet_id;
      m.stage = q.stage == QueuedRecord::Stage::awaiting_puback   ? InflightMessage::Stage::awaiting_puback
                : q.stage == QueuedRecord::Stage::awaiting_pubrec ? InflightMessage::Stage::awaiting_pubrec
                                                                  : InflightMessage::Stage::awaiting_pubcomp;
      if (!d.message && m.stage != InflightMessage::Stage::awaiting_pubcomp) continue;
      m.delivery = std::move(d);
      s.last_packet_id = std::max(s.last_packet_id, m.packet_id);
      s.packet_ids_wrapped = true;  // loaded ids are in no particular order
      s.inflight.push_back(std::move(m));
    }
    for (auto& [client_id, packet_id] : store.load_inbound_qos2()) {
      if (Session* s = sessions.find(client_id)) s->add_inbound_qos2(packet_id);
    }
  }

  // ---------------------------------------------------------------- subscriptions

  void add_subscription(Session& session, const StoredSubscription& sub) {
    SharedSubscription shared;
    bool ok = true;
    std::string_view filter = sub.filter;
    std::string_view group;
    if (parse_shared_subscription(sub.filter, shared, ok) && ok) {
      filter = shared.filter;
      group = shared.group;
    }
    SubscriptionEntry entry{session.key, sub.options, sub.subscription_id};
    if (tree.subscribe(filter, group, entry)) {
      ++stats.subscriptions;
      if (is_sys_filter(filter)) sys_subscription_added();
    }
    session.subscriptions[sub.filter] = sub;
  }

  bool remove_from_tree(const std::string& full_filter, SessionKey key) {
    SharedSubscription shared;
    bool ok = true;
    std::string_view filter = full_filter;
    std::string_view group;
    if (parse_shared_subscription(full_filter, shared, ok) && ok) {
      filter = shared.filter;
      group = shared.group;
    }
    if (!tree.unsubscribe(filter, group, key)) return false;
    --stats.subscriptions;
    if (is_sys_filter(filter)) sys_subscription_removed();
    return true;
  }

  // ---------------------------------------------------------------- retained

  void set_retained(const MessagePtr& msg) {
    if (msg->payload.empty()) {
      if (retained.erase(msg->topic) > 0) store.remove_retained(msg->topic);
    } else {
      retained[msg->topic] = msg;
      store.save_retained(msg);
    }
    stats.retained_messages = retained.size();
  }

  void send_retained(Session& session, std::string_view filter, const StoredSubscription& sub) {
    const auto now = clock.now();
    for (auto it = retained.begin(); it != retained.end();) {
      const MessagePtr& msg = it->second;
      if (msg->expires_at && *msg->expires_at <= now) {
        store.remove_retained(msg->topic);
        it = retained.erase(it);
        ++stats.dropped_expired;
        continue;
      }
      if (topic_matches(filter, msg->topic) &&
          policy.may_receive(session.identity, msg->topic)) {
        Delivery d;
        d.message = msg;
        d.qos = min_qos(msg->qos, sub.options.qos);
        d.retain = true;  // §3.3.1.3: retained messages sent on subscribe carry the flag
        if (sub.subscription_id != 0) d.subscription_ids.push_back(sub.subscription_id);
        deliver(session, std::move(d));
      }
      ++it;
    }
    stats.retained_messages = retained.size();
    clear_shared_encoding();  // keyed by address: valid only while the messages are pinned
  }

  // ---------------------------------------------------------------- routing

  // A session matched by several filters is one target: found in O(1) through the
  // session's mark of the route it last took part in.
  Target& target_for(Session* s) {
    if (s->route_mark == route_generation) return targets[s->route_slot];
    s->route_mark = route_generation;
    s->route_slot = targets_used;
    if (targets_used == targets.size()) targets.push_back(Target{});
    Target& t = targets[targets_used++];
    t.session = s;
    t.qos = QoS::at_most_once;
    t.retain_as_published = false;
    t.subscription_ids.clear();
    return t;
  }

  // Hands `msg` to every matching subscription. `origin` is the publishing session (for no-local).
  void route(const MessagePtr& msg, const Session* origin) {
    sharing_encodings = true;
    route_to_subscribers(msg, origin);
    sharing_encodings = false;
    clear_shared_encoding();  // valid within one route only: addresses get reused
  }

  void route_to_subscribers(const MessagePtr& msg, const Session* origin) {
    clear_shared_encoding();
    targets_used = 0;
    ++route_generation;
    const SessionKey origin_key = origin ? origin->key : 0;
    std::vector<SharedGroup*> groups;  // rare: only with shared subscriptions
    tree.match(
        msg->topic,
        [&](const SubscriptionEntry& e) {
          if (e.options.no_local && e.session == origin_key) return;
          Session* s = sessions_by_key.find(e.session);
          if (s == nullptr) return;
          Target& t = target_for(s);
          if (static_cast<std::uint8_t>(e.options.qos) > static_cast<std::uint8_t>(t.qos)) t.qos = e.options.qos;
          t.retain_as_published = t.retain_as_published || e.options.retain_as_published;
          if (e.subscription_id != 0) t.subscription_ids.push_back(e.subscription_id);
        },
        [&](SharedGroup& g) { groups.push_back(&g); });

    Delivery d;  // one for all targets: QoS 0 is sent from it, QoS 1/2 take a copy
    d.message = msg;
    for (std::size_t i = 0; i < targets_used; ++i) {
      Target& t = targets[i];
      if (!policy.may_receive(t.session->identity, msg->topic)) {
        ++stats.dropped_not_authorized;
        continue;
      }
      d.qos = min_qos(msg->qos, t.qos);
      d.retain = t.retain_as_published && msg->retain;
      d.subscription_ids = t.subscription_ids;
      if (d.qos == QoS::at_most_once) {
        deliver_at_most_once(*t.session, d);
      } else {
        deliver(*t.session, Delivery(d));
      }
    }
    for (SharedGroup* g : groups) deliver_shared(*g, msg, nullptr);
  }

  // Picks the next member of a shared group, preferring connected ones, and delivers.
  void deliver_shared(SharedGroup& group, const MessagePtr& msg, const Session* exclude) {
    const std::size_t n = group.members.size();
    if (n == 0) return;
    const SubscriptionEntry* chosen = nullptr;
    Session* chosen_session = nullptr;
    for (int pass = 0; pass < 2 && chosen == nullptr; ++pass) {
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t idx = (group.next + i) % n;
        const SubscriptionEntry& e = group.members[idx];
        Session* s = sessions_by_key.find(e.session);
        if (s == nullptr || s == exclude) continue;
        if (pass == 0 && s->connection == nullptr) continue;
        chosen = &e;
        chosen_session = s;
        group.next = (idx + 1) % n;
        break;
      }
    }
    if (chosen == nullptr) return;
    Delivery d;
    d.message = msg;
    d.qos = min_qos(msg->qos, chosen->options.qos);
    d.retain = chosen->options.retain_as_published && msg->retain;
    if (chosen->subscription_id != 0) d.subscription_ids.push_back(chosen->subscription_id);
    d.shared_group = group.name;
    deliver(*chosen_session, std::move(d));
  }

  // A shared-subscription member went away: its unacknowledged and queued messages from
  // shared subscriptions go to another member of the same group.
  void redispatch_shared(Session& session) {
    std::vector<Delivery> moved;
    for (auto it = session.inflight.begin(); it != session.inflight.end();) {
      if (!it->delivery.shared_group.empty() && it->stage != InflightMessage::Stage::awaiting_pubcomp) {
        unstore_delivery(session, it->delivery);
        moved.push_back(std::move(it->delivery));
        it = session.inflight.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = session.queue.begin(); it != session.queue.end();) {
      if (!it->shared_group.empty()) {
        session.queued_bytes -= it->message->payload.size();
        unstore_delivery(session, *it);
        moved.push_back(std::move(*it));
        it = session.queue.erase(it);
      } else {
        ++it;
      }
    }
    session.inflight.shrink_if_empty();
    session.queue.shrink_if_empty();
    for (Delivery& d : moved) {
      const std::string group_name = d.shared_group;
      bool delivered = false;
      tree.match(
          d.message->topic, [](const SubscriptionEntry&) {},
          [&](SharedGroup& g) {
            if (!delivered && g.name == group_name) {
              delivered = true;
              deliver_shared(g, d.message, &session);
            }
          });
    }
  }

  bool expired(const Message& msg) const { return msg.expires_at && *msg.expires_at <= clock.now(); }

  std::size_t window(const Session& session) const {
    const Connection* c = session.connection;
    std::size_t w = config.max_inflight_out;
    if (c != nullptr) w = std::min<std::size_t>(w, c->client_receive_maximum);
    return std::max<std::size_t>(w, 1);
  }

  void deliver_at_most_once(Session& session, const Delivery& d) {
    if (expired(*d.message)) {
      ++stats.dropped_expired;
      return;
    }
    Connection* conn = session.connection;
    if (conn == nullptr) return;  // QoS 0 is not kept for offline sessions (§4.3.1)
    if (transport.queued_bytes(conn->id) > config.max_write_queue_bytes) {
      ++stats.dropped_qos0_backpressure;
      return;
    }
    send_publish(*conn, d, 0, false);
  }

  void deliver(Session& session, Delivery d) {
    if (d.qos == QoS::at_most_once) {
      deliver_at_most_once(session, d);
      return;
    }
    if (expired(*d.message)) {
      ++stats.dropped_expired;
      return;
    }
    Connection* conn = session.connection;
    if (conn != nullptr && session.queue.empty() && session.inflight.size() < window(session)) {
      send_inflight(session, std::move(d));
      return;
    }
    enqueue(session, std::move(d));
  }

  void enqueue(Session& session, Delivery d) {
    const std::size_t bytes = d.message->payload.size();
    while (session.queue.size() >= config.max_queued_messages ||
           (session.queued_bytes + bytes > config.max_queued_bytes && !session.queue.empty())) {
      switch (config.queue_full_policy) {
        case QueueFullPolicy::drop_new:
          ++stats.dropped_queue_full;
          log::debug(kLog, "queue of {} full: message dropped", session.client_id());
          return;
        case QueueFullPolicy::drop_oldest:
          ++stats.dropped_queue_full;
          session.queued_bytes -= session.queue.front().message->payload.size();
          unstore_delivery(session, session.queue.front());
          session.queue.pop_front();
          break;
        case QueueFullPolicy::disconnect:
          ++stats.dropped_queue_full;
          if (session.connection != nullptr) {
            // Deferred: this runs inside route(), which must not be re-entered by the
            // will and shared-subscription hand-over that closing triggers.
            const ConnectionId id = session.connection->id;
            timers.schedule(std::chrono::milliseconds(0), [this, id] {
              if (Connection* c = find_connection(id)) close_with(*c, ReasonCode::quota_exceeded, "queue full");
            });
          }
          return;
      }
    }
    if (bytes > config.max_queued_bytes) {
      ++stats.dropped_queue_full;
      return;
    }
    session.queued_bytes += bytes;
    ++stats.queued_total;
    if (d.seq == 0) store_delivery(session, d, QueuedRecord::Stage::queued, 0);
    session.queue.push_back(std::move(d));
  }

  // Packet ids are handed out in increasing order, so before the counter first wraps none
  // can be in use yet; only after that (or after loading in-flight state) is a check needed.
  std::uint16_t next_packet_id(Session& session) {
    for (;;) {
      session.last_packet_id = static_cast<std::uint16_t>(session.last_packet_id + 1);
      if (session.last_packet_id == 0) {
        session.packet_ids_wrapped = true;
        continue;
      }
      const std::uint16_t id = session.last_packet_id;
      if (!session.packet_ids_wrapped) return id;
      const bool used = std::any_of(session.inflight.begin(), session.inflight.end(),
                                    [id](const InflightMessage& m) { return m.packet_id == id; });
      if (!used) return id;
    }
  }

  void send_inflight(Session& session, Delivery d) {
    InflightMessage m;
    m.packet_id = next_packet_id(session);
    m.stage = d.qos == QoS::at_least_once ? InflightMessage::Stage::awaiting_puback
                                          : InflightMessage::Stage::awaiting_pubrec;
    m.delivery = std::move(d);
    if (!send_publish(*session.connection, m.delivery, m.packet_id, false)) {  // too large: dropped
      unstore_delivery(session, m.delivery);
      return;
    }
    // A QoS 1 message already in the store needs no second write: after a restart it is
    // sent again either way, which QoS 1 allows. QoS 2 must record its packet id.
    if (m.delivery.seq == 0 || m.delivery.qos == QoS::exactly_once) {
      store_delivery(session, m.delivery, record_stage(m.stage), m.packet_id);
    }
    session.inflight.push_back(std::move(m));
  }

  // Sends what the window allows from the session's queue.
  void pump(Session& session) {
    while (session.connection != nullptr && !session.queue.empty() &&
           session.inflight.size() < window(session)) {
      Delivery d = std::move(session.queue.front());
      session.queue.pop_front();
      session.queued_bytes -= d.message->payload.size();
      if (expired(*d.message)) {
        ++stats.dropped_expired;
        unstore_delivery(session, d);
        continue;
      }
      if (d.qos == QoS::at_most_once) {
        send_publish(*session.connection, d, 0, false);
      } else {
        send_inflight(session, std::move(d));
      }
    }
  }

  // Encodes and sends one PUBLISH. Returns false when it was dropped as too large for the client.
  // One encoding of a PUBLISH serves every subscriber that needs no per-subscriber variant
  // (no topic alias, no subscription identifier, not a retransmission), per protocol
  // version, retain flag and QoS. For QoS 1 and 2 only the packet id differs: it is
  // patched into a copy of the shared bytes.
  struct SharedEncoding {
    const Message* message = nullptr;
    SharedBytes bytes[2][2][3];  // [v5][retain][qos]
  };
  SharedEncoding shared_encoding;
  bool sharing_encodings = false;  // only while route() runs: elsewhere each message goes to one session

  void clear_shared_encoding() {
    if (shared_encoding.message == nullptr) return;
    shared_encoding.message = nullptr;
    for (auto& by_retain : shared_encoding.bytes) {
      for (auto& by_qos : by_retain) {
        for (SharedBytes& b : by_qos) {
          if (b) b.reset();
        }
      }
    }
  }

  // Offset of the packet id in an encoded PUBLISH of QoS 1 or 2: after the fixed header
  // (type byte, remaining length as a variable byte integer) and the topic name.
  static std::size_t packet_id_offset(std::string_view publish) {
    std::size_t pos = 1;
    while (pos < publish.size() && (static_cast<std::uint8_t>(publish[pos]) & 0x80) != 0) ++pos;
    ++pos;
    const std::size_t topic_length = (static_cast<std::size_t>(static_cast<std::uint8_t>(publish[pos])) << 8) |
                                     static_cast<std::uint8_t>(publish[pos + 1]);
    return pos + 2 + topic_length;
  }

  bool send_publish(Connection& conn, const Delivery& d, std::uint16_t packet_id, bool dup) {
    const Message& msg = *d.message;
    const bool shareable = sharing_encodings && !dup && d.subscription_ids.empty() &&
                           !(conn.version == Version::v5 && conn.client_topic_alias_maximum > 0);
    SharedBytes* cached = nullptr;
    if (shareable) {
      if (shared_encoding.message != &msg) {
        clear_shared_encoding();
        shared_encoding.message = &msg;
      }
      cached = &shared_encoding.bytes[conn.version == Version::v5 ? 1 : 0][d.retain ? 1 : 0]
                                     [static_cast<std::size_t>(d.qos)];
      if (*cached) {
        const std::string& shared = **cached;
        if (shared.size() > conn.client_maximum_packet_size) {
          ++stats.dropped_too_large;
          return false;
        }
        ++stats.messages_sent;
        ++stats.messages_sent_qos[static_cast<std::size_t>(d.qos)];
        stats.bytes_sent += shared.size();
        if (d.qos == QoS::at_most_once) {
          transport.send(conn.id, *cached);
          return true;
        }
        auto bytes = take_bytes(shared.size());
        bytes->assign(shared);
        const std::size_t at = packet_id_offset(*bytes);
        (*bytes)[at] = static_cast<char>(packet_id >> 8);
        (*bytes)[at + 1] = static_cast<char>(packet_id & 0xFF);
        transport.send(conn.id, std::move(bytes));
        return true;
      }
    }
    mqtt::Publish p;
    p.topic = msg.topic;
    p.payload = msg.payload;
    p.qos = d.qos;
    p.retain = d.retain;
    p.dup = dup;
    p.packet_id = packet_id;
    std::string subscription_ids;
    if (conn.version == Version::v5) {
      auto& pr = p.properties;
      pr.payload_format_indicator = msg.payload_format_indicator;
      if (msg.content_type) pr.content_type = *msg.content_type;
      if (msg.response_topic) pr.response_topic = *msg.response_topic;
      if (msg.correlation_data) pr.correlation_data = *msg.correlation_data;
      pr.user_properties = msg.user_properties;
      if (msg.expires_at) {
        const auto left = std::chrono::ceil<std::chrono::seconds>(*msg.expires_at - clock.now()).count();
        pr.message_expiry_interval = static_cast<std::uint32_t>(std::max<std::int64_t>(left, 1));
      }
      for (std::uint32_t id : d.subscription_ids) mqtt::append_subscription_identifier(subscription_ids, id);
      pr.subscription_identifiers = subscription_ids;
      if (conn.client_topic_alias_maximum > 0) {
        auto& outbound = conn.topic_aliases().outbound;
        auto it = outbound.find(msg.topic);
        if (it != outbound.end()) {
          pr.topic_alias = it->second;
          p.topic = {};
        } else if (outbound.size() < conn.client_topic_alias_maximum) {
          const auto alias = static_cast<std::uint16_t>(outbound.size() + 1);
          outbound.emplace(msg.topic, alias);
          pr.topic_alias = alias;
        }
      }
    }
    // Encoded before the size check: sizing takes a pass of its own, and a packet too
    // large for its client is rare.
    auto bytes = take_bytes(msg.topic.size() + msg.payload.size() + 16);
    mqtt::encode(p, conn.version, *bytes);
    if (bytes->size() > conn.client_maximum_packet_size) {
      ++stats.dropped_too_large;
      log::debug(kLog, "message on {} too large for {}: dropped", msg.topic, describe(conn));
      return false;
    }
    ++stats.messages_sent;
    ++stats.messages_sent_qos[static_cast<std::size_t>(d.qos)];
    stats.bytes_sent += bytes->size();
    if (cached != nullptr) *cached = bytes;
    transport.send(conn.id, std::move(bytes));
    return true;
  }

  // ---------------------------------------------------------------- $SYS

  void sys_subscription_added() {
    ++sys_subscriptions;
    schedule_sys(std::chrono::milliseconds(0));
  }

  void sys_subscription_removed() {
    if (sys_subscriptions > 0) --sys_subscriptions;
    if (sys_subscriptions == 0 && sys_timer != 0) {
      timers.cancel(sys_timer);
      sys_timer = 0;
    }
  }

  void schedule_sys(std::chrono::milliseconds delay) {
    if (sys_timer != 0) {
      if (delay.count() != 0) return;
      timers.cancel(sys_timer);
    }
    sys_timer = timers.schedule(delay, [this] {
      sys_timer = 0;
      if (sys_subscriptions == 0) return;
      publish_sys();
      schedule_sys(std::chrono::duration_cast<std::chrono::milliseconds>(config.sys_interval));
    });
  }

  void publish_sys_value(std::string_view topic, std::uint64_t value) { publish_sys_text(topic, std::to_string(value)); }

  void publish_sys_text(std::string_view topic, std::string text) {
    auto m = std::make_shared<Message>();
    m->topic = topic;
    m->payload = std::move(text);
    route(m, nullptr);
  }

  // Contributed figures are checked here rather than trusted: a contributor must not be
  // able to publish outside $SYS/, where ACLs would otherwise have applied.
  void publish_contributed_sys() {
    if (!sys_contributor) return;
    sys_figures.clear();
    sys_contributor(sys_figures);
    for (auto& [topic, text] : sys_figures) {
      if (topic.starts_with("$SYS/") && is_valid_topic_name(topic)) publish_sys_text(topic, std::move(text));
    }
    sys_figures.clear();
  }

  void publish_sys() {
    const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(clock.now() - started).count();
    publish_sys_value("$SYS/broker/uptime", static_cast<std::uint64_t>(uptime));
    publish_sys_value("$SYS/broker/clients/connected", stats.clients_connected);
    publish_sys_value("$SYS/broker/clients/total", stats.sessions);
    publish_sys_value("$SYS/broker/connections/current", stats.connections_current);
    publish_sys_value("$SYS/broker/connections/total", stats.connections_total);
    publish_sys_value("$SYS/broker/connections/refused", stats.connections_refused);
    publish_sys_value("$SYS/broker/messages/received", stats.messages_received);
    publish_sys_value("$SYS/broker/messages/sent", stats.messages_sent);
    publish_sys_value("$SYS/broker/bytes/received", stats.bytes_received);
    publish_sys_value("$SYS/broker/bytes/sent", stats.bytes_sent);
    publish_sys_value("$SYS/broker/subscriptions/count", stats.subscriptions);
    publish_sys_value("$SYS/broker/retained messages/count", stats.retained_messages);
    publish_sys_value("$SYS/broker/messages/dropped/queue_full", stats.dropped_queue_full);
    publish_sys_value("$SYS/broker/messages/dropped/expired", stats.dropped_expired);
    publish_sys_value("$SYS/broker/messages/dropped/backpressure", stats.dropped_qos0_backpressure);
    publish_sys_value("$SYS/broker/messages/dropped/too_large", stats.dropped_too_large);
    publish_sys_value("$SYS/broker/messages/dropped/not_authorized", stats.dropped_not_authorized);
    publish_sys_value("$SYS/broker/protocol_errors", stats.protocol_errors);
    publish_contributed_sys();
  }

  // ---------------------------------------------------------------- streams

  void append_to_streams(const MessagePtr& m) {
    for (StreamState& st : streams) {
      if (!topic_matches(st.config.filter, m->topic)) continue;
      store.append_stream(st.config.name, StreamEvent{st.next_offset++, clock.wall_ms(), m});
      // Byte retention between the timer's rounds: trimming costs a query, so batch it.
      if (st.config.max_bytes > 0 && ++st.appended_since_trim >= 1000) {
        st.appended_since_trim = 0;
        store.trim_stream(st.config.name, 0, st.config.max_bytes);
      }
    }
  }

  void enforce_retention() {
    const std::int64_t now = clock.wall_ms();
    for (StreamState& st : streams) {
      const std::int64_t older_than =
          st.config.max_age.count() > 0 ? now - std::chrono::duration_cast<std::chrono::milliseconds>(st.config.max_age).count() : 0;
      store.trim_stream(st.config.name, older_than, st.config.max_bytes);
      st.appended_since_trim = 0;
    }
  }

  // Retention is a real deadline, so it has a timer: the shortest max_age / 10, at
  // least a second and at most ten minutes.
  void schedule_retention() {
    std::chrono::seconds period{600};
    for (const StreamState& st : streams) {
      if (st.config.max_age.count() > 0) period = std::min(period, std::max<std::chrono::seconds>(st.config.max_age / 10, std::chrono::seconds(1)));
    }
    retention_timer = timers.schedule(std::chrono::duration_cast<std::chrono::milliseconds>(period), [this] {
      retention_timer = 0;
      enforce_retention();
      schedule_retention();
    });
  }

  std::shared_ptr<Message> stream_reply(const mqtt::Publish& request, std::string_view response_topic) {
    auto r = std::make_shared<Message>();
    r->topic = response_topic;
    r->qos = request.qos;
    if (request.properties.correlation_data) r->correlation_data = std::string(*request.properties.correlation_data);
    return r;
  }

  // `$tern/streams/{name}/read`: answers on the request's response topic, one message an
  // event in offset order, then an end marker with the next offset to read from.
  void answer_stream_read(Connection& conn, const mqtt::Publish& p, std::string_view topic) {
    std::string_view rest = topic.substr(kStreamsRoot.size());
    const auto slash = rest.find('/');
    const std::string_view name = rest.substr(0, slash);
    const std::string_view verb = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (!p.properties.response_topic) {
      log::warn(kLog, "stream request from {} on {} has no response topic: ignored", describe(conn), topic);
      return;
    }
    const std::string_view response_topic = *p.properties.response_topic;
    auto fail = [&](std::string_view why) {
      auto r = stream_reply(p, response_topic);
      mqtt::append_user_property(r->user_properties, "tern-end", "true");
      mqtt::append_user_property(r->user_properties, "tern-error", why);
      route(r, nullptr);
    };
    const StreamState* st = nullptr;
    for (const StreamState& s : streams) {
      if (s.config.name == name) st = &s;
    }
    if (st == nullptr || verb != "read") {
      fail(st == nullptr ? "unknown stream" : "unknown stream operation (use read)");
      return;
    }
    auto req = parse_stream_read_request(p.payload);
    if (!req) {
      fail(req.error());
      return;
    }
    const std::size_t max = req->max_count == 0 ? config.max_stream_read
                                                : std::min<std::size_t>(req->max_count, config.max_stream_read);
    const auto events = store.read_stream(st->config.name, req->from_offset, req->from_time_ms, max);
    std::uint64_t next = req->from_offset;
    for (const StreamEvent& e : events) {
      auto r = stream_reply(p, response_topic);
      const Message& m = *e.message;
      r->payload = m.payload;
      r->payload_format_indicator = m.payload_format_indicator;
      r->content_type = m.content_type;
      r->user_properties = m.user_properties;
      mqtt::append_user_property(r->user_properties, "tern-stream", st->config.name);
      mqtt::append_user_property(r->user_properties, "tern-offset", std::to_string(e.offset));
      mqtt::append_user_property(r->user_properties, "tern-time", std::to_string(e.timestamp_ms));
      mqtt::append_user_property(r->user_properties, "tern-topic", m.topic);
      route(r, nullptr);
      next = e.offset + 1;
    }
    auto end = stream_reply(p, response_topic);
    mqtt::append_user_property(end->user_properties, "tern-end", "true");
    mqtt::append_user_property(end->user_properties, "tern-next-offset", std::to_string(next));
    mqtt::append_user_property(end->user_properties, "tern-count", std::to_string(events.size()));
    route(end, nullptr);
  }

  // ---------------------------------------------------------------- timers

  // One timer for every connection's deadline (CONNECT timeout, keep-alive): an idle
  // connection holds a queue entry, not a timer. Keep-alive deadlines are rounded up to a
  // grid that is coarse next to the keep-alive itself, so that deadlines of many clients
  // fall due together and an idle broker wakes up rarely.
  void set_deadline(Connection& conn, std::chrono::steady_clock::time_point at,
                    std::chrono::nanoseconds grid = std::chrono::nanoseconds(1)) {
    if (grid > std::chrono::nanoseconds(1)) {
      const auto since = at.time_since_epoch();
      at = std::chrono::steady_clock::time_point((since + grid - std::chrono::nanoseconds(1)) / grid * grid);
    }
    deadlines.set(conn, at);
    if (!handling_deadlines) arm_deadline_timer();
  }

  static std::chrono::nanoseconds keep_alive_grid(std::chrono::milliseconds limit) {
    using namespace std::chrono_literals;
    if (limit >= 60s) return 1s;
    if (limit >= 6s) return 100ms;
    if (limit >= 600ms) return 10ms;
    return 1ms;
  }

  void start_keep_alive(Connection& conn) {
    const auto limit = std::chrono::milliseconds(conn.keep_alive * 1500);
    set_deadline(conn, conn.last_activity + limit, keep_alive_grid(limit));
  }

  void arm_deadline_timer() {
    if (deadlines.empty() || shutting_down) return;
    const auto at = deadlines.earliest();
    if (deadline_timer != 0) {
      if (deadline_timer_at <= at) return;  // fires first; it re-arms for what is left
      timers.cancel(deadline_timer);
    }
    const auto wait = std::max(at - clock.now(), std::chrono::steady_clock::duration::zero());
    deadline_timer_at = at;
    deadline_timer = timers.schedule(std::chrono::ceil<std::chrono::milliseconds>(wait), [this] {
      deadline_timer = 0;
      on_deadlines();
    });
  }

  void on_deadlines() {
    const auto now = clock.now();
    handling_deadlines = true;
    while (Connection* c = deadlines.pop_due(now)) {
      if (c->state == Connection::State::awaiting_connect) {
        ++stats.protocol_errors;
        log::warn(kLog, "closing {}: {} within the connect timeout", c->identity().peer,
                  authenticating.contains(c->id) ? "authentication not finished" : "no CONNECT");
        close_connection(*c, true);
        continue;
      }
      if (c->keep_alive == 0) continue;
      const auto limit = std::chrono::milliseconds(c->keep_alive * 1500);
      if (now - c->last_activity >= limit) {
        close_with(*c, ReasonCode::keep_alive_timeout, "no packet within 1.5 x keep-alive");
      } else {
        start_keep_alive(*c);
      }
    }
    handling_deadlines = false;
    arm_deadline_timer();
  }

  // ---------------------------------------------------------------- packets

  void handle(Connection& conn, const mqtt::Frame& frame) {
    if (conn.state == Connection::State::awaiting_connect && frame.type() != mqtt::PacketType::connect) {
      ++stats.protocol_errors;
      log::warn(kLog, "closing {}: protocol_error (packet type {} before CONNECT)", describe(conn),
                static_cast<int>(frame.type()));
      close_connection(conn, false);
      return;
    }
    auto decoded = mqtt::decode(frame, conn.version);
    if (!decoded) {
      if (frame.type() == mqtt::PacketType::connect) {
        refuse_bad_connect(conn, frame, decoded.error());
      } else {
        close_with(conn, decoded.error().code, decoded.error().what);
      }
      return;
    }
    std::visit(
        [&](auto& packet) {
          using T = std::decay_t<decltype(packet)>;
          if constexpr (std::is_same_v<T, mqtt::Connect>) {
            on_connect(conn, packet, frame);
          } else if constexpr (std::is_same_v<T, mqtt::Publish>) {
            on_publish(conn, packet);
          } else if constexpr (std::is_same_v<T, mqtt::PubAck>) {
            on_ack(conn, packet);
          } else if constexpr (std::is_same_v<T, mqtt::Subscribe>) {
            on_subscribe(conn, packet);
          } else if constexpr (std::is_same_v<T, mqtt::Unsubscribe>) {
            on_unsubscribe(conn, packet);
          } else if constexpr (std::is_same_v<T, mqtt::Pingreq>) {
            send(conn, mqtt::Pingresp{});
          } else if constexpr (std::is_same_v<T, mqtt::Disconnect>) {
            on_disconnect(conn, packet);
          } else if constexpr (std::is_same_v<T, mqtt::Auth>) {
            // No enhanced authentication method is supported; CONNECT with one is refused.
            close_with(conn, ReasonCode::protocol_error, "AUTH without an authentication method");
          } else {
            close_with(conn, ReasonCode::protocol_error, "packet a client must not send");
          }
        },
        *decoded);
  }

  void refuse_bad_connect(Connection& conn, const mqtt::Frame& frame, const mqtt::CodecError& err) {
    // The protocol level decides the CONNACK's format: it sits after the protocol name.
    const std::string_view body = frame.body;
    const bool v5 = body.size() > 6 && body.substr(0, 6) == std::string_view("\0\4MQTT", 6) &&
                    static_cast<std::uint8_t>(body[6]) == 5;
    ++stats.protocol_errors;
    ++stats.connections_refused;
    log::warn(kLog, "refusing CONNECT from {}: {} ({})", describe(conn), mqtt::to_string(err.code), err.what);
    if (err.code == ReasonCode::unsupported_protocol_version || !v5) {
      if (err.code == ReasonCode::unsupported_protocol_version) {
        // §3.1.2.2 (3.1.1) and §3.1.2.2 (5.0): an unsupported level gets the 3.1.1 form, return code 1.
        mqtt::Connack ack;
        ack.reason_code = ReasonCode::unsupported_protocol_version;
        conn.version = Version::v311;
        send(conn, ack);
      }
    } else {
      mqtt::Connack ack;
      ack.reason_code = err.code;
      conn.version = Version::v5;
      send(conn, ack);
    }
    close_connection(conn, true);
  }

  void refuse_connect(Connection& conn, ReasonCode code, std::string_view why) {
    ++stats.connections_refused;
    log::warn(kLog, "refusing CONNECT from {}: {} ({})", describe(conn), mqtt::to_string(code), why);
    mqtt::Connack ack;
    ack.reason_code = code;
    send(conn, ack);
    close_connection(conn, true);
  }

  void on_connect(Connection& conn, const mqtt::Connect& c, const mqtt::Frame& frame) {
    if (conn.state != Connection::State::awaiting_connect) {
      close_with(conn, ReasonCode::protocol_error, "second CONNECT");
      return;
    }
    conn.version = c.version;
    const auto& props = c.properties;
    std::string client_id(c.client_id);
    bool assigned = false;
    if (client_id.empty()) {
      if (c.version == Version::v311 && !c.clean_start) {
        refuse_connect(conn, ReasonCode::client_identifier_not_valid, "empty client id without clean session");
        return;
      }
      client_id = fmt::format("tern-{}-{}", conn.id, ++assigned_id_counter);
      assigned = true;
    }
    conn.identity().client_id = client_id;
    if (c.username) conn.identity().username = std::string(*c.username);
    if (props.authentication_method) {
      refuse_connect(conn, ReasonCode::bad_authentication_method, "enhanced authentication is not supported");
      return;
    }
    const ConnectionId id = conn.id;
    const std::uint64_t ticket = ++authentication_tickets;
    const auto verdict = policy.start_authentication(
        conn.identity(), c.password, [this, alive_token = std::weak_ptr<bool>(alive), id, ticket](std::uint8_t rc) {
          if (!alive_token.expired()) on_authenticated(id, ticket, rc);
        });
    if (!verdict) {
      const std::string_view body = frame.body;
      authenticating.insert_or_assign(
          id, ParkedConnect{std::string(body.data() + body.size() - frame.size, frame.size), ticket, assigned});
      transport.set_reading(id, false);
      return;
    }
    finish_connect(conn, c, assigned, *verdict);
  }

  void on_authenticated(ConnectionId id, std::uint64_t ticket, std::uint8_t rc) {
    const auto it = authenticating.find(id);
    if (it == authenticating.end() || it->second.ticket != ticket) {
      log::debug(kLog, "authentication verdict for connection {} ignored: it has gone", id);
      return;
    }
    const ParkedConnect parked = std::move(it->second);
    authenticating.erase(it);
    Connection* conn = find_connection(id);
    if (conn == nullptr) return;
    conn->last_activity = clock.now();
    received_at = conn->last_activity;
    // The same bytes decoded before they were parked.
    const auto frame = mqtt::parse_frame(parked.packet, config.max_packet_size);
    std::optional<mqtt::Packet> decoded;
    if (frame && frame->size != 0) {
      if (auto d = mqtt::decode(*frame, conn->version)) decoded = std::move(*d);
    }
    const auto* connect = decoded ? std::get_if<mqtt::Connect>(&*decoded) : nullptr;
    if (connect == nullptr) {
      close_connection(*conn, false);
      return;
    }
    finish_connect(*conn, *connect, parked.assigned_client_id, rc);
    // Offers the packets that arrived after the CONNECT, then reads on.
    if (find_connection(id) != nullptr) transport.set_reading(id, true);
  }

  // The rest of CONNECT once the policy's verdict `rc` is known.
  void finish_connect(Connection& conn, const mqtt::Connect& c, bool assigned, std::uint8_t rc) {
    deadlines.remove(conn);  // the CONNECT timeout; keep-alive follows below
    const auto& props = c.properties;
    const std::string client_id = conn.identity().client_id;  // the identity moves to the session below
    if (rc != 0) {
      refuse_connect(conn, static_cast<ReasonCode>(rc), "authentication failed");
      return;
    }
    if (c.will && c.will->retain && !config.retain_available) {
      refuse_connect(conn, ReasonCode::retain_not_supported, "will retain while retain is not available");
      return;
    }
    if (c.will && !policy.may_publish(conn.identity(), c.will->topic)) {
      refuse_connect(conn, ReasonCode::not_authorized, "will topic not authorized");
      return;
    }

    // Limits the client announced.
    if (props.receive_maximum) conn.client_receive_maximum = *props.receive_maximum;
    if (props.maximum_packet_size) conn.client_maximum_packet_size = *props.maximum_packet_size;
    if (props.topic_alias_maximum) conn.client_topic_alias_maximum = *props.topic_alias_maximum;

    // Keep-alive: a larger (or no) keep-alive than the maximum is overridden (5.0 tells the
    // client through server keep-alive; 3.1.1 has no way to, so its value stands).
    std::optional<std::uint16_t> server_keep_alive;
    conn.keep_alive = c.keep_alive;
    if (c.version == Version::v5 && (c.keep_alive == 0 || c.keep_alive > config.max_keep_alive)) {
      conn.keep_alive = config.max_keep_alive;
      server_keep_alive = config.max_keep_alive;
    }

    // Session expiry.
    std::uint32_t expiry = 0;
    bool expiry_capped = false;
    if (c.version == Version::v5) {
      expiry = props.session_expiry_interval.value_or(0);
    } else {
      expiry = c.clean_start ? 0 : kNeverExpires;
    }
    if (expiry > config.max_session_expiry) {
      expiry = config.max_session_expiry;
      expiry_capped = c.version == Version::v5;
    }

    // Takeover and session state.
    bool session_present = false;
    Session* session = nullptr;
    if (Session* found = sessions.find(client_id)) {
      Session& old = *found;
      if (old.connection != nullptr) {
        Connection& old_conn = *old.connection;
        log::info(kLog, "session {} taken over by {}", client_id, conn.identity().peer);
        // The old connection ends without DISCONNECT from its client: its will applies.
        close_with(old_conn, ReasonCode::session_taken_over, "another connection with the same client id");
      }
      // close_with may have ended the session (expiry 0).
      if (Session* again = sessions.find(client_id)) {
        if (c.clean_start) {
          destroy_session(*again);
        } else {
          session = again;
          session_present = true;
        }
      }
    }
    if (session == nullptr) session = &create_session(client_id, c.version);
    if (const WillMessage* will = session->will(); will != nullptr && will->timer) {
      timers.cancel(will->timer);  // reconnected within the will delay: no will
    }
    session->set_will(nullptr);
    if (session->expiry_timer()) {
      timers.cancel(session->expiry_timer());
      session->set_expiry_timer(0);
    }
    session->version = c.version;
    session->expiry_interval = expiry;
    session->connection = &conn;
    session->identity = std::move(conn.rare->own_identity);
    conn.rare.reset();  // no aliases before CONNECT
    conn.session = session;
    conn.state = Connection::State::connected;
    policy.client_connected(conn.identity());
    ++stats.clients_connected;

    if (c.will) {
      auto m = std::make_shared<Message>();
      m->topic = c.will->topic;
      m->payload = c.will->payload;
      m->qos = c.will->qos;
      m->retain = c.will->retain;
      copy_properties(*m, c.will->properties);
      m->origin_client_id = client_id;
      session->set_will(std::make_unique<WillMessage>(WillMessage{
          std::move(m), c.will->properties.will_delay_interval.value_or(0), c.will->properties.message_expiry_interval,
          /*timer=*/0}));
    }

    mqtt::Connack ack;
    ack.session_present = session_present;
    if (c.version == Version::v5) {
      auto& p = ack.properties;
      if (config.receive_maximum != 65535) p.receive_maximum = config.receive_maximum;
      p.maximum_packet_size = config.max_packet_size;
      if (config.topic_alias_maximum > 0) p.topic_alias_maximum = config.topic_alias_maximum;
      if (!config.retain_available) p.retain_available = 0;
      if (!config.wildcard_subscriptions) p.wildcard_subscription_available = 0;
      if (!config.subscription_identifiers) p.subscription_identifier_available = 0;
      if (!config.shared_subscriptions) p.shared_subscription_available = 0;
      if (assigned) p.assigned_client_identifier = client_id;
      if (server_keep_alive) p.server_keep_alive = *server_keep_alive;
      if (expiry_capped) p.session_expiry_interval = expiry;
    }
    std::string response_information;
    if (c.version == Version::v5 && props.request_response_information.value_or(0) == 1) {
      response_information = fmt::format("reply/{}", client_id);
      ack.properties.response_information = response_information;
    }
    send(conn, ack);
    persist_session(*session);
    log::debug(kLog, "{} connected (v{}, keep-alive {}, session present {})", describe(conn),
               static_cast<int>(c.version), conn.keep_alive, session_present);

    if (conn.keep_alive > 0) start_keep_alive(conn);

    // Resume: in-flight messages again (PUBLISH with DUP, or PUBREL), then the queue.
    for (InflightMessage& m : session->inflight) {
      if (m.stage == InflightMessage::Stage::awaiting_pubcomp) {
        mqtt::PubAck rel;
        rel.type = mqtt::PacketType::pubrel;
        rel.packet_id = m.packet_id;
        send(conn, rel);
      } else {
        send_publish(conn, m.delivery, m.packet_id, true);
      }
    }
    pump(*session);
  }

  // A Message for an inbound PUBLISH. When nothing kept the previous one (delivered at
  // once at QoS 0, not retained, queued or in flight), it is reused with its strings'
  // memory, which spares the allocations of a new message each time.
  static constexpr std::size_t kSpareMessageBytesKept = 16 * 1024;
  std::shared_ptr<Message> spare_message;
  std::shared_ptr<Message> take_message() {
    if (spare_message && spare_message.use_count() == 1 &&
        spare_message->payload.capacity() <= kSpareMessageBytesKept) {
      Message& m = *spare_message;
      std::string topic = std::move(m.topic);
      std::string payload = std::move(m.payload);
      std::string origin = std::move(m.origin_client_id);
      m = Message{};
      m.topic = std::move(topic);
      m.payload = std::move(payload);
      m.origin_client_id = std::move(origin);
      return spare_message;
    }
    spare_message = std::make_shared<Message>();
    return spare_message;
  }

  static void copy_properties(Message& m, const mqtt::Properties& p) {
    m.payload_format_indicator = p.payload_format_indicator;
    if (p.content_type) m.content_type = std::string(*p.content_type);
    if (p.response_topic) m.response_topic = std::string(*p.response_topic);
    if (p.correlation_data) m.correlation_data = std::string(*p.correlation_data);
    m.user_properties = p.user_properties;
  }

  void on_publish(Connection& conn, const mqtt::Publish& p) {
    ++stats.messages_received;
    std::string_view topic = p.topic;
    if (conn.version == Version::v5 && p.properties.topic_alias) {
      const std::uint16_t alias = *p.properties.topic_alias;
      if (alias == 0 || alias > config.topic_alias_maximum) {
        close_with(conn, ReasonCode::topic_alias_invalid, "topic alias out of range");
        return;
      }
      // Grown on use: an idle connection holds no alias table.
      auto& inbound_aliases = conn.topic_aliases().inbound;
      if (inbound_aliases.size() <= alias) inbound_aliases.resize(alias + 1u);
      if (topic.empty()) {
        topic = inbound_aliases[alias];
        if (topic.empty()) {
          close_with(conn, ReasonCode::protocol_error, "unknown topic alias");
          return;
        }
      } else {
        inbound_aliases[alias] = std::string(topic);
      }
    } else if (topic.empty()) {
      close_with(conn, ReasonCode::protocol_error, "empty topic without topic alias");
      return;
    }
    if (!p.properties.subscription_identifiers.empty()) {
      close_with(conn, ReasonCode::protocol_error, "subscription identifier in a PUBLISH from a client");
      return;
    }
    if (p.retain && !config.retain_available) {
      close_with(conn, ReasonCode::retain_not_supported, "retain is not available");
      return;
    }

    Session& session = *conn.session;
    if (p.qos == QoS::exactly_once) {
      if (session.has_inbound_qos2(p.packet_id)) {
        // A retransmission of a message already received: answer again, route nothing.
        acknowledge(conn, mqtt::PacketType::pubrec, p.packet_id, ReasonCode::success);
        return;
      }
    }
    if (p.qos != QoS::at_most_once && session.inbound_qos2_count() + conn.acks_pending >= config.receive_maximum) {
      close_with(conn, ReasonCode::receive_maximum_exceeded, "more QoS 1/2 messages in flight than announced");
      return;
    }

    if (topic.starts_with(kStreamsRoot)) {
      if (!policy.may_publish(conn.identity(), topic)) {
        ++stats.dropped_not_authorized;
      } else {
        answer_stream_read(conn, p, topic);
      }
      if (p.qos == QoS::at_least_once) acknowledge(conn, mqtt::PacketType::puback, p.packet_id, ReasonCode::success);
      if (p.qos == QoS::exactly_once) {
        session.add_inbound_qos2(p.packet_id);
        acknowledge(conn, mqtt::PacketType::pubrec, p.packet_id, ReasonCode::success);
      }
      return;
    }

    // A QoS 2 PUBLISH's deliveries and its packet id are committed together: were a crash
    // to keep the deliveries and lose the id, the publisher's retransmission would be
    // routed a second time.
    std::optional<AtomicWrites> atomic;
    if (p.qos == QoS::exactly_once) atomic.emplace(store);

    // '$' topics belong to the broker (§4.7.2, DESIGN §2); dead letters and services' own
    // log lines ($tern/logs/{service}/{level}) are the exceptions, still subject to ACLs.
    // The broker's own log lines ($tern/logs/{node}/...) are not for clients to imitate.
    const bool allowed = (!topic.starts_with('$') || topic.starts_with("$dlq/") || is_service_log_topic(topic)) &&
                         policy.may_publish(conn.identity(), topic);
    ReasonCode result = ReasonCode::success;
    PublishVerdict verdict;
    if (allowed) verdict = policy.check_publish(conn.identity(), topic, p.payload, p.properties.user_properties);
    if (verdict.pause_reading.count() > 0) pause_reading(conn, verdict.pause_reading);
    if (!allowed) {
      ++stats.dropped_not_authorized;
      ++stats.publishes_refused_not_authorized;
      result = ReasonCode::not_authorized;
      log::debug(kLog, "{} may not publish to {}", describe(conn), topic);
    } else if (verdict.reason != 0) {
      result = static_cast<ReasonCode>(verdict.reason);
      count_refusal(result);
      log::debug(kLog, "{}: PUBLISH to {} refused: {} ({})", describe(conn), topic, mqtt::to_string(result), verdict.why);
      if (!verdict.dead_letter_topic.empty()) {
        auto dead = std::make_shared<Message>();
        dead->topic = verdict.dead_letter_topic;
        dead->payload = p.payload;
        dead->qos = p.qos;
        copy_properties(*dead, p.properties);
        mqtt::append_user_property(dead->user_properties, "tern-error", verdict.why);
        mqtt::append_user_property(dead->user_properties, "tern-topic", topic);
        append_to_streams(dead);
        route(dead, nullptr);
        if (find_connection(conn.id) == nullptr) return;
      }
    } else {
      ++stats.messages_received_qos[static_cast<std::size_t>(p.qos)];
      auto m = take_message();
      m->topic = topic;
      m->payload = p.payload;
      m->qos = p.qos;
      m->retain = p.retain;
      copy_properties(*m, p.properties);
      if (p.properties.message_expiry_interval) {
        m->expires_at = clock.now() + std::chrono::seconds(*p.properties.message_expiry_interval);
      }
      m->origin_client_id = conn.identity().client_id;
      for (const auto& [key, value] : verdict.add_user_properties) mqtt::append_user_property(m->user_properties, key, value);
      if (p.retain) set_retained(m);
      const ConnectionId id = conn.id;
      append_to_streams(m);
      const std::uint64_t deliveries_before = tracer != nullptr ? stats.messages_sent + stats.queued_total : 0;
      route(m, conn.session);
      if (tracer != nullptr) trace_publish(*m, conn.identity().client_id, deliveries_before);
      if (find_connection(id) == nullptr) return;  // routing may close connections (queue policy)
    }
    if (p.qos == QoS::at_least_once) {
      acknowledge(conn, mqtt::PacketType::puback, p.packet_id, result);
    } else if (p.qos == QoS::exactly_once) {
      if (!mqtt::is_error(result)) {
        session.add_inbound_qos2(p.packet_id);
        if (persistent(session)) store.save_inbound_qos2(session.client_id(), p.packet_id);
      }
      acknowledge(conn, mqtt::PacketType::pubrec, p.packet_id, result);
    }
  }

  void trace_publish(const Message& m, std::string_view client_id, std::uint64_t deliveries_before) {
    std::string_view traceparent;
    mqtt::for_each_user_property(m.user_properties, [&](std::string_view k, std::string_view v) {
      if (k == "traceparent") traceparent = v;
    });
    if (traceparent.empty()) return;
    Tracer::PublishSpan span;
    span.traceparent = traceparent;
    span.topic = m.topic;
    span.client_id = client_id;
    span.received = received_at;
    span.routed = clock.now();
    span.deliveries = static_cast<std::size_t>(stats.messages_sent + stats.queued_total - deliveries_before);
    span.qos = static_cast<std::uint8_t>(m.qos);
    tracer->publish_routed(span);
  }

  void count_refusal(ReasonCode rc) {
    switch (rc) {
      case ReasonCode::not_authorized: ++stats.publishes_refused_not_authorized; break;
      case ReasonCode::packet_too_large: ++stats.publishes_refused_too_large; break;
      case ReasonCode::message_rate_too_high: ++stats.publishes_refused_rate; break;
      case ReasonCode::quota_exceeded: ++stats.publishes_refused_quota; break;
      case ReasonCode::payload_format_invalid: ++stats.publishes_refused_payload; break;
      default: ++stats.publishes_refused_other; break;
    }
  }

  // Backpressure on a fast publisher: its socket is not read for a while, so TCP slows it.
  void pause_reading(Connection& conn, std::chrono::milliseconds how_long) {
    if (conn.reading_paused) return;
    conn.reading_paused = true;
    transport.set_reading(conn.id, false);
    const ConnectionId id = conn.id;
    timers.schedule(how_long, [this, id] {
      Connection* c = find_connection(id);
      if (c == nullptr) return;
      c->reading_paused = false;
      transport.set_reading(id, true);
    });
  }

  // PUBACK / PUBREC for a received message: with a durable store, only once everything
  // the message caused (queue entries, retained, QoS 2 state) is on disk.
  void acknowledge(Connection& conn, mqtt::PacketType type, std::uint16_t packet_id, ReasonCode rc) {
    if (!store.defers_acknowledgements()) {
      send_pub_ack(conn, type, packet_id, rc);
      return;
    }
    // A QoS 1 message counts against our receive maximum until its PUBACK; a QoS 2 one is
    // already counted in the session's inbound QoS 2 state.
    const bool inbound = type == mqtt::PacketType::puback;
    if (inbound) ++conn.acks_pending;
    store.when_durable([this, id = conn.id, type, packet_id, rc, inbound] {
      Connection* c = find_connection(id);
      if (c == nullptr) return;
      if (inbound) --c->acks_pending;
      send_pub_ack(*c, type, packet_id, rc);
    });
  }

  void send_pub_ack(Connection& conn, mqtt::PacketType type, std::uint16_t id, ReasonCode rc) {
    mqtt::PubAck a;
    a.type = type;
    a.packet_id = id;
    a.reason_code = rc;
    send(conn, a);
  }

  void on_ack(Connection& conn, const mqtt::PubAck& a) {
    Session& session = *conn.session;
    auto find = [&](InflightMessage::Stage stage) {
      return std::find_if(session.inflight.begin(), session.inflight.end(), [&](const InflightMessage& m) {
        return m.packet_id == a.packet_id && m.stage == stage;
      });
    };
    switch (a.type) {
      case mqtt::PacketType::puback: {
        auto it = find(InflightMessage::Stage::awaiting_puback);
        if (it != session.inflight.end()) {
          unstore_delivery(session, it->delivery);
          session.inflight.erase(it);
          session.inflight.shrink_if_empty();
          pump(session);
        }
        break;
      }
      case mqtt::PacketType::pubrec: {
        auto it = find(InflightMessage::Stage::awaiting_pubrec);
        if (it == session.inflight.end()) {
          send_pub_ack(conn, mqtt::PacketType::pubrel, a.packet_id, ReasonCode::packet_identifier_not_found);
          break;
        }
        if (mqtt::is_error(a.reason_code)) {  // the receiver refused it: the flow ends here
          unstore_delivery(session, it->delivery);
          session.inflight.erase(it);
          session.inflight.shrink_if_empty();
          pump(session);
          break;
        }
        it->stage = InflightMessage::Stage::awaiting_pubcomp;
        it->delivery.message.reset();  // PUBREL carries no message: release it early
        if (it->delivery.seq != 0) {
          // PUBREL only once "released" is durable: otherwise a restart would send the
          // PUBLISH again, which the receiver, having already passed it on, would take as new.
          store_delivery(session, it->delivery, QueuedRecord::Stage::awaiting_pubcomp, it->packet_id);
          acknowledge(conn, mqtt::PacketType::pubrel, a.packet_id, ReasonCode::success);
        } else {
          send_pub_ack(conn, mqtt::PacketType::pubrel, a.packet_id, ReasonCode::success);
        }
        break;
      }
      case mqtt::PacketType::pubrel: {
        ReasonCode rc = ReasonCode::success;
        if (session.remove_inbound_qos2(a.packet_id)) {
          if (persistent(session)) store.remove_inbound_qos2(session.client_id(), a.packet_id);
        } else {
          rc = ReasonCode::packet_identifier_not_found;
        }
        send_pub_ack(conn, mqtt::PacketType::pubcomp, a.packet_id, rc);
        break;
      }
      case mqtt::PacketType::pubcomp: {
        auto it = find(InflightMessage::Stage::awaiting_pubcomp);
        if (it != session.inflight.end()) {
          unstore_delivery(session, it->delivery);
          session.inflight.erase(it);
          session.inflight.shrink_if_empty();
          pump(session);
        }
        break;
      }
      default:
        break;
    }
  }

  void on_subscribe(Connection& conn, const mqtt::Subscribe& s) {
    Session& session = *conn.session;
    const bool v5 = conn.version == Version::v5;
    std::uint32_t subscription_id = 0;
    bool has_id = false;
    mqtt::for_each_subscription_identifier(s.properties.subscription_identifiers, [&](std::uint32_t id) {
      subscription_id = id;
      has_id = true;
    });
    mqtt::Suback ack;
    ack.packet_id = s.packet_id;
    ack.reason_codes.reserve(s.topics.size());
    struct Retained {
      std::string filter;
      StoredSubscription sub;
    };
    std::vector<Retained> send_retained_for;
    for (const mqtt::TopicSubscription& t : s.topics) {
      SharedSubscription shared;
      bool shared_ok = true;
      const bool is_shared = parse_shared_subscription(t.filter, shared, shared_ok);
      const std::string_view plain = is_shared ? shared.filter : t.filter;
      ReasonCode rc = static_cast<ReasonCode>(t.options.qos);
      if (is_shared && !shared_ok) {
        rc = ReasonCode::topic_filter_invalid;
      } else if (is_shared && t.options.no_local) {
        close_with(conn, ReasonCode::protocol_error, "no local on a shared subscription");
        return;
      } else if (is_shared && !config.shared_subscriptions) {
        rc = ReasonCode::shared_subscriptions_not_supported;
      } else if (!config.wildcard_subscriptions && plain.find_first_of("+#") != std::string_view::npos) {
        rc = ReasonCode::wildcard_subscriptions_not_supported;
      } else if (has_id && !config.subscription_identifiers) {
        rc = ReasonCode::subscription_identifiers_not_supported;
      } else if (!policy.may_subscribe(conn.identity(), t.filter)) {
        rc = ReasonCode::not_authorized;
      } else if (const std::size_t limit = policy.max_subscriptions(conn.identity());
                 limit > 0 && session.subscriptions.size() >= limit && !session.subscriptions.contains(t.filter)) {
        rc = ReasonCode::quota_exceeded;
      }
      if (mqtt::is_error(rc)) ++stats.subscriptions_refused;
      if (!v5 && mqtt::is_error(rc)) rc = ReasonCode::unspecified_error;  // 3.1.1: 0x80
      ack.reason_codes.push_back(rc);
      if (mqtt::is_error(rc)) continue;

      StoredSubscription sub;
      sub.filter = std::string(t.filter);
      sub.options = t.options;
      sub.subscription_id = subscription_id;
      const bool existed = session.subscriptions.contains(t.filter);
      add_subscription(session, sub);
      const auto rh = t.options.retain_handling;
      if (!is_shared && (rh == mqtt::RetainHandling::send_on_subscribe ||
                         (rh == mqtt::RetainHandling::send_if_new && !existed))) {
        send_retained_for.push_back(Retained{std::string(plain), sub});
      }
    }
    send(conn, ack);
    persist_session(session);
    for (const Retained& r : send_retained_for) send_retained(session, r.filter, r.sub);
  }

  void on_unsubscribe(Connection& conn, const mqtt::Unsubscribe& u) {
    Session& session = *conn.session;
    mqtt::Unsuback ack;
    ack.packet_id = u.packet_id;
    for (std::string_view filter : u.filters) {
      auto it = session.subscriptions.find(filter);
      if (it == session.subscriptions.end()) {
        ack.reason_codes.push_back(ReasonCode::no_subscription_existed);
        continue;
      }
      remove_from_tree(it->first, session.key);
      session.subscriptions.erase(it);
      ack.reason_codes.push_back(ReasonCode::success);
    }
    send(conn, ack);
    persist_session(session);
  }

  void on_disconnect(Connection& conn, const mqtt::Disconnect& d) {
    Session& session = *conn.session;
    if (d.properties.session_expiry_interval) {
      if (session.expiry_interval == 0 && *d.properties.session_expiry_interval != 0) {
        close_with(conn, ReasonCode::protocol_error, "session expiry set on DISCONNECT after 0 on CONNECT");
        return;
      }
      session.expiry_interval = std::min(*d.properties.session_expiry_interval, config.max_session_expiry);
      persist_session(session);
    }
    conn.will_cleared = d.reason_code != ReasonCode::disconnect_with_will;
    log::debug(kLog, "{} disconnected ({})", describe(conn), mqtt::to_string(d.reason_code));
    close_connection(conn, false);
  }
};

// -------------------------------------------------------------------- Broker

Broker::Broker(BrokerConfig config, Transport& transport, Timers& timers, Clock& clock, Store& store,
               Policy& policy)
    : impl_(std::make_unique<Impl>(std::move(config), transport, timers, clock, store, policy)) {}

Broker::~Broker() = default;

bool Broker::connection_opened(ConnectionId id, std::string peer, std::optional<std::string> transport_identity) {
  Impl& b = *impl_;
  if (b.shutting_down || b.connections.size() >= b.config.max_connections) {
    ++b.stats.connections_refused;
    log::warn(kLog, "refusing connection from {}: {}", peer,
              b.shutting_down ? "shutting down" : "too many connections");
    return false;
  }
  if (b.connections.find(id) != nullptr) return false;  // the id is in use: the transport's mistake, refused
  auto owned = std::make_unique<Connection>();
  Connection& conn = *owned;
  conn.id = id;
  conn.rare = std::make_unique<ConnectionRare>();
  conn.rare->own_identity.peer = std::move(peer);
  conn.rare->own_identity.transport_identity = std::move(transport_identity);
  b.connections.insert(std::move(owned));
  conn.last_activity = b.clock.now();
  b.set_deadline(conn, conn.last_activity + b.config.connect_timeout);
  ++b.stats.connections_current;
  ++b.stats.connections_total;
  return true;
}

std::size_t Broker::data_received(ConnectionId id, std::string_view bytes) {
  Impl& b = *impl_;
  Connection* conn = b.find_connection(id);
  if (conn == nullptr) return bytes.size();
  if (conn->state == Connection::State::awaiting_connect && b.authenticating.contains(id)) return 0;
  conn->last_activity = b.clock.now();
  b.received_at = conn->last_activity;
  std::size_t offset = 0;
  while (offset < bytes.size()) {
    auto frame = mqtt::parse_frame(bytes.substr(offset), b.config.max_packet_size);
    if (!frame) {
      if (conn->state == Connection::State::awaiting_connect) {
        ++b.stats.protocol_errors;
        log::warn(kLog, "closing {}: {} ({})", b.describe(*conn), mqtt::to_string(frame.error().code),
                  frame.error().what);
        b.close_connection(*conn, true);
      } else {
        b.close_with(*conn, frame.error().code, frame.error().what);
      }
      return bytes.size();
    }
    if (frame->size == 0) break;
    b.stats.bytes_received += frame->size;
    offset += frame->size;
    b.handle(*conn, *frame);
    conn = b.find_connection(id);
    if (conn == nullptr) return bytes.size();
    // Still awaiting CONNECT after handling one: its authentication is under way, and
    // what follows waits with the transport until the verdict.
    if (conn->state == Connection::State::awaiting_connect) break;
  }
  return offset;
}

void Broker::connection_lost(ConnectionId id) {
  Impl& b = *impl_;
  Connection* conn = b.find_connection(id);
  if (conn == nullptr) return;
  log::debug(kLog, "{} lost", b.describe(*conn));
  b.close_connection(*conn, false);
}

void Broker::connection_drained(ConnectionId id) {
  Impl& b = *impl_;
  Connection* conn = b.find_connection(id);
  if (conn == nullptr || conn->session == nullptr) return;
  b.pump(*conn->session);
}

void Broker::shutdown() {
  Impl& b = *impl_;
  b.shutting_down = true;
  if (b.sys_timer) {
    b.timers.cancel(b.sys_timer);
    b.sys_timer = 0;
  }
  std::vector<ConnectionId> ids;
  ids.reserve(b.connections.size());
  b.connections.for_each([&ids](const Connection& c) { ids.push_back(c.id); });
  for (ConnectionId id : ids) {
    Connection* conn = b.find_connection(id);
    if (conn == nullptr) continue;
    // A server shutting down is not the client's fault: wills are not published.
    conn->will_cleared = true;
    if (conn->state == Connection::State::connected && conn->version == Version::v5) {
      mqtt::Disconnect d;
      d.reason_code = ReasonCode::server_shutting_down;
      b.send(*conn, d);
    }
    b.close_connection(*conn, true);
  }
}

const BrokerStats& Broker::stats() const noexcept { return impl_->stats; }

void Broker::set_tracer(Tracer* tracer) noexcept { impl_->tracer = tracer; }

void Broker::set_sys_contributor(SysContributor contributor) { impl_->sys_contributor = std::move(contributor); }

void Broker::publish_internal(std::string_view topic, std::string_view payload, int qos, bool retain) {
  auto m = std::make_shared<Message>();
  m->topic = topic;
  m->payload = payload;
  m->qos = static_cast<mqtt::QoS>(qos);
  m->retain = retain;
  if (retain) impl_->set_retained(m);
  impl_->route(m, nullptr);
}

std::vector<ClientInfo> Broker::clients() const {
  std::vector<ClientInfo> out;
  out.reserve(impl_->sessions.size());
  impl_->sessions.for_each([&out](const Session& s) {
    ClientInfo c;
    c.client_id = s.client_id();
    c.connected = s.connection != nullptr;
    if (s.connection != nullptr) c.peer = s.connection->identity().peer;
    c.protocol_version = static_cast<int>(s.version);
    c.session_expiry_interval = s.expiry_interval;
    c.subscriptions = s.subscriptions.size();
    c.queued_messages = s.queue.size();
    c.queued_bytes = s.queued_bytes;
    c.inflight_messages = s.inflight.size();
    out.push_back(std::move(c));
  });
  std::sort(out.begin(), out.end(), [](const ClientInfo& a, const ClientInfo& b) { return a.client_id < b.client_id; });
  return out;
}

std::vector<SubscriptionInfo> Broker::subscriptions() const {
  std::vector<SubscriptionInfo> out;
  impl_->sessions.for_each([&out](const Session& s) {
    for (const auto& [filter, sub] : s.subscriptions) {
      out.push_back(SubscriptionInfo{s.client_id(), filter, static_cast<int>(sub.options.qos), sub.subscription_id});
    }
  });
  std::sort(out.begin(), out.end(), [](const SubscriptionInfo& a, const SubscriptionInfo& b) {
    return std::tie(a.client_id, a.filter) < std::tie(b.client_id, b.filter);
  });
  return out;
}

std::size_t Broker::queued_messages_total() const {
  std::size_t n = 0;
  impl_->sessions.for_each([&n](const Session& s) { n += s.queue.size(); });
  return n;
}

std::size_t Broker::inflight_messages_total() const {
  std::size_t n = 0;
  impl_->sessions.for_each([&n](const Session& s) { n += s.inflight.size(); });
  return n;
}

}  // namespace tern::broker
