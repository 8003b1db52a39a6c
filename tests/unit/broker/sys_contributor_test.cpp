// Broker::set_sys_contributor: figures owned by the daemon (store, security policy) ride on
// the broker's $SYS cycle. Driven without sockets, with a fake clock and fake timers.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "broker/broker.hpp"
#include "fakes.hpp"
#include "mqtt/codec.hpp"

namespace tern::broker {
namespace {

using namespace std::chrono_literals;
using mqtt::QoS;
using mqtt::Version;

using fakes::FakeClock;
using fakes::FakeTimers;

class RecordingTransport final : public Transport {
 public:
  void send(ConnectionId id, SharedBytes bytes) override { out_[id] += *bytes; }
  std::size_t queued_bytes(ConnectionId) const override { return 0; }
  void close(ConnectionId) override {}
  void set_reading(ConnectionId, bool) override {}

  // The PUBLISH packets sent to `id` since the last call, as topic -> payload (the latest).
  std::map<std::string, std::string> take_publishes(ConnectionId id) {
    std::map<std::string, std::string> out;
    const std::string bytes = std::move(out_[id]);
    out_[id].clear();
    for (const auto& packet : fakes::decode_packets(bytes, Version::v5)) {
      if (const auto* p = std::get_if<mqtt::Publish>(&packet)) out[std::string(p->topic)] = std::string(p->payload);
    }
    return out;
  }

 private:
  std::map<ConnectionId, std::string> out_;
};

class SysContributorTest : public ::testing::Test {
 protected:
  SysContributorTest() : timers_(clock_) {
    config_.sys_interval = 1s;
    broker_ = std::make_unique<Broker>(config_, transport_, timers_, clock_, store_, policy_);
  }

  void feed(ConnectionId id, const mqtt::Packet& p) {
    std::string bytes;
    mqtt::encode(p, Version::v5, bytes);
    ASSERT_EQ(broker_->data_received(id, bytes), bytes.size());
  }

  void connect(ConnectionId id, std::string_view client_id) {
    ASSERT_TRUE(broker_->connection_opened(id, "127.0.0.1:1"));
    mqtt::Connect c;
    c.version = Version::v5;
    c.client_id = client_id;
    c.keep_alive = 0;
    feed(id, c);
    transport_.take_publishes(id);
  }

  void subscribe(ConnectionId id, std::string_view filter) {
    mqtt::Subscribe s;
    s.packet_id = 1;
    s.topics.push_back({filter, {QoS::at_most_once, false, false, mqtt::RetainHandling::send_on_subscribe}});
    feed(id, s);
  }

  BrokerConfig config_;
  FakeClock clock_;
  FakeTimers timers_;
  RecordingTransport transport_;
  MemoryStore store_;
  AllowAllPolicy policy_;
  std::unique_ptr<Broker> broker_;
};

TEST_F(SysContributorTest, ContributedFiguresArePublishedWithTheBrokersOwn) {
  int calls = 0;
  broker_->set_sys_contributor([&calls](Broker::SysFigures& out) {
    ++calls;
    out.emplace_back("$SYS/broker/store/commits", std::to_string(calls * 10));
    out.emplace_back("$SYS/broker/security/auth/succeeded", "3");
  });
  connect(1, "watcher");
  subscribe(1, "$SYS/#");
  timers_.advance(1ms);
  auto first = transport_.take_publishes(1);
  EXPECT_EQ(first["$SYS/broker/store/commits"], "10");
  EXPECT_EQ(first["$SYS/broker/security/auth/succeeded"], "3");
  EXPECT_TRUE(first.contains("$SYS/broker/uptime"));

  timers_.advance(1s);
  EXPECT_EQ(transport_.take_publishes(1)["$SYS/broker/store/commits"], "20");
  EXPECT_EQ(calls, 2);
}

TEST_F(SysContributorTest, NotCalledWhileNobodySubscribesToSys) {
  int calls = 0;
  broker_->set_sys_contributor([&calls](Broker::SysFigures& out) {
    ++calls;
    out.emplace_back("$SYS/broker/store/commits", "1");
  });
  connect(1, "plain");
  subscribe(1, "data/#");
  timers_.advance(10s);
  EXPECT_EQ(calls, 0);

  subscribe(1, "$SYS/broker/store/#");
  timers_.advance(1ms);
  EXPECT_EQ(calls, 1);
  mqtt::Unsubscribe u;
  u.packet_id = 2;
  u.filters.push_back("$SYS/broker/store/#");
  feed(1, u);
  timers_.advance(10s);
  EXPECT_EQ(calls, 1);
}

TEST_F(SysContributorTest, FiguresOutsideSysAreNotPublished) {
  broker_->set_sys_contributor([](Broker::SysFigures& out) {
    out.emplace_back("data/leak", "1");
    out.emplace_back("$SYSTEM/x", "1");
    out.emplace_back("$SYS/broker/store/bad/+", "1");
    out.emplace_back("$SYS/broker/store/fsyncs", "7");
  });
  connect(1, "watcher");
  subscribe(1, "$SYS/#");
  connect(2, "everything");
  subscribe(2, "#");
  timers_.advance(1ms);
  auto sys = transport_.take_publishes(1);
  EXPECT_EQ(sys["$SYS/broker/store/fsyncs"], "7");
  EXPECT_FALSE(sys.contains("$SYSTEM/x"));
  EXPECT_FALSE(sys.contains("$SYS/broker/store/bad/+"));
  EXPECT_TRUE(transport_.take_publishes(2).empty());
}

}  // namespace
}  // namespace tern::broker
