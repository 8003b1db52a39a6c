// The broker core driven without sockets: a fake transport records what the broker
// sends, a fake clock and fake timers make time explicit.
#include "broker/broker.hpp"
#include "fakes.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "broker/stream_request.hpp"
#include "mqtt/codec.hpp"

namespace tern::broker {
namespace {

using namespace std::chrono_literals;
using mqtt::QoS;
using mqtt::ReasonCode;
using mqtt::Version;

using fakes::FakeClock;
using fakes::FakeTimers;

class FakeTransport final : public Transport {
 public:
  void send(ConnectionId id, SharedBytes bytes) override { out_[id] += *bytes; }
  std::size_t queued_bytes(ConnectionId id) const override { return stalled_.contains(id) ? 1u << 30 : 0; }
  void close(ConnectionId id) override { closed_.insert(id); }
  void set_reading(ConnectionId, bool) override {}

  // Decodes and removes everything sent to `id` so far.
  std::vector<mqtt::Packet> take(ConnectionId id, Version v) {
    buffers_.push_back(std::move(out_[id]));
    out_[id].clear();
    return fakes::decode_packets(buffers_.back(), v);
  }
  bool closed(ConnectionId id) const { return closed_.contains(id); }
  std::set<ConnectionId> stalled_;

 private:
  std::map<ConnectionId, std::string> out_;
  std::set<ConnectionId> closed_;
  std::vector<std::string> buffers_;  // keep decoded views valid
};

std::string bytes_of(const mqtt::Packet& p, Version v) {
  std::string out;
  mqtt::encode(p, v, out);
  return out;
}

class BrokerTest : public ::testing::Test {
 protected:
  BrokerTest() : timers_(clock_) {}

  void make_broker() { broker_ = std::make_unique<Broker>(config_, transport_, timers_, clock_, store_, policy_); }

  void feed(ConnectionId id, const mqtt::Packet& p, Version v = Version::v5) {
    const std::string b = bytes_of(p, v);
    EXPECT_EQ(broker_->data_received(id, b), b.size());
  }

  // Opens a connection and completes CONNECT; returns the CONNACK.
  mqtt::Connack connect(ConnectionId id, std::string_view client_id, Version v = Version::v5, bool clean = true,
                        std::uint32_t session_expiry = 0, std::uint16_t keep_alive = 60) {
    EXPECT_TRUE(broker_->connection_opened(id, "127.0.0.1:" + std::to_string(id)));
    mqtt::Connect c;
    c.version = v;
    c.client_id = client_id;
    c.clean_start = clean;
    c.keep_alive = keep_alive;
    if (v == Version::v5 && session_expiry) c.properties.session_expiry_interval = session_expiry;
    feed(id, c, v);
    auto packets = transport_.take(id, v);
    EXPECT_GE(packets.size(), 1u);
    EXPECT_TRUE(std::holds_alternative<mqtt::Connack>(packets.at(0)));
    after_connack_.assign(packets.begin() + 1, packets.end());  // a resumed session's messages
    return std::get<mqtt::Connack>(packets.at(0));
  }

  // Subscribes; returns what followed the SUBACK (retained messages).
  std::vector<mqtt::Packet> subscribe(ConnectionId id, std::string_view filter, QoS qos, Version v = Version::v5) {
    mqtt::Subscribe s;
    s.packet_id = 1;
    s.topics.push_back({filter, {qos, false, false, mqtt::RetainHandling::send_on_subscribe}});
    feed(id, s, v);
    auto packets = transport_.take(id, v);
    EXPECT_FALSE(packets.empty());
    if (packets.empty()) return {};
    EXPECT_TRUE(std::holds_alternative<mqtt::Suback>(packets[0]));
    return {packets.begin() + 1, packets.end()};
  }

  void publish(ConnectionId id, std::string_view topic, std::string_view payload, QoS qos = QoS::at_most_once,
               std::uint16_t packet_id = 0) {
    mqtt::Publish p;
    p.topic = topic;
    p.payload = payload;
    p.qos = qos;
    p.packet_id = packet_id;
    feed(id, p);
  }

  BrokerConfig config_;
  FakeClock clock_;
  FakeTimers timers_;
  FakeTransport transport_;
  MemoryStore store_;
  AllowAllPolicy policy_;
  std::unique_ptr<Broker> broker_;
  std::vector<mqtt::Packet> after_connack_;
};

TEST_F(BrokerTest, ConnackAnnouncesLimitsAndAssignsClientId) {
  config_.receive_maximum = 20;
  config_.max_packet_size = 4096;
  config_.topic_alias_maximum = 7;
  make_broker();
  auto ack = connect(1, "");
  EXPECT_EQ(ack.reason_code, ReasonCode::success);
  EXPECT_EQ(ack.properties.receive_maximum, 20);
  EXPECT_EQ(ack.properties.maximum_packet_size, 4096u);
  EXPECT_EQ(ack.properties.topic_alias_maximum, 7);
  ASSERT_TRUE(ack.properties.assigned_client_identifier.has_value());
  EXPECT_FALSE(ack.properties.assigned_client_identifier->empty());
}

TEST_F(BrokerTest, KeepAliveAboveMaximumIsReplacedByServerKeepAlive) {
  config_.max_keep_alive = 5;
  make_broker();
  auto ack = connect(1, "a", Version::v5, true, 0, 60);
  EXPECT_EQ(ack.properties.server_keep_alive, 5);
}

TEST_F(BrokerTest, SilentClientIsClosedAfterOneAndAHalfKeepAlive) {
  make_broker();
  connect(1, "a", Version::v5, true, 0, 2);
  timers_.advance(2900ms);
  EXPECT_FALSE(transport_.closed(1));
  timers_.advance(200ms);
  EXPECT_TRUE(transport_.closed(1));
  auto packets = transport_.take(1, Version::v5);
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Disconnect>(packets[0]).reason_code, ReasonCode::keep_alive_timeout);
}

TEST_F(BrokerTest, ActivityPostponesKeepAliveTimeout) {
  make_broker();
  connect(1, "a", Version::v5, true, 0, 2);
  timers_.advance(2000ms);
  feed(1, mqtt::Pingreq{});
  timers_.advance(2000ms);
  EXPECT_FALSE(transport_.closed(1));
  timers_.advance(1100ms);
  EXPECT_TRUE(transport_.closed(1));
}

TEST_F(BrokerTest, ConnectionWithoutConnectIsClosedAfterTimeout) {
  config_.connect_timeout = 500ms;
  make_broker();
  ASSERT_TRUE(broker_->connection_opened(1, "peer"));
  timers_.advance(499ms);
  EXPECT_FALSE(transport_.closed(1));
  timers_.advance(2ms);
  EXPECT_TRUE(transport_.closed(1));
}

TEST_F(BrokerTest, IdleConnectionsShareOneTimer) {
  make_broker();
  for (ConnectionId id = 1; id <= 50; ++id) {
    std::string client_id = std::to_string(id);
    client_id.append("-idle");  // not "c" + to_string: GCC 12's -Wrestrict misfires on it
    connect(id, client_id, Version::v5, true, 0, 10);
  }
  EXPECT_EQ(timers_.pending(), 1u);
}

TEST_F(BrokerTest, EachSilentClientIsClosedAtItsOwnKeepAliveDeadline) {
  make_broker();
  connect(1, "slow", Version::v5, true, 0, 4);  // 6 s
  connect(2, "fast", Version::v5, true, 0, 2);  // 3 s
  connect(3, "mid", Version::v311, true, 0, 3);  // 4.5 s
  timers_.advance(2900ms);
  EXPECT_FALSE(transport_.closed(2));
  timers_.advance(200ms);
  EXPECT_TRUE(transport_.closed(2));
  EXPECT_FALSE(transport_.closed(3));
  timers_.advance(1300ms);
  EXPECT_FALSE(transport_.closed(3));
  timers_.advance(200ms);
  EXPECT_TRUE(transport_.closed(3));
  EXPECT_FALSE(transport_.closed(1));
  timers_.advance(1400ms);
  EXPECT_TRUE(transport_.closed(1));
  EXPECT_EQ(timers_.pending(), 0u);
}

TEST_F(BrokerTest, ClosedConnectionLeavesTheOthersDeadlinesIntact) {
  make_broker();
  connect(1, "early", Version::v5, true, 0, 2);  // 3 s: the earliest deadline
  connect(2, "late", Version::v5, true, 0, 4);   // 6 s
  mqtt::Disconnect d;
  feed(1, d);
  EXPECT_TRUE(transport_.closed(1));
  timers_.advance(5900ms);
  EXPECT_FALSE(transport_.closed(2));
  timers_.advance(200ms);
  EXPECT_TRUE(transport_.closed(2));
}

TEST_F(BrokerTest, MaxConnectionsRefusesTheNextOne) {
  config_.max_connections = 2;
  make_broker();
  EXPECT_TRUE(broker_->connection_opened(1, "p"));
  EXPECT_TRUE(broker_->connection_opened(2, "p"));
  EXPECT_FALSE(broker_->connection_opened(3, "p"));
  EXPECT_EQ(broker_->stats().connections_refused, 1u);
}

TEST_F(BrokerTest, OverlappingSubscriptionsDeliverOnceAtHighestQoS) {
  make_broker();
  connect(1, "sub");
  subscribe(1, "a/#", QoS::at_most_once);
  subscribe(1, "a/+", QoS::at_least_once);
  connect(2, "pub");
  publish(2, "a/b", "x", QoS::at_least_once, 7);
  auto packets = transport_.take(1, Version::v5);
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Publish>(packets[0]).qos, QoS::at_least_once);
}

TEST_F(BrokerTest, InflightWindowQueuesTheRestAndAckReleasesIt) {
  config_.max_inflight_out = 2;
  make_broker();
  connect(1, "sub", Version::v5, false, 300);
  subscribe(1, "t", QoS::at_least_once);
  connect(2, "pub");
  for (std::uint16_t i = 1; i <= 5; ++i) publish(2, "t", std::to_string(i), QoS::at_least_once, i);
  auto first = transport_.take(1, Version::v5);
  ASSERT_EQ(first.size(), 2u);
  mqtt::PubAck ack;
  ack.packet_id = std::get<mqtt::Publish>(first[0]).packet_id;
  feed(1, ack);
  auto next = transport_.take(1, Version::v5);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Publish>(next[0]).payload, "3");
}

// A QoS 1 PUBLISH is encoded once per route and each subscriber's packet id is patched
// into its copy: every subscriber must see its own ids, in its own sequence, and the
// bytes of the others' deliveries must not change under it.
// "prefix" + number, built so that GCC 12 raises no false -Wrestrict at -O3.
std::string numbered(std::string_view prefix, std::size_t n) {
  std::string out(prefix);
  out += std::to_string(n);
  return out;
}

TEST_F(BrokerTest, SharedEncodingGivesEachSubscriberItsOwnPacketIds) {
  make_broker();
  connect(1, "a", Version::v5);
  subscribe(1, "t", QoS::at_least_once);
  subscribe(1, "u", QoS::at_least_once);
  connect(3, "c", Version::v311);
  subscribe(3, "t", QoS::at_least_once, Version::v311);
  connect(4, "z", Version::v5);
  subscribe(4, "t", QoS::at_most_once);
  connect(2, "pub");
  // Moves a's packet ids ahead of c's: a has used ids 1 and 2, c none.
  publish(2, "u", "u1", QoS::at_least_once, 1);
  publish(2, "u", "u2", QoS::at_least_once, 2);
  ASSERT_EQ(transport_.take(1, Version::v5).size(), 2u);
  for (std::uint16_t i = 1; i <= 3; ++i) publish(2, "t", numbered("m", i), QoS::at_least_once, static_cast<std::uint16_t>(10 + i));
  auto a = transport_.take(1, Version::v5);
  auto c = transport_.take(3, Version::v311);
  auto z = transport_.take(4, Version::v5);
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(c.size(), 3u);
  ASSERT_EQ(z.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& pa = std::get<mqtt::Publish>(a[i]);
    const auto& pc = std::get<mqtt::Publish>(c[i]);
    const auto& pz = std::get<mqtt::Publish>(z[i]);
    const std::string payload = numbered("m", i + 1);
    EXPECT_EQ(pa.payload, payload);
    EXPECT_EQ(pc.payload, payload);
    EXPECT_EQ(pz.payload, payload);
    EXPECT_EQ(pa.packet_id, i + 3) << "a's ids continue after its two deliveries on u";
    EXPECT_EQ(pc.packet_id, i + 1) << "c's ids are its own";
    EXPECT_EQ(pa.qos, QoS::at_least_once);
    EXPECT_EQ(pc.qos, QoS::at_least_once);
    EXPECT_EQ(pz.qos, QoS::at_most_once);
  }
}

// Inbound message objects are reused once nothing holds the previous one: a retained
// message (held by the retained store) must keep its payload when later messages arrive.
TEST_F(BrokerTest, RetainedMessageSurvivesTheMessagesThatFollowIt) {
  make_broker();
  connect(2, "pub");
  mqtt::Publish p;
  p.topic = "r";
  p.payload = "kept";
  p.retain = true;
  feed(2, p);
  for (int i = 0; i < 5; ++i) publish(2, "r", numbered("later ", i));
  for (int i = 0; i < 5; ++i) publish(2, "other", numbered("x", i), QoS::at_least_once, static_cast<std::uint16_t>(i + 1));
  connect(1, "late");
  auto retained = subscribe(1, "r", QoS::at_most_once);
  ASSERT_EQ(retained.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Publish>(retained[0]).payload, "kept");
  EXPECT_EQ(std::get<mqtt::Publish>(retained[0]).topic, "r");
}

TEST_F(BrokerTest, FullQueueDropsOldestAndCounts) {
  config_.max_queued_messages = 3;
  make_broker();
  connect(1, "sub", Version::v5, false, 300);
  subscribe(1, "t", QoS::at_least_once);
  feed(1, mqtt::Disconnect{});
  connect(2, "pub");
  for (std::uint16_t i = 1; i <= 6; ++i) publish(2, "t", std::to_string(i), QoS::at_least_once, i);
  EXPECT_EQ(broker_->stats().dropped_queue_full, 3u);
  auto ack = connect(3, "sub", Version::v5, false, 300);
  EXPECT_TRUE(ack.session_present);
  auto packets = after_connack_;
  ASSERT_EQ(packets.size(), 3u);
  EXPECT_EQ(std::get<mqtt::Publish>(packets[0]).payload, "4");
  EXPECT_EQ(std::get<mqtt::Publish>(packets[2]).payload, "6");
}

TEST_F(BrokerTest, SlowReaderLosesQoS0ButPublisherIsNotBlocked) {
  make_broker();
  connect(1, "slow");
  subscribe(1, "t", QoS::at_most_once);
  connect(2, "fast");
  subscribe(2, "t", QoS::at_most_once);
  connect(3, "pub");
  transport_.stalled_.insert(1);
  for (int i = 0; i < 10; ++i) publish(3, "t", "x");
  EXPECT_EQ(transport_.take(2, Version::v5).size(), 10u);
  EXPECT_TRUE(transport_.take(1, Version::v5).empty());
  EXPECT_EQ(broker_->stats().dropped_qos0_backpressure, 10u);
}

TEST_F(BrokerTest, TakeoverClosesTheOldConnectionWith0x8E) {
  make_broker();
  connect(1, "same");
  connect(2, "same");
  EXPECT_TRUE(transport_.closed(1));
  auto packets = transport_.take(1, Version::v5);
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Disconnect>(packets[0]).reason_code, ReasonCode::session_taken_over);
  EXPECT_FALSE(transport_.closed(2));
}

TEST_F(BrokerTest, DelayedWillIsCancelledByReconnect) {
  make_broker();
  connect(9, "watcher");
  subscribe(9, "will/#", QoS::at_most_once);
  ASSERT_TRUE(broker_->connection_opened(1, "p"));
  mqtt::Connect c;
  c.client_id = "dev";
  c.clean_start = false;
  c.properties.session_expiry_interval = 60;
  mqtt::Will w;
  w.topic = "will/dev";
  w.payload = "gone";
  w.properties.will_delay_interval = 5;
  c.will = w;
  feed(1, c);
  broker_->connection_lost(1);
  timers_.advance(3s);
  connect(2, "dev", Version::v5, false, 60);
  timers_.advance(10s);
  EXPECT_TRUE(transport_.take(9, Version::v5).empty());
}

TEST_F(BrokerTest, WillIsSentAfterItsDelay) {
  make_broker();
  connect(9, "watcher");
  subscribe(9, "will/#", QoS::at_most_once);
  ASSERT_TRUE(broker_->connection_opened(1, "p"));
  mqtt::Connect c;
  c.client_id = "dev";
  c.properties.session_expiry_interval = 60;
  mqtt::Will w;
  w.topic = "will/dev";
  w.payload = "gone";
  w.properties.will_delay_interval = 5;
  c.will = w;
  feed(1, c);
  broker_->connection_lost(1);
  timers_.advance(4s);
  EXPECT_TRUE(transport_.take(9, Version::v5).empty());
  timers_.advance(2s);
  auto packets = transport_.take(9, Version::v5);
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Publish>(packets[0]).payload, "gone");
}

TEST_F(BrokerTest, SessionsAndRetainedSurviveABrokerThroughTheStore) {
  make_broker();
  connect(1, "keeper", Version::v5, false, 600);
  subscribe(1, "k/#", QoS::at_least_once);
  publish(1, "k/r", "kept", QoS::at_most_once);
  mqtt::Publish r;
  r.topic = "k/retained";
  r.payload = "value";
  r.retain = true;
  feed(1, r);
  broker_.reset();
  make_broker();
  auto ack = connect(2, "keeper", Version::v5, false, 600);
  EXPECT_TRUE(ack.session_present);
  connect(3, "pub");
  publish(3, "k/x", "after restart", QoS::at_least_once, 1);
  auto packets = transport_.take(2, Version::v5);
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Publish>(packets[0]).payload, "after restart");
  transport_.take(3, Version::v5);
  auto retained = subscribe(3, "k/retained", QoS::at_most_once);
  ASSERT_EQ(retained.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Publish>(retained[0]).payload, "value");
  EXPECT_TRUE(std::get<mqtt::Publish>(retained[0]).retain);
}

TEST_F(BrokerTest, SysTopicsArePublishedOnlyWhileSubscribed) {
  config_.sys_interval = std::chrono::seconds(1);
  make_broker();
  connect(1, "a");
  EXPECT_EQ(timers_.pending(), 1u);  // keep-alive only
  subscribe(1, "$SYS/broker/uptime", QoS::at_most_once);
  timers_.advance(1ms);
  EXPECT_EQ(transport_.take(1, Version::v5).size(), 1u);
  timers_.advance(1s);
  EXPECT_EQ(transport_.take(1, Version::v5).size(), 1u);
  mqtt::Unsubscribe u;
  u.packet_id = 3;
  u.filters.push_back("$SYS/broker/uptime");
  feed(1, u);
  transport_.take(1, Version::v5);
  EXPECT_EQ(timers_.pending(), 1u);  // the $SYS timer is gone again
}

TEST_F(BrokerTest, PacketBeforeConnectClosesWithoutConnack) {
  make_broker();
  ASSERT_TRUE(broker_->connection_opened(1, "p"));
  mqtt::Publish p;
  p.topic = "t";
  feed(1, p, Version::v311);
  EXPECT_TRUE(transport_.closed(1));
  EXPECT_TRUE(transport_.take(1, Version::v5).empty());
}

TEST_F(BrokerTest, QoS2ExceedingReceiveMaximumDisconnectsWith0x93) {
  config_.receive_maximum = 2;
  make_broker();
  connect(1, "pub");
  publish(1, "t", "1", QoS::exactly_once, 1);
  publish(1, "t", "2", QoS::exactly_once, 2);
  EXPECT_FALSE(transport_.closed(1));
  mqtt::Publish p;
  p.topic = "t";
  p.qos = QoS::exactly_once;
  p.packet_id = 3;
  const std::string b = bytes_of(p, Version::v5);
  broker_->data_received(1, b);
  EXPECT_TRUE(transport_.closed(1));
  auto packets = transport_.take(1, Version::v5);
  ASSERT_FALSE(packets.empty());
  EXPECT_EQ(std::get<mqtt::Disconnect>(packets.back()).reason_code, ReasonCode::receive_maximum_exceeded);
}

}  // namespace
}  // namespace tern::broker

namespace tern::broker {
namespace {

// A store whose writes become durable only when the test says so.
class DeferringStore final : public Store {
 public:
  void save_session(const SessionRecord& s) override { inner_.save_session(s); }
  void remove_session(const std::string& id) override { inner_.remove_session(id); }
  void save_retained(const MessagePtr& m) override { inner_.save_retained(m); }
  void remove_retained(const std::string& t) override { inner_.remove_retained(t); }
  void save_queued(const QueuedRecord& r) override { inner_.save_queued(r); }
  void remove_queued(const std::string& id, std::uint64_t seq) override { inner_.remove_queued(id, seq); }
  void save_inbound_qos2(const std::string& id, std::uint16_t p) override { inner_.save_inbound_qos2(id, p); }
  void remove_inbound_qos2(const std::string& id, std::uint16_t p) override { inner_.remove_inbound_qos2(id, p); }
  void append_stream(const std::string& st, const StreamEvent& e) override { inner_.append_stream(st, e); }
  std::vector<StreamEvent> read_stream(const std::string& st, std::uint64_t o, std::int64_t t, std::size_t n) override {
    return inner_.read_stream(st, o, t, n);
  }
  void trim_stream(const std::string& st, std::int64_t t, std::uint64_t b) override { inner_.trim_stream(st, t, b); }
  std::uint64_t stream_end(const std::string& st) override { return inner_.stream_end(st); }
  void when_durable(std::function<void()> fn) override { waiting_.push_back(std::move(fn)); }
  bool defers_acknowledgements() const override { return true; }
  std::vector<SessionRecord> load_sessions() override { return inner_.load_sessions(); }
  std::vector<MessagePtr> load_retained() override { return inner_.load_retained(); }
  std::vector<QueuedRecord> load_queued() override { return inner_.load_queued(); }
  std::vector<std::pair<std::string, std::uint16_t>> load_inbound_qos2() override { return inner_.load_inbound_qos2(); }
  void commit() {
    auto fns = std::move(waiting_);
    waiting_.clear();
    for (auto& fn : fns) fn();
  }
  MemoryStore inner_;

 private:
  std::vector<std::function<void()>> waiting_;
};

TEST(BrokerDurability, PubackWaitsForTheStoreAndQueuedMessagesSurviveARestart) {
  FakeClock clock;
  FakeTimers timers(clock);
  FakeTransport transport;
  DeferringStore store;
  AllowAllPolicy policy;
  BrokerConfig config;
  auto broker = std::make_unique<Broker>(config, transport, timers, clock, store, policy);

  auto feed = [&](ConnectionId id, const mqtt::Packet& p) {
    std::string b = bytes_of(p, Version::v5);
    broker->data_received(id, b);
  };
  auto connect = [&](ConnectionId id, std::string_view cid) {
    broker->connection_opened(id, "peer");
    mqtt::Connect c;
    c.client_id = cid;
    c.clean_start = false;
    c.properties.session_expiry_interval = 3600;
    feed(id, c);
  };
  connect(1, "sub");
  mqtt::Subscribe s;
  s.packet_id = 1;
  s.topics.push_back({"t", {QoS::at_least_once, false, false, mqtt::RetainHandling::send_on_subscribe}});
  feed(1, s);
  broker->connection_lost(1);
  connect(2, "pub");
  transport.take(2, Version::v5);
  mqtt::Publish p;
  p.topic = "t";
  p.payload = "kept";
  p.qos = QoS::at_least_once;
  p.packet_id = 42;
  feed(2, p);
  EXPECT_TRUE(transport.take(2, Version::v5).empty()) << "PUBACK before the message was durable";
  store.commit();
  auto acks = transport.take(2, Version::v5);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(std::get<mqtt::PubAck>(acks[0]).packet_id, 42);

  // A new broker on the same store: the queued message is delivered on reconnect.
  broker = std::make_unique<Broker>(config, transport, timers, clock, store, policy);
  connect(3, "sub");
  auto packets = transport.take(3, Version::v5);
  ASSERT_EQ(packets.size(), 2u);
  EXPECT_TRUE(std::get<mqtt::Connack>(packets[0]).session_present);
  EXPECT_EQ(std::get<mqtt::Publish>(packets[1]).payload, "kept");

  // Once acknowledged it is gone from the store.
  mqtt::PubAck ack;
  ack.packet_id = std::get<mqtt::Publish>(packets[1]).packet_id;
  feed(3, ack);
  EXPECT_TRUE(store.inner_.load_queued().empty());
}

}  // namespace
}  // namespace tern::broker

namespace tern::broker {
namespace {

std::map<std::string, std::string> user_properties(const mqtt::Publish& p) {
  std::map<std::string, std::string> out;
  mqtt::for_each_user_property(p.properties.user_properties,
                               [&](std::string_view k, std::string_view v) { out[std::string(k)] = std::string(v); });
  return out;
}

TEST_F(BrokerTest, StreamReadAnswersEventsInOrderFromAnOffset) {
  config_.streams.push_back(StreamConfig{"doors", "door/#", std::chrono::seconds(0), 0});
  make_broker();
  connect(1, "producer");
  for (int i = 0; i < 5; ++i) publish(1, "door/front", "event" + std::to_string(i), QoS::at_least_once, static_cast<std::uint16_t>(i + 1));
  publish(1, "window/front", "not captured", QoS::at_most_once);
  connect(2, "reader");
  subscribe(2, "replies/reader", QoS::at_least_once);
  mqtt::Publish req;
  req.topic = "$tern/streams/doors/read";
  req.payload = R"({"from": 2, "max": 2})";
  req.properties.response_topic = "replies/reader";
  req.properties.correlation_data = "c1";
  feed(2, req);
  auto packets = transport_.take(2, Version::v5);
  ASSERT_EQ(packets.size(), 3u);
  auto first = std::get<mqtt::Publish>(packets[0]);
  EXPECT_EQ(first.payload, "event2");
  EXPECT_EQ(first.properties.correlation_data, "c1");
  EXPECT_EQ(user_properties(first)["tern-offset"], "2");
  EXPECT_EQ(user_properties(first)["tern-topic"], "door/front");
  EXPECT_EQ(std::get<mqtt::Publish>(packets[1]).payload, "event3");
  auto end = user_properties(std::get<mqtt::Publish>(packets[2]));
  EXPECT_EQ(end["tern-end"], "true");
  EXPECT_EQ(end["tern-next-offset"], "4");
}

TEST_F(BrokerTest, StreamReadOfUnknownStreamAnswersWithError) {
  make_broker();
  connect(2, "reader");
  subscribe(2, "r", QoS::at_most_once);
  mqtt::Publish req;
  req.topic = "$tern/streams/nope/read";
  req.properties.response_topic = "r";
  feed(2, req);
  auto packets = transport_.take(2, Version::v5);
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(user_properties(std::get<mqtt::Publish>(packets[0]))["tern-error"], "unknown stream");
}

TEST_F(BrokerTest, StreamRetentionDropsOldEvents) {
  config_.streams.push_back(StreamConfig{"s", "s/#", std::chrono::seconds(10), 0});
  make_broker();
  connect(1, "p");
  publish(1, "s/1", "old", QoS::at_most_once);
  // The fake clock's wall time is the real one; retention compares with it, so make the
  // event old by trimming with a cut-off in the future instead.
  store_.trim_stream("s", clock_.wall_ms() + 1000, 0);
  EXPECT_EQ(store_.read_stream("s", 0, 0, 10).size(), 0u);
  EXPECT_EQ(store_.stream_end("s"), 0u);
}

TEST_F(BrokerTest, ClientsCannotPublishIntoSysButMayDeadLetter) {
  make_broker();
  connect(1, "c");
  subscribe(1, "$SYS/#", QoS::at_most_once);
  subscribe(1, "$dlq/#", QoS::at_most_once);
  transport_.take(1, Version::v5);
  connect(2, "p");
  publish(2, "$SYS/fake", "x", QoS::at_least_once, 1);
  auto acks = transport_.take(2, Version::v5);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(std::get<mqtt::PubAck>(acks[0]).reason_code, ReasonCode::not_authorized);
  publish(2, "$dlq/svc/t", "dead", QoS::at_least_once, 2);
  auto got = transport_.take(1, Version::v5);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Publish>(got[0]).topic, "$dlq/svc/t");
}

TEST_F(BrokerTest, ServicesMayForwardLogLinesButNotAsTheBroker) {
  make_broker();  // node_name "ternd"
  connect(1, "c");
  subscribe(1, "$tern/logs/#", QoS::at_most_once);
  transport_.take(1, Version::v5);
  connect(2, "svc");
  publish(2, "$tern/logs/ternd/error", "fake", QoS::at_least_once, 1);
  auto acks = transport_.take(2, Version::v5);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(std::get<mqtt::PubAck>(acks[0]).reason_code, ReasonCode::not_authorized);
  publish(2, "$tern/logs/terndx/warning", "a service named terndx", QoS::at_least_once, 2);
  publish(2, "$tern/other", "x", QoS::at_least_once, 3);
  acks = transport_.take(2, Version::v5);
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(std::get<mqtt::PubAck>(acks[0]).reason_code, ReasonCode::success);
  EXPECT_EQ(std::get<mqtt::PubAck>(acks[1]).reason_code, ReasonCode::not_authorized);
  auto got = transport_.take(1, Version::v5);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Publish>(got[0]).topic, "$tern/logs/terndx/warning");
}

TEST(StreamRequest, ParsesMembersAndNamesErrors) {
  auto r = parse_stream_read_request(R"({"from": 7, "max": 3, "from_time": "2026-11-28T01:02:03.250Z"})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->from_offset, 7u);
  EXPECT_EQ(r->max_count, 3u);
  EXPECT_EQ(r->from_time_ms, 1795827723250);
  EXPECT_TRUE(parse_stream_read_request("").has_value());
  auto bad = parse_stream_read_request(R"({"form": 1})");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().find("form"), std::string::npos);
  EXPECT_FALSE(parse_stream_read_request("[1]").has_value());
  EXPECT_FALSE(parse_stream_read_request(R"({"from": -1})").has_value());
  EXPECT_FALSE(parse_utc_timestamp("2026-13-01T00:00:00Z").has_value());
}

}  // namespace
}  // namespace tern::broker

namespace tern::broker {
namespace {

TEST(BrokerDurability, QoS2AwaitingItsDurablePubrecCountsOnceAgainstReceiveMaximum) {
  FakeClock clock;
  FakeTimers timers(clock);
  FakeTransport transport;
  DeferringStore store;
  AllowAllPolicy policy;
  BrokerConfig config;
  config.receive_maximum = 4;
  Broker broker(config, transport, timers, clock, store, policy);
  broker.connection_opened(1, "peer");
  mqtt::Connect c;
  c.client_id = "pub";
  std::string b = bytes_of(c, Version::v5);
  broker.data_received(1, b);
  for (std::uint16_t id = 1; id <= 4; ++id) {
    mqtt::Publish p;
    p.topic = "t";
    p.qos = QoS::exactly_once;
    p.packet_id = id;
    b = bytes_of(p, Version::v5);
    broker.data_received(1, b);
  }
  EXPECT_FALSE(transport.closed(1)) << "4 QoS 2 messages in flight are within a receive maximum of 4";
  store.commit();
  auto packets = transport.take(1, Version::v5);
  ASSERT_EQ(packets.size(), 5u);  // CONNACK and four PUBREC
  EXPECT_EQ(std::get<mqtt::PubAck>(packets[4]).type, mqtt::PacketType::pubrec);
}

}  // namespace
}  // namespace tern::broker

namespace tern::broker {
namespace {

struct RecordingTracer final : Tracer {
  void publish_routed(const PublishSpan& span) override {
    traceparents.emplace_back(span.traceparent);
    deliveries.push_back(span.deliveries);
  }
  std::vector<std::string> traceparents;
  std::vector<std::size_t> deliveries;
};

TEST_F(BrokerTest, TracedPublishesProduceOneSpanWithTheirDeliveries) {
  make_broker();
  RecordingTracer tracer;
  broker_->set_tracer(&tracer);
  connect(1, "a");
  subscribe(1, "t/#", QoS::at_most_once);
  connect(2, "b");
  subscribe(2, "t/#", QoS::at_least_once);
  connect(3, "pub");
  mqtt::Publish p;
  p.topic = "t/x";
  p.payload = "traced";
  std::string props;
  mqtt::append_user_property(props, "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  p.properties.user_properties = props;
  feed(3, p);
  publish(3, "t/y", "untraced");
  ASSERT_EQ(tracer.traceparents.size(), 1u);
  EXPECT_EQ(tracer.traceparents[0], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  EXPECT_EQ(tracer.deliveries[0], 2u);
}

}  // namespace
}  // namespace tern::broker
