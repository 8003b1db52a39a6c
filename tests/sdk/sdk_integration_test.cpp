// The SDK and the CLI against the real ternd binary.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <boost/asio/io_context.hpp>

#include <atomic>

#include <filesystem>
#include <functional>

#include "http_get.hpp"
#include "sdk/text.hpp"
#include "sdk_test_support.hpp"
#include "ternd_process.hpp"
#include "tern/client.hpp"
#include "tern/service.hpp"

namespace {

using namespace std::chrono_literals;
using tern::test::run_command;
using tern::test::run_until;
using tern::test::TerndProcess;

std::string tern_cli() { return TERN_CLI_PATH; }

std::string temp_path(const std::string& stem) {
  return (std::filesystem::temp_directory_path() / (stem + "-" + tern::sdk::random_hex(6) + ".db")).string();
}

tern::ClientOptions client_options(int port, std::string id = {}) {
  tern::ClientOptions o;
  o.port = static_cast<std::uint16_t>(port);
  o.client_id = id.empty() ? "it-" + tern::sdk::random_hex(4) : std::move(id);
  o.reconnect = tern::BackoffPolicy{20ms, 200ms, 2.0, 0.5};
  return o;
}

class CliPubSub : public ::testing::TestWithParam<int> {};

TEST_P(CliPubSub, DeliversAtEachQos) {
  TerndProcess ternd;
  const int qos = GetParam();
  const std::string port = std::to_string(ternd.port());
  std::string published;
  auto sub = run_command(fmt::format("{} sub -p {} -t 'cli/#' -q {} -C 1 --format json --timeout 10000", tern_cli(), port, qos),
                         [&](const std::string& line) {
                           if (line.find("subscribed") == std::string::npos) return;
                           // `timeout 10`: a publisher that hangs after its message was sent is a failure too.
                           auto pub = run_command(fmt::format("timeout 10 {} pub -p {} -t cli/x -m 'hello world' -q {} --user-property k=v",
                                                              tern_cli(), port, qos));
                           EXPECT_EQ(pub.exit_code, 0) << pub.output;
                         });
  EXPECT_EQ(sub.exit_code, 0) << sub.output;
  EXPECT_NE(sub.output.find(fmt::format(R"({{"topic":"cli/x","payload":"hello world","qos":{},"retain":false,"properties":{{"user_properties":[["k","v"]]}}}})", qos)),
            std::string::npos)
      << sub.output;
}

INSTANTIATE_TEST_SUITE_P(Qos, CliPubSub, ::testing::Values(0, 1, 2));

TEST(CliExitCodes, AreTheDocumentedOnes) {
  TerndProcess ternd;
  const std::string port = std::to_string(ternd.port());
  EXPECT_EQ(run_command(tern_cli() + " pub -t a").exit_code, 1);
  EXPECT_EQ(run_command(tern_cli() + " pub -p " + port + " -t 'a/+' -m x").exit_code, 1);
  const int free_port = ternd.port();
  ternd.stop();
  auto refused = run_command(tern_cli() + " pub -p " + std::to_string(free_port) + " -t a -m x");
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_NE(refused.output.find("cannot connect"), std::string::npos);
  ternd.start(0);
  auto timeout = run_command(tern_cli() + " req -p " + std::to_string(ternd.port()) + " -t nobody/home -m x --timeout 200");
  EXPECT_EQ(timeout.exit_code, 3) << timeout.output;
}

TEST(SdkClient, PublishesAndReceivesAtEachQosInOrder) {
  TerndProcess ternd;
  boost::asio::io_context io;
  tern::Client subscriber(io, client_options(ternd.port()));
  tern::Client publisher(io, client_options(ternd.port()));
  std::vector<tern::Message> received;
  subscriber.on_message([&](const tern::Message& m) { received.push_back(m); });
  bool subscribed = false;
  subscriber.subscribe({tern::Subscription{"sdk/#", tern::Qos::exactly_once}},
                       [&](std::error_code ec, std::vector<std::uint8_t> codes) {
                         EXPECT_FALSE(ec);
                         EXPECT_EQ(codes, std::vector<std::uint8_t>{2});
                         subscribed = true;
                       });
  ASSERT_FALSE(subscriber.start());
  ASSERT_TRUE(run_until(io, [&] { return subscribed; }));
  ASSERT_FALSE(publisher.start());
  int acked = 0;
  for (int i = 0; i < 30; ++i) {
    tern::Message m;
    m.topic = "sdk/" + std::to_string(i % 3);
    m.payload = std::to_string(i);
    m.qos = static_cast<tern::Qos>(i % 3);
    m.user_properties.emplace_back("n", std::to_string(i));
    ASSERT_FALSE(publisher.publish(std::move(m), [&](std::error_code ec, std::uint8_t) {
      EXPECT_FALSE(ec) << ec.message();
      ++acked;
    }));
  }
  ASSERT_TRUE(run_until(io, [&] { return received.size() == 30 && acked == 30; })) << received.size() << " " << acked;
  for (int i = 0; i < 30; ++i) {
    EXPECT_EQ(received[static_cast<std::size_t>(i)].payload, std::to_string(i));
    EXPECT_EQ(static_cast<int>(received[static_cast<std::size_t>(i)].qos), i % 3);
  }
  EXPECT_EQ(publisher.pending(), 0u);
}

TEST(SdkClient, ProtocolVersion311Works) {
  TerndProcess ternd;
  boost::asio::io_context io;
  auto options = client_options(ternd.port());
  options.protocol_version = 4;
  tern::Client client(io, options);
  std::vector<std::string> got;
  client.on_message([&](const tern::Message& m) { got.push_back(m.payload); });
  bool subscribed = false;
  client.subscribe({tern::Subscription{"v311/t", tern::Qos::at_least_once}}, [&](std::error_code, std::vector<std::uint8_t>) { subscribed = true; });
  ASSERT_FALSE(client.start());
  ASSERT_TRUE(run_until(io, [&] { return subscribed; }));
  tern::Message m;
  m.topic = "v311/t";
  m.payload = "x";
  m.qos = tern::Qos::at_least_once;
  ASSERT_FALSE(client.publish(m));
  ASSERT_TRUE(run_until(io, [&] { return got.size() == 1; }));
}

tern::ServiceOptions service_options(int port, std::string name) {
  tern::ServiceOptions o;
  o.name = name;
  o.client = client_options(port, name + "-" + tern::sdk::random_hex(3));
  o.retry.backoff = tern::BackoffPolicy{10ms, 50ms, 2.0, 0.0};
  return o;
}

TEST(SdkService, RequestReplyWithTheSdkAndTheCli) {
  TerndProcess ternd;
  boost::asio::io_context io;
  tern::Service echo(io, service_options(ternd.port(), "echo"));
  echo.respond("svc/echo", [](const tern::Event& e, std::string& reply) {
    reply = "echo:" + e.payload();
    return tern::Outcome::success();
  });
  tern::Service caller(io, service_options(ternd.port(), "caller"));
  ASSERT_FALSE(echo.start());
  ASSERT_FALSE(caller.start());
  ASSERT_TRUE(run_until(io, [&] { return echo.ready() && caller.ready(); }));
  std::optional<std::string> reply;
  std::error_code timeout_ec;
  bool timed_out = false;
  // The subscription of the responder is on the wire before this request (same io).
  run_until(io, [] { return false; }, 100ms);
  caller.request("svc/echo", "ping", 5s, [&](std::error_code ec, tern::Message m) {
    EXPECT_FALSE(ec);
    reply = m.payload;
  });
  caller.request("svc/nobody", "ping", 100ms, [&](std::error_code ec, tern::Message) {
    timeout_ec = ec;
    timed_out = true;
  });
  ASSERT_TRUE(run_until(io, [&] { return reply.has_value() && timed_out; }));
  EXPECT_EQ(*reply, "echo:ping");
  EXPECT_EQ(timeout_ec, tern::Errc::timeout);

  // The CLI against the same responder, served from another thread.
  std::atomic<bool> quit{false};
  std::thread server([&] {
    while (!quit) io.run_one_for(20ms);
  });
  auto cli = run_command(tern_cli() + " req -p " + std::to_string(ternd.port()) + " -t svc/echo -m cli --timeout 5000");
  quit = true;
  server.join();
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_EQ(cli.output, "echo:cli\n");
}

TEST(SdkService, TraceparentIsCarriedFromAConsumedEventToWhatItsHandlerPublishes) {
  TerndProcess ternd;
  boost::asio::io_context io;
  tern::Service relay(io, service_options(ternd.port(), "relay"));
  relay.on("in/+", [&](const tern::Event& e) {
    relay.publish("out/" + e.payload(), e.payload());
    return tern::Outcome::success();
  });
  tern::Client watcher(io, client_options(ternd.port()));
  std::vector<tern::Message> out;
  watcher.on_message([&](const tern::Message& m) { out.push_back(m); });
  bool subscribed = false;
  watcher.subscribe({tern::Subscription{"out/#", tern::Qos::at_least_once}}, [&](std::error_code, std::vector<std::uint8_t>) { subscribed = true; });
  ASSERT_FALSE(relay.start());
  ASSERT_FALSE(watcher.start());
  ASSERT_TRUE(run_until(io, [&] { return subscribed && relay.ready(); }));
  run_until(io, [] { return false; }, 100ms);
  tern::Message in;
  in.topic = "in/a";
  in.payload = "a";
  in.qos = tern::Qos::at_least_once;
  in.user_properties.emplace_back("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_FALSE(watcher.publish(in));
  ASSERT_TRUE(run_until(io, [&] { return out.size() == 1; }));
  const std::string* tp = out[0].user_property("traceparent");
  ASSERT_NE(tp, nullptr);
  EXPECT_EQ(tp->substr(0, 36), "00-4bf92f3577b34da6a3ce929d0e0e4736-");
  EXPECT_NE(tp->substr(36, 16), "00f067aa0ba902b7");
  ASSERT_NE(out[0].user_property("tern-id"), nullptr);
}

TEST(SdkService, RetriesThenSucceedsWithoutDeadLetter) {
  TerndProcess ternd;
  boost::asio::io_context io;
  auto options = service_options(ternd.port(), "flaky");
  options.retry.attempts = 4;
  tern::Service svc(io, options);
  int calls = 0;
  svc.on("jobs/#", [&](const tern::Event& e) {
    ++calls;
    EXPECT_EQ(e.attempt(), static_cast<unsigned>(calls));
    return calls < 3 ? tern::Outcome::failure("not yet") : tern::Outcome::success();
  });
  ASSERT_FALSE(svc.start());
  ASSERT_TRUE(run_until(io, [&] { return svc.ready(); }));
  run_until(io, [] { return false; }, 100ms);
  ASSERT_FALSE(svc.publish("jobs/1", "work"));
  ASSERT_TRUE(run_until(io, [&] { return svc.stats().handled == 1; }));
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(svc.stats().retried, 2u);
  EXPECT_EQ(svc.stats().failed, 2u);
  EXPECT_EQ(svc.stats().dead_lettered, 0u);
}

TEST(SdkService, FailingHandlerIsRetriedThenDeadLettered) {
  TerndProcess ternd;
  boost::asio::io_context io;
  auto options = service_options(ternd.port(), "billing");
  options.retry.attempts = 3;
  tern::Service svc(io, options);
  int calls = 0;
  svc.on("jobs/#", [&](const tern::Event&) -> tern::Outcome {
    ++calls;
    throw std::runtime_error("bad invoice");
  });
  tern::Client dlq(io, client_options(ternd.port()));
  std::vector<tern::Message> dead;
  dlq.on_message([&](const tern::Message& m) { dead.push_back(m); });
  bool subscribed = false;
  dlq.subscribe({tern::Subscription{"$dlq/billing/#", tern::Qos::at_least_once}}, [&](std::error_code, std::vector<std::uint8_t>) { subscribed = true; });
  ASSERT_FALSE(svc.start());
  ASSERT_FALSE(dlq.start());
  ASSERT_TRUE(run_until(io, [&] { return subscribed && svc.ready(); }));
  run_until(io, [] { return false; }, 100ms);
  ASSERT_FALSE(svc.publish("jobs/7", "invoice-7"));
  ASSERT_TRUE(run_until(io, [&] { return !dead.empty(); })) << "dead-lettered: " << svc.stats().dead_lettered;
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(dead[0].topic, "$dlq/billing/jobs/7");
  EXPECT_EQ(dead[0].payload, "invoice-7");
  ASSERT_NE(dead[0].user_property("tern-error"), nullptr);
  EXPECT_EQ(*dead[0].user_property("tern-error"), "bad invoice (after 3 attempts)");
  EXPECT_EQ(svc.stats().dead_lettered, 1u);
}

// Publishing through a broker outage and a restart of the producer: the outbox keeps
// everything, in order.
TEST(SdkService, OutboxSurvivesBrokerRestartAndServiceRestartInOrder) {
  TerndProcess ternd;
  const std::string outbox = temp_path("tern-it-outbox");
  boost::asio::io_context io;
  std::vector<std::string> seen;
  auto make = [&] {
    auto options = service_options(ternd.port(), "producer");
    options.client.outbox_path = outbox;
    auto s = std::make_unique<tern::Service>(io, options);
    // The producer reads its own stream: after a reconnect without a session its
    // subscription goes out before the drained outbox, on the same connection.
    s->on("orders/#", [&](const tern::Event& e) {
      seen.push_back(e.payload());
      return tern::Outcome::success();
    });
    return s;
  };
  auto producer = make();
  ASSERT_FALSE(producer->start());
  ASSERT_TRUE(run_until(io, [&] { return producer->ready(); }));
  run_until(io, [] { return false; }, 100ms);
  int n = 0;
  for (; n < 10; ++n) ASSERT_FALSE(producer->publish("orders/x", std::to_string(n)));
  ASSERT_TRUE(run_until(io, [&] { return seen.size() == 10; }));

  // Outage while the producer lives.
  ternd.stop();
  ASSERT_TRUE(run_until(io, [&] { return !producer->ready(); }));
  for (; n < 30; ++n) ASSERT_FALSE(producer->publish("orders/x", std::to_string(n)));
  EXPECT_EQ(producer->stats().outbox_depth, 20u);
  ternd.restart();
  ASSERT_TRUE(run_until(io, [&] { return seen.size() >= 30 && producer->stats().outbox_depth == 0; })) << seen.size();

  // Outage, then the producer itself restarts before the broker is back.
  ternd.stop();
  ASSERT_TRUE(run_until(io, [&] { return !producer->ready(); }));
  for (; n < 40; ++n) ASSERT_FALSE(producer->publish("orders/x", std::to_string(n)));
  producer.reset();
  ternd.restart();
  producer = make();
  EXPECT_EQ(producer->stats().outbox_depth, 0u);
  ASSERT_FALSE(producer->start());
  EXPECT_EQ(producer->stats().outbox_depth, 10u);
  ASSERT_TRUE(run_until(io, [&] { return seen.size() >= 40 && producer->stats().outbox_depth == 0; })) << seen.size();

  std::vector<std::string> expected;
  for (int i = 0; i < 40; ++i) expected.push_back(std::to_string(i));
  EXPECT_EQ(seen, expected);
  producer.reset();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(outbox + suffix);
}

TEST(SdkService, NoEventIsHandledTwiceAfterAServiceRestart) {
  TerndProcess ternd;
  const std::string state = temp_path("tern-it-state");
  boost::asio::io_context io;
  std::vector<std::string> handled;
  auto make = [&] {
    auto options = service_options(ternd.port(), "counter");
    options.state_path = state;
    auto s = std::make_unique<tern::Service>(io, options);
    s->on("meter/#", [&](const tern::Event& e) {
      handled.push_back(e.payload());
      return tern::Outcome::success();
    });
    return s;
  };
  tern::Client producer(io, client_options(ternd.port()));
  ASSERT_FALSE(producer.start());
  auto publish = [&](int i) {
    tern::Message m;
    m.topic = "meter/1";
    m.payload = std::to_string(i);
    m.qos = tern::Qos::at_least_once;
    m.user_properties.emplace_back("tern-id", "meter-" + std::to_string(i));
    ASSERT_FALSE(producer.publish(std::move(m)));
  };
  auto first = make();
  ASSERT_FALSE(first->start());
  ASSERT_TRUE(run_until(io, [&] { return first->ready() && producer.connected(); }));
  run_until(io, [] { return false; }, 100ms);
  for (int i = 0; i < 3; ++i) publish(i);
  ASSERT_TRUE(run_until(io, [&] { return handled.size() == 3; }));
  first.reset();

  auto second = make();
  ASSERT_FALSE(second->start());
  ASSERT_TRUE(run_until(io, [&] { return second->ready(); }));
  run_until(io, [] { return false; }, 100ms);
  // A replay of the same events, then a new one.
  for (int i = 0; i < 4; ++i) publish(i);
  ASSERT_TRUE(run_until(io, [&] { return second->stats().duplicates == 3 && handled.size() >= 4; }));
  EXPECT_EQ(handled, (std::vector<std::string>{"0", "1", "2", "3"}));
  second.reset();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(state + suffix);
}

// A service's /healthz, /readyz and /metrics while the broker comes and goes.
TEST(SdkService, HealthReadinessAndMetricsAreServedOverHttp) {
  TerndProcess ternd;
  boost::asio::io_context io;
  auto options = service_options(ternd.port(), "scraped");
  options.http_listen = "127.0.0.1:0";
  options.retry.attempts = 2;
  tern::Service svc(io, options);
  int calls = 0;
  svc.on("jobs/#", [&](const tern::Event& e) {
    ++calls;
    if (e.topic() == "jobs/poison") return tern::Outcome::failure("poison");
    return tern::Outcome::success();
  });
  ASSERT_FALSE(svc.start());
  const std::uint16_t port = svc.http_port();
  ASSERT_NE(port, 0);
  ASSERT_TRUE(run_until(io, [&] { return svc.ready(); }));
  auto ready = tern::test::http_get(io, port, "/readyz");
  EXPECT_EQ(ready.status, 200u) << ready.body;

  run_until(io, [] { return false; }, 100ms);
  ASSERT_FALSE(svc.publish("jobs/1", "a"));
  ASSERT_FALSE(svc.publish("jobs/2", "b"));
  ASSERT_FALSE(svc.publish("jobs/poison", "c"));
  ASSERT_TRUE(run_until(io, [&] { return svc.stats().handled == 2 && svc.stats().dead_lettered == 1; }));

  auto metrics = tern::test::http_get(io, port, "/metrics");
  ASSERT_EQ(metrics.status, 200u);
  const auto has = [&](const std::string& line) { return metrics.body.find(line + "\n") != std::string::npos; };
  EXPECT_TRUE(has(R"(tern_service_events_handled_total{service="scraped"} 2)")) << metrics.body;
  EXPECT_TRUE(has(R"(tern_service_events_failed_total{service="scraped"} 2)"));
  EXPECT_TRUE(has(R"(tern_service_events_retried_total{service="scraped"} 1)"));
  EXPECT_TRUE(has(R"(tern_service_events_dead_lettered_total{service="scraped"} 1)"));
  EXPECT_TRUE(has(R"(tern_service_connected{service="scraped"} 1)"));
  EXPECT_TRUE(has(R"(tern_service_handler_latency_seconds_count{service="scraped"} 4)"));
  // Log forwarding is off for this service: its counters are served, and stay at zero.
  EXPECT_TRUE(has(R"(tern_service_log_lines_forwarded_total{service="scraped"} 0)"));
  EXPECT_TRUE(has(R"(tern_service_log_lines_dropped_total{service="scraped"} 0)"));
  {
    const std::string path = temp_path("tern-it-scrape");
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(metrics.body.c_str(), f);
    std::fclose(f);
    auto check = run_command("/usr/bin/promtool check metrics < " + path);
    std::filesystem::remove(path);
    EXPECT_EQ(check.exit_code, 0) << check.output;
  }

  // Broker gone: alive, not ready, and it says why.
  const int broker_port = ternd.port();
  ternd.stop();
  ASSERT_TRUE(run_until(io, [&] { return !svc.client().connected(); }));
  auto not_ready = tern::test::http_get(io, port, "/readyz");
  EXPECT_EQ(not_ready.status, 503u);
  EXPECT_EQ(not_ready.body, "not connected to the broker\n");
  EXPECT_EQ(tern::test::http_get(io, port, "/healthz").status, 200u);

  ternd.start(broker_port);
  ASSERT_TRUE(run_until(io, [&] { return svc.ready(); }));
  EXPECT_EQ(tern::test::http_get(io, port, "/readyz").status, 200u);
  metrics = tern::test::http_get(io, port, "/metrics");
  EXPECT_TRUE(has(R"(tern_service_reconnects_total{service="scraped"} 1)")) << metrics.body;
  EXPECT_TRUE(has(R"(tern_service_connection_losses_total{service="scraped"} 1)"));
}

}  // namespace
