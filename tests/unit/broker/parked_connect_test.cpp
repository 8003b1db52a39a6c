// CONNECTs whose authentication finishes later (Policy::start_authentication): the
// broker parks the CONNECT, stops reading the connection, and completes or refuses it
// when the verdict comes; a verdict for a connection that has gone is ignored.
//
// The fake transport keeps the bytes the broker did not consume and offers them again
// when reading is resumed, on the next "loop turn" (run_posted()), as the net layer does.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "broker/broker.hpp"
#include "fakes.hpp"
#include "mqtt/codec.hpp"

namespace tern::broker {
namespace {

using namespace std::chrono_literals;
using mqtt::QoS;
using mqtt::ReasonCode;
using mqtt::Version;

using fakes::FakeClock;
using fakes::FakeTimers;

class HoldingTransport final : public Transport {
 public:
  void attach(Broker& broker) { broker_ = &broker; }

  void send(ConnectionId id, SharedBytes bytes) override { out_[id] += *bytes; }
  std::size_t queued_bytes(ConnectionId) const override { return 0; }
  void close(ConnectionId id) override {
    closed_.insert(id);
    held_.erase(id);
  }
  void set_reading(ConnectionId id, bool enabled) override {
    if (enabled) {
      paused_.erase(id);
      if (held_.contains(id)) posted_.push_back(id);
    } else {
      paused_.insert(id);
    }
  }

  // The peer went away (the broker hears of it through connection_lost).
  void forget(ConnectionId id) {
    paused_.erase(id);
    held_.erase(id);
  }

  // Bytes arriving from the peer: offered to the broker unless reading is paused.
  void receive(ConnectionId id, std::string_view bytes) {
    held_[id] += bytes;
    if (!paused_.contains(id)) offer(id);
  }
  // The loop turn after set_reading(true): held bytes are offered again.
  void run_posted() {
    auto ids = std::move(posted_);
    posted_.clear();
    for (ConnectionId id : ids) {
      if (!paused_.contains(id) && !closed_.contains(id) && held_.contains(id)) offer(id);
    }
  }

  std::vector<mqtt::Packet> take(ConnectionId id, Version v) {
    buffers_.push_back(std::move(out_[id]));
    out_[id].clear();
    return fakes::decode_packets(buffers_.back(), v);
  }
  std::string raw(ConnectionId id) const {
    const auto it = out_.find(id);
    return it == out_.end() ? std::string() : it->second;
  }
  bool closed(ConnectionId id) const { return closed_.contains(id); }
  bool paused(ConnectionId id) const { return paused_.contains(id); }
  std::size_t held(ConnectionId id) const {
    const auto it = held_.find(id);
    return it == held_.end() ? 0 : it->second.size();
  }

 private:
  void offer(ConnectionId id) {
    std::string& bytes = held_[id];
    const std::size_t consumed = std::min(broker_->data_received(id, bytes), bytes.size());
    if (closed_.contains(id)) return;
    bytes.erase(0, consumed);
    if (bytes.empty()) held_.erase(id);
  }

  Broker* broker_ = nullptr;
  std::map<ConnectionId, std::string> out_;
  std::map<ConnectionId, std::string> held_;
  std::set<ConnectionId> paused_;
  std::set<ConnectionId> closed_;
  std::vector<ConnectionId> posted_;
  std::vector<std::string> buffers_;
};

// Answers every authentication later, when the test says so; or at once with `immediate`.
class DeferredPolicy final : public Policy {
 public:
  struct Request {
    ClientIdentity who;
    std::optional<std::string> password;
    AuthenticationDone done;
  };
  std::uint8_t authenticate(const ClientIdentity&, std::optional<std::string_view>) override { return 0; }
  std::optional<std::uint8_t> start_authentication(const ClientIdentity& who, std::optional<std::string_view> password,
                                                   AuthenticationDone done) override {
    if (immediate) return immediate;
    requests.push_back(Request{who, password ? std::optional<std::string>(*password) : std::nullopt, std::move(done)});
    return std::nullopt;
  }
  bool may_publish(const ClientIdentity&, std::string_view) override { return true; }
  bool may_subscribe(const ClientIdentity&, std::string_view) override { return true; }
  bool may_receive(const ClientIdentity&, std::string_view) override { return true; }
  void client_connected(const ClientIdentity& who) override { connected.push_back(who.client_id); }

  std::optional<std::uint8_t> immediate;
  std::vector<Request> requests;
  std::vector<std::string> connected;
};

std::string bytes_of(const mqtt::Packet& p, Version v) {
  std::string out;
  mqtt::encode(p, v, out);
  return out;
}

mqtt::Connect connect_packet(std::string_view client_id, Version v, std::string_view user = "alice",
                             std::string_view password = "secret") {
  mqtt::Connect c;
  c.version = v;
  c.client_id = client_id;
  c.keep_alive = 60;
  c.username = user;
  c.password = password;
  return c;
}

std::string publish_bytes(std::string_view topic, std::uint16_t packet_id, Version v) {
  mqtt::Publish p;
  p.topic = topic;
  p.payload = "x";
  p.qos = QoS::at_least_once;
  p.packet_id = packet_id;
  return bytes_of(p, v);
}

class ParkedConnectTest : public ::testing::Test {
 protected:
  ParkedConnectTest() : timers_(clock_) { make_broker(); }

  void make_broker() {
    broker_ = std::make_unique<Broker>(config_, transport_, timers_, clock_, store_, policy_);
    transport_.attach(*broker_);
  }

  // Opens `id` and sends its CONNECT followed by `after` in one read.
  void open_and_connect(ConnectionId id, std::string_view client_id, Version v, const std::string& after = {}) {
    ASSERT_TRUE(broker_->connection_opened(id, "10.0.0.1:" + std::to_string(id)));
    transport_.receive(id, bytes_of(connect_packet(client_id, v), v) + after);
  }

  FakeClock clock_;
  FakeTimers timers_;
  HoldingTransport transport_;
  MemoryStore store_;
  DeferredPolicy policy_;
  BrokerConfig config_;
  std::unique_ptr<Broker> broker_;
};

TEST_F(ParkedConnectTest, PacketsAfterTheConnectWaitForASuccessfulVerdictThenFlowInOrder) {
  const std::string after = publish_bytes("a/b", 7, Version::v5) + bytes_of(mqtt::Pingreq{}, Version::v5);
  open_and_connect(1, "c1", Version::v5, after);

  // Nothing answered yet; the connection is not read and the packets after the CONNECT
  // stay with the transport.
  ASSERT_EQ(policy_.requests.size(), 1u);
  EXPECT_EQ(policy_.requests[0].who.client_id, "c1");
  EXPECT_EQ(policy_.requests[0].who.username, "alice");
  EXPECT_EQ(policy_.requests[0].password, "secret");
  EXPECT_TRUE(transport_.raw(1).empty());
  EXPECT_TRUE(transport_.paused(1));
  EXPECT_EQ(transport_.held(1), after.size());
  EXPECT_TRUE(policy_.connected.empty());
  EXPECT_EQ(broker_->stats().messages_received, 0u);

  policy_.requests[0].done(0);
  EXPECT_FALSE(transport_.paused(1));
  auto packets = transport_.take(1, Version::v5);
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Connack>(packets[0]).reason_code, ReasonCode::success);
  EXPECT_EQ(policy_.connected, std::vector<std::string>{"c1"});

  transport_.run_posted();
  packets = transport_.take(1, Version::v5);
  ASSERT_EQ(packets.size(), 2u);
  EXPECT_EQ(std::get<mqtt::PubAck>(packets[0]).packet_id, 7);
  EXPECT_TRUE(std::holds_alternative<mqtt::Pingresp>(packets[1]));
  EXPECT_EQ(transport_.held(1), 0u);
  EXPECT_EQ(broker_->stats().messages_received, 1u);
}

TEST_F(ParkedConnectTest, BytesArrivingWhileParkedAreHeldToo) {
  open_and_connect(1, "c1", Version::v5);
  // A transport that still delivers (a read already under way) gets nothing consumed.
  const std::string late = publish_bytes("a/b", 9, Version::v5);
  EXPECT_EQ(broker_->data_received(1, late), 0u);
  ASSERT_EQ(policy_.requests.size(), 1u);
  policy_.requests[0].done(0);
  EXPECT_EQ(broker_->data_received(1, late), late.size());
  auto packets = transport_.take(1, Version::v5);
  ASSERT_EQ(packets.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<mqtt::Connack>(packets[0]));
  EXPECT_EQ(std::get<mqtt::PubAck>(packets[1]).packet_id, 9);
}

TEST_F(ParkedConnectTest, RefusalV5AnswersTheReasonCodeAndDropsWhatFollowed) {
  open_and_connect(1, "c1", Version::v5, publish_bytes("a/b", 7, Version::v5));
  ASSERT_EQ(policy_.requests.size(), 1u);
  policy_.requests[0].done(0x86);
  EXPECT_TRUE(transport_.closed(1));
  auto packets = transport_.take(1, Version::v5);
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Connack>(packets[0]).reason_code, ReasonCode::bad_user_name_or_password);
  transport_.run_posted();
  EXPECT_TRUE(transport_.take(1, Version::v5).empty());
  EXPECT_EQ(broker_->stats().messages_received, 0u);
  EXPECT_EQ(broker_->stats().connections_refused, 1u);
  EXPECT_TRUE(broker_->clients().empty());
}

TEST_F(ParkedConnectTest, RefusalV311AnswersReturnCode4) {
  open_and_connect(1, "c1", Version::v311);
  ASSERT_EQ(policy_.requests.size(), 1u);
  policy_.requests[0].done(0x86);
  EXPECT_TRUE(transport_.closed(1));
  // Fixed header, flags, return code 4 (bad user name or password).
  EXPECT_EQ(transport_.raw(1), std::string("\x20\x02\x00\x04", 4));
}

TEST_F(ParkedConnectTest, BusyVerdictIs0x9FInV5AndServerUnavailableInV311) {
  policy_.immediate = 0x9F;
  open_and_connect(1, "c5", Version::v5);
  open_and_connect(2, "c3", Version::v311);
  EXPECT_TRUE(transport_.closed(1));
  EXPECT_TRUE(transport_.closed(2));
  auto packets = transport_.take(1, Version::v5);
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Connack>(packets[0]).reason_code, ReasonCode::connection_rate_exceeded);
  EXPECT_EQ(transport_.raw(2), std::string("\x20\x02\x00\x03", 4));  // 3: server unavailable
}

TEST_F(ParkedConnectTest, AnImmediateSuccessCompletesInTheSameRead) {
  policy_.immediate = 0;
  open_and_connect(1, "c1", Version::v5, publish_bytes("a/b", 3, Version::v5));
  EXPECT_FALSE(transport_.paused(1));
  auto packets = transport_.take(1, Version::v5);
  ASSERT_EQ(packets.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<mqtt::Connack>(packets[0]));
  EXPECT_EQ(std::get<mqtt::PubAck>(packets[1]).packet_id, 3);
}

TEST_F(ParkedConnectTest, VerdictAfterTheConnectionClosedIsIgnored) {
  open_and_connect(1, "c1", Version::v5);
  ASSERT_EQ(policy_.requests.size(), 1u);
  transport_.forget(1);
  broker_->connection_lost(1);
  policy_.requests[0].done(0);
  EXPECT_TRUE(transport_.raw(1).empty());
  EXPECT_TRUE(policy_.connected.empty());
  EXPECT_TRUE(broker_->clients().empty());
  EXPECT_EQ(broker_->stats().connections_current, 0u);
}

TEST_F(ParkedConnectTest, VerdictForAnEarlierConnectionWithTheSameIdIsIgnored) {
  open_and_connect(1, "first", Version::v5);
  transport_.forget(1);
  broker_->connection_lost(1);
  open_and_connect(1, "second", Version::v5);
  ASSERT_EQ(policy_.requests.size(), 2u);
  policy_.requests[0].done(0);  // the first connection's, late
  EXPECT_TRUE(transport_.raw(1).empty());
  EXPECT_TRUE(transport_.paused(1));
  policy_.requests[1].done(0);
  auto packets = transport_.take(1, Version::v5);
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Connack>(packets[0]).reason_code, ReasonCode::success);
  EXPECT_EQ(policy_.connected, std::vector<std::string>{"second"});
}

TEST_F(ParkedConnectTest, TheConnectTimeoutBoundsTheWaitForAVerdict) {
  config_.connect_timeout = 2000ms;
  make_broker();
  open_and_connect(1, "c1", Version::v5);
  timers_.advance(1900ms);
  EXPECT_FALSE(transport_.closed(1));
  timers_.advance(200ms);
  EXPECT_TRUE(transport_.closed(1));
  ASSERT_EQ(policy_.requests.size(), 1u);
  policy_.requests[0].done(0);
  EXPECT_TRUE(transport_.raw(1).empty());
  EXPECT_TRUE(policy_.connected.empty());
}

TEST_F(ParkedConnectTest, KeepAliveStartsAtTheVerdict) {
  open_and_connect(1, "c1", Version::v5);
  timers_.advance(5000ms);
  ASSERT_EQ(policy_.requests.size(), 1u);
  policy_.requests[0].done(0);
  // Keep-alive 60 s: closed after 90 s of silence counted from the CONNACK.
  timers_.advance(89000ms);
  EXPECT_FALSE(transport_.closed(1));
  timers_.advance(2000ms);
  EXPECT_TRUE(transport_.closed(1));
}

TEST_F(ParkedConnectTest, TakeoverHappensWhenTheVerdictComes) {
  policy_.immediate = 0;
  open_and_connect(1, "same", Version::v5);
  transport_.take(1, Version::v5);
  policy_.immediate.reset();
  open_and_connect(2, "same", Version::v5);
  EXPECT_FALSE(transport_.closed(1));  // a wrong password must not kick the session out
  ASSERT_EQ(policy_.requests.size(), 1u);
  policy_.requests[0].done(0x86);
  EXPECT_FALSE(transport_.closed(1));
  EXPECT_TRUE(transport_.closed(2));

  open_and_connect(3, "same", Version::v5);
  ASSERT_EQ(policy_.requests.size(), 2u);
  policy_.requests[1].done(0);
  EXPECT_TRUE(transport_.closed(1));
  auto old = transport_.take(1, Version::v5);
  ASSERT_EQ(old.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Disconnect>(old[0]).reason_code, ReasonCode::session_taken_over);
}

TEST_F(ParkedConnectTest, ShutdownAndDestructionDropPendingVerdicts) {
  open_and_connect(1, "c1", Version::v5);
  open_and_connect(2, "c2", Version::v5);
  ASSERT_EQ(policy_.requests.size(), 2u);
  broker_->shutdown();
  EXPECT_TRUE(transport_.closed(1));
  policy_.requests[0].done(0);
  EXPECT_TRUE(transport_.raw(1).empty());
  broker_.reset();
  policy_.requests[1].done(0);  // the broker is gone: nothing to call into
  EXPECT_TRUE(transport_.raw(2).empty());
  EXPECT_TRUE(policy_.connected.empty());
}

}  // namespace
}  // namespace tern::broker
