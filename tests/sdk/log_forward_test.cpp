// ServiceOptions::log_forward_level against the real ternd: a service's own log lines
// reach a subscriber of $tern/logs/#, and forwarding stays bounded when it cannot keep up.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "sdk/log_forward.hpp"
#include "sdk/text.hpp"
#include "sdk_test_support.hpp"
#include "tern/client.hpp"
#include "tern/log.hpp"
#include "tern/service.hpp"
#include "ternd_process.hpp"

namespace {

using namespace std::chrono_literals;
using tern::test::run_until;
using tern::test::TerndProcess;

tern::ClientOptions client_options(int port, std::string prefix) {
  tern::ClientOptions o;
  o.port = static_cast<std::uint16_t>(port);
  o.client_id = prefix + "-" + tern::sdk::random_hex(4);
  o.reconnect = tern::BackoffPolicy{20ms, 200ms, 2.0, 0.5};
  return o;
}

// A plain client subscribed to $tern/logs/#, recording what arrives.
class LogWatcher {
 public:
  LogWatcher(boost::asio::io_context& io, int port) : client_(io, client_options(port, "log-watch")) {
    client_.on_message([this](const tern::Message& m) { received_.push_back(m); });
    client_.subscribe({tern::Subscription{"$tern/logs/#", tern::Qos::at_most_once}},
                      [this](std::error_code ec, std::vector<std::uint8_t> codes) {
                        subscribed_ = !ec && codes.size() == 1 && codes[0] == 0;
                      });
    EXPECT_FALSE(client_.start());
  }
  bool subscribed() const { return subscribed_; }
  const std::vector<tern::Message>& received() const { return received_; }
  const tern::Message* find(std::string_view needle) const {
    for (const auto& m : received_) {
      if (m.payload.find(needle) != std::string::npos) return &m;
    }
    return nullptr;
  }

 private:
  tern::Client client_;
  std::vector<tern::Message> received_;
  bool subscribed_ = false;
};

tern::ServiceOptions forwarding_service(int port, std::string name) {
  tern::ServiceOptions o;
  o.name = std::move(name);
  o.client = client_options(port, o.name);
  o.log_forward_level = tern::log::Level::warning;
  return o;
}

class LogForwardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    previous_level_ = tern::log::level();
    tern::log::set_level(tern::log::Level::info);
  }
  void TearDown() override { tern::log::set_level(previous_level_); }

  tern::log::Level previous_level_ = tern::log::Level::info;
};

TEST_F(LogForwardTest, ServiceWarningReachesLogSubscriber) {
  TerndProcess ternd;
  boost::asio::io_context io;
  LogWatcher watcher(io, ternd.port());
  tern::Service service(io, forwarding_service(ternd.port(), "pump-ctl"));
  ASSERT_FALSE(service.start());
  ASSERT_TRUE(run_until(io, [&] { return watcher.subscribed() && service.stats().connected; }));

  tern::log::info("pump", "below the forwarding level {}", 41);
  tern::log::warn("pump", "pressure {} bar above the limit", 7);
  tern::log::error("pump", "valve stuck");
  ASSERT_TRUE(run_until(io, [&] { return watcher.find("valve stuck") != nullptr; }));

  const tern::Message* warning = watcher.find("pressure 7 bar above the limit");
  ASSERT_NE(warning, nullptr);
  EXPECT_EQ(warning->topic, "$tern/logs/pump-ctl/warning");
  EXPECT_EQ(warning->qos, tern::Qos::at_most_once);
  EXPECT_NE(warning->payload.find("\"level\":\"warning\""), std::string::npos) << warning->payload;
  EXPECT_NE(warning->payload.find("\"component\":\"pump\""), std::string::npos) << warning->payload;
  EXPECT_EQ(warning->payload.front(), '{');
  EXPECT_EQ(watcher.find("valve stuck")->topic, "$tern/logs/pump-ctl/error");
  // Lines reach the broker in the order they were logged, so the info line, had it been
  // forwarded, would have arrived before the error line.
  EXPECT_EQ(watcher.find("below the forwarding level"), nullptr);
  EXPECT_EQ(service.stats().log_lines_forwarded, 2u);
  EXPECT_EQ(service.stats().log_lines_dropped, 0u);
}

TEST_F(LogForwardTest, WithoutTheOptionNothingIsForwarded) {
  TerndProcess ternd;
  boost::asio::io_context io;
  LogWatcher watcher(io, ternd.port());
  auto options = forwarding_service(ternd.port(), "quiet");
  options.log_forward_level.reset();
  tern::Service quiet(io, options);
  tern::Service loud(io, forwarding_service(ternd.port(), "loud"));
  ASSERT_FALSE(quiet.start());
  ASSERT_FALSE(loud.start());
  ASSERT_TRUE(run_until(io, [&] { return watcher.subscribed() && quiet.stats().connected && loud.stats().connected; }));

  tern::log::warn("test", "seen once");
  ASSERT_TRUE(run_until(io, [&] { return watcher.find("seen once") != nullptr; }));
  // Both services share the process's logger; only the one that asked forwards.
  for (const auto& m : watcher.received()) EXPECT_EQ(m.topic, "$tern/logs/loud/warning");
  EXPECT_EQ(quiet.stats().log_lines_forwarded, 0u);
}

TEST_F(LogForwardTest, LinesAreDroppedAndCountedWhileOffline) {
  int closed_port = 0;
  {
    TerndProcess gone;
    closed_port = gone.port();
  }
  boost::asio::io_context io;
  tern::Service service(io, forwarding_service(closed_port, "offline"));
  ASSERT_FALSE(service.start());
  for (int i = 0; i < 5; ++i) tern::log::warn("test", "nobody hears line {}", i);
  ASSERT_TRUE(run_until(io, [&] { return service.stats().log_lines_dropped == 5; }));
  EXPECT_EQ(service.stats().log_lines_forwarded, 0u);
  EXPECT_EQ(service.client().pending(), 0u);  // nothing waits in the client for a reconnect
}

TEST_F(LogForwardTest, StormIsCappedByTheRateLimit) {
  TerndProcess ternd;
  boost::asio::io_context io;
  LogWatcher watcher(io, ternd.port());
  tern::Service service(io, forwarding_service(ternd.port(), "storm"));
  ASSERT_FALSE(service.start());
  ASSERT_TRUE(run_until(io, [&] { return watcher.subscribed() && service.stats().connected; }));

  constexpr std::uint64_t kLines = 2000;
  const auto started = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < kLines; ++i) tern::log::warn("storm", "line {}", i);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ASSERT_TRUE(run_until(io, [&] {
    const auto s = service.stats();
    return s.log_lines_forwarded + s.log_lines_dropped == kLines;
  }));
  const auto stats = service.stats();
  // Defaults: a burst of 100, then 20 lines a second.
  EXPECT_LE(static_cast<double>(stats.log_lines_forwarded), 100 + 20 * seconds + 1);
  EXPECT_GE(stats.log_lines_dropped, kLines - 100 - static_cast<std::uint64_t>(20 * seconds) - 1);
  ASSERT_TRUE(run_until(io, [&] { return watcher.received().size() == stats.log_lines_forwarded; }));
}

TEST(LogTopic, KeepsTheSourceOneTopicLevel) {
  EXPECT_EQ(tern::sdk::log_topic("pump-ctl", tern::log::Level::error), "$tern/logs/pump-ctl/error");
  EXPECT_EQ(tern::sdk::log_topic("a/b+#", tern::log::Level::warning), "$tern/logs/a_b__/warning");
  EXPECT_EQ(tern::sdk::log_topic("", tern::log::Level::info), "$tern/logs/service/info");
}

}  // namespace
