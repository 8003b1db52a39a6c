// Health and metrics rendering, JSON helpers, the key-value state store, and a Service on
// the in-process broker (no broker socket anywhere).
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

#include "../../sdk/http_get.hpp"
#include "../../sdk/sdk_test_support.hpp"
#include "sdk/http_endpoint.hpp"
#include "sdk/metrics.hpp"
#include "sdk/text.hpp"
#include "tern/in_process.hpp"
#include "tern/json.hpp"
#include "tern/service.hpp"
#include "tern/state.hpp"

namespace {

using namespace std::chrono_literals;
using tern::test::run_until;

std::filesystem::path temp_db(const std::string& stem) {
  return std::filesystem::temp_directory_path() / (stem + "-" + tern::sdk::random_hex(6) + ".db");
}

void remove_db(const std::filesystem::path& p) {
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(p.string() + suffix);
}

// ---- metrics ----

tern::ServiceStats sample_stats() {
  tern::ServiceStats s;
  s.handled = 7;
  s.failed = 3;
  s.retried = 2;
  s.dead_lettered = 1;
  s.duplicates = 4;
  s.outbox_depth = 5;
  s.reconnects = 2;
  s.connected = true;
  s.log_lines_forwarded = 11;
  s.log_lines_dropped = 6;
  s.handler_latency.observe(0.0001);  // first bucket
  s.handler_latency.observe(0.003);   // le 0.005
  s.handler_latency.observe(0.003);
  s.handler_latency.observe(20.0);    // beyond the last bound
  return s;
}

TEST(LatencyHistogram, CountsEachObservationInTheFirstBucketItFits) {
  tern::LatencyHistogram h;
  h.observe(0.0005);  // on the bound: le is inclusive
  h.observe(0.0006);
  h.observe(11.0);
  EXPECT_EQ(h.counts[0], 1u);
  EXPECT_EQ(h.counts[1], 1u);
  EXPECT_EQ(h.overflow, 1u);
  EXPECT_EQ(h.count, 3u);
  EXPECT_NEAR(h.sum_seconds, 11.0011, 1e-9);
}

TEST(Metrics, RenderingHasEveryFigureWithCumulativeBuckets) {
  const std::string text = tern::sdk::render_metrics("vib\"ration", sample_stats());
  EXPECT_NE(text.find("tern_service_events_handled_total{service=\"vib\\\"ration\"} 7\n"), std::string::npos) << text;
  EXPECT_NE(text.find("tern_service_events_failed_total{service=\"vib\\\"ration\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("tern_service_events_retried_total{service=\"vib\\\"ration\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("tern_service_events_dead_lettered_total{service=\"vib\\\"ration\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("tern_service_events_duplicate_total{service=\"vib\\\"ration\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("tern_service_outbox_depth{service=\"vib\\\"ration\"} 5\n"), std::string::npos);
  EXPECT_NE(text.find("tern_service_reconnects_total{service=\"vib\\\"ration\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE tern_service_log_lines_forwarded_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("tern_service_log_lines_forwarded_total{service=\"vib\\\"ration\"} 11\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE tern_service_log_lines_dropped_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("tern_service_log_lines_dropped_total{service=\"vib\\\"ration\"} 6\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE tern_service_handler_latency_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("tern_service_handler_latency_seconds_bucket{service=\"vib\\\"ration\",le=\"0.0005\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("tern_service_handler_latency_seconds_bucket{service=\"vib\\\"ration\",le=\"0.005\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("tern_service_handler_latency_seconds_bucket{service=\"vib\\\"ration\",le=\"10\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("tern_service_handler_latency_seconds_bucket{service=\"vib\\\"ration\",le=\"+Inf\"} 4\n"),
            std::string::npos);
  EXPECT_NE(text.find("tern_service_handler_latency_seconds_count{service=\"vib\\\"ration\"} 4\n"), std::string::npos);
}

#ifdef TERN_PROMTOOL
TEST(Metrics, PromtoolAcceptsTheExposition) {
  const auto path = std::filesystem::temp_directory_path() / ("tern-metrics-" + tern::sdk::random_hex(6) + ".txt");
  {
    std::ofstream out(path);
    out << tern::sdk::render_metrics("line\nbreak\\", sample_stats());
  }
  const std::string command = std::string(TERN_PROMTOOL) + " check metrics < " + path.string() + " 2>&1";
  FILE* p = popen(command.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string output;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) output += buf;
  const int status = pclose(p);
  std::filesystem::remove(path);
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(output, "") << "promtool found problems";
}
#endif

// ---- the HTTP endpoint alone ----

TEST(HttpEndpoint, RoutesPathsWithoutTheQueryAndRefusesBadAddresses) {
  boost::asio::io_context io;
  auto endpoint = tern::sdk::HttpEndpoint::start(io, "127.0.0.1:0", [](std::string_view path) {
    return tern::sdk::HttpResponse{path == "/x" ? 200u : 404u, "text/plain", std::string(path)};
  });
  ASSERT_TRUE(endpoint.has_value()) << endpoint.error();
  const auto port = (*endpoint)->port();
  ASSERT_NE(port, 0);
  auto ok = tern::test::http_get(io, port, "/x?a=b");
  EXPECT_EQ(ok.status, 200u);
  EXPECT_EQ(ok.body, "/x");
  EXPECT_EQ(tern::test::http_get(io, port, "/nope").status, 404u);

  EXPECT_FALSE(tern::sdk::HttpEndpoint::start(io, "127.0.0.1", {}).has_value());
  EXPECT_FALSE(tern::sdk::HttpEndpoint::start(io, "127.0.0.1:99999", {}).has_value());
  EXPECT_FALSE(tern::sdk::HttpEndpoint::start(io, "no-such-host:1", {}).has_value());
}

// ---- JSON ----

TEST(Json, ParseReportsInvalidPayloads) {
  auto good = tern::parse_json(R"({"rms": 4.5, "machine": "m1"})");
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ(good->at("machine").as_string(), "m1");
  auto bad = tern::parse_json("{\"rms\": ");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().find("invalid JSON"), std::string::npos);
}

TEST(Json, MessageCarriesContentTypeAndUtf8Indicator) {
  const auto m = tern::json_message("a/b", boost::json::value{{"k", 1}}, tern::Qos::exactly_once);
  EXPECT_EQ(m.topic, "a/b");
  EXPECT_EQ(m.payload, R"({"k":1})");
  EXPECT_EQ(m.qos, tern::Qos::exactly_once);
  ASSERT_TRUE(m.content_type.has_value());
  EXPECT_EQ(*m.content_type, "application/json");
  EXPECT_EQ(m.payload_format_indicator, std::optional<std::uint8_t>(1));
}

// ---- the state store ----

class StateStoreTest : public ::testing::Test {
 protected:
  void TearDown() override { remove_db(path_); }
  std::filesystem::path path_ = temp_db("tern-state");
};

TEST_F(StateStoreTest, PutGetEraseAndListByPrefixInKeyOrder) {
  tern::StateStore s(path_.string());
  ASSERT_FALSE(s.open());
  EXPECT_FALSE(s.put("machine/2", "b"));
  EXPECT_FALSE(s.put("machine/1", "a"));
  EXPECT_FALSE(s.put("machinery", "x"));
  EXPECT_FALSE(s.put("other", "y"));
  EXPECT_FALSE(s.put("machine/1", "a2"));  // replaces
  EXPECT_FALSE(s.put(std::string("bin\0key", 7), std::string("\0\xff", 2)));

  auto v = s.get("machine/1");
  ASSERT_TRUE(v.has_value());
  ASSERT_TRUE(v->has_value());
  EXPECT_EQ(**v, "a2");
  auto bin = s.get(std::string("bin\0key", 7));
  ASSERT_TRUE(bin && *bin);
  EXPECT_EQ(**bin, std::string("\0\xff", 2));
  auto missing = s.get("machine/3");
  ASSERT_TRUE(missing.has_value());
  EXPECT_FALSE(missing->has_value());

  auto listed = s.list("machine/");
  ASSERT_TRUE(listed.has_value());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0], std::make_pair(std::string("machine/1"), std::string("a2")));
  EXPECT_EQ((*listed)[1], std::make_pair(std::string("machine/2"), std::string("b")));
  EXPECT_EQ(s.list("machine")->size(), 3u);
  EXPECT_EQ(s.list("")->size(), 5u);
  EXPECT_EQ(s.list("", 2)->size(), 2u);

  EXPECT_FALSE(s.erase("machine/1"));
  EXPECT_FALSE(s.erase("never-there"));
  EXPECT_FALSE(s.get("machine/1")->has_value());
  EXPECT_EQ(s.list("machine/")->size(), 1u);
}

TEST_F(StateStoreTest, PrefixEndingInFfBytesStillMatchesOnlyItsKeys) {
  tern::StateStore s(path_.string());
  const std::string prefix("a\xff", 2);
  EXPECT_FALSE(s.put(prefix + "1", "in"));
  EXPECT_FALSE(s.put(std::string("a\xff\xff", 3), "in too"));
  EXPECT_FALSE(s.put("b", "out"));
  EXPECT_FALSE(s.put(std::string("a\xfe", 2), "out"));
  auto listed = s.list(prefix);
  ASSERT_TRUE(listed.has_value());
  ASSERT_EQ(listed->size(), 2u);
  for (const auto& [k, v] : *listed) EXPECT_EQ(k.substr(0, 2), prefix);
}

TEST_F(StateStoreTest, TransactionCommitsAllOrNothing) {
  tern::StateStore s(path_.string());
  ASSERT_FALSE(s.put("count", "1"));
  auto committed = s.transaction([](tern::StateTransaction& tx) -> std::error_code {
    auto before = tx.get("count");
    if (!before || !*before) return tern::Errc::storage_failed;
    if (auto ec = tx.put("count", std::to_string(std::stoi(**before) + 1))) return ec;
    if (auto ec = tx.put("last", "m1")) return ec;
    auto seen = tx.get("last");  // own write visible inside
    return seen && *seen ? std::error_code() : tern::Errc::storage_failed;
  });
  EXPECT_FALSE(committed);
  EXPECT_EQ(**s.get("count"), "2");
  EXPECT_EQ(**s.get("last"), "m1");

  auto refused = s.transaction([](tern::StateTransaction& tx) -> std::error_code {
    EXPECT_FALSE(tx.put("count", "99"));
    EXPECT_FALSE(tx.erase("last"));
    return tern::Errc::invalid_argument;
  });
  EXPECT_EQ(refused, tern::Errc::invalid_argument);
  EXPECT_EQ(**s.get("count"), "2");
  EXPECT_EQ(**s.get("last"), "m1");

  EXPECT_THROW(s.transaction([](tern::StateTransaction& tx) -> std::error_code {
                 (void)tx.put("count", "100");
                 throw std::runtime_error("handler bug");
               }),
               std::runtime_error);
  EXPECT_EQ(**s.get("count"), "2");
  EXPECT_FALSE(s.put("after", "ok"));  // the store is usable after a rollback
}

TEST_F(StateStoreTest, SurvivesReopen) {
  {
    tern::StateStore s(path_.string());
    ASSERT_FALSE(s.put("k", "v"));
  }
  tern::StateStore again(path_.string());
  auto v = again.get("k");
  ASSERT_TRUE(v && *v);
  EXPECT_EQ(**v, "v");
}

TEST(StateStore, UnopenablePathIsAStorageError) {
  tern::StateStore s("/nonexistent-dir/for/sure/state.db");
  EXPECT_EQ(s.open(), tern::Errc::storage_failed);
  EXPECT_FALSE(s.last_error().empty());
  EXPECT_EQ(s.put("k", "v"), tern::Errc::storage_failed);
  EXPECT_FALSE(s.get("k").has_value());
}

// ---- a Service on the in-process broker ----

tern::ServiceOptions in_process_options(tern::InProcessBroker& broker, std::string name) {
  tern::ServiceOptions o;
  o.name = std::move(name);
  o.client.in_process = &broker;
  o.client.reconnect = tern::BackoffPolicy{10ms, 50ms, 2.0, 0.0};
  o.retry = tern::RetryPolicy{3, tern::BackoffPolicy{5ms, 20ms, 2.0, 0.0}};
  return o;
}

TEST(InProcess, ServicesExchangeEventsRequestsAndJsonWithoutSockets) {
  boost::asio::io_context io;
  tern::InProcessBroker broker(io);
  tern::Service analyzer(io, in_process_options(broker, "analyzer"));
  tern::Service alerter(io, in_process_options(broker, "alerter"));

  std::vector<double> rms_seen;
  std::string alert_trace;
  analyzer.on("sensors/+/window", tern::json_handler([&](const tern::Event& e, const boost::json::value& v) {
    rms_seen.push_back(v.at("rms").to_number<double>());
    publish_json(analyzer, "alerts/m1", boost::json::value{{"severity", "high"}}, tern::Qos::exactly_once);
    alert_trace = e.traceparent();
    return tern::Outcome::success();
  }));
  std::vector<tern::Message> alerts;
  alerter.on("alerts/#", [&](const tern::Event& e) {
    alerts.push_back(e.message());
    return tern::Outcome::success();
  }, tern::Qos::exactly_once);
  alerter.respond("alerts/ack", tern::json_responder([](const tern::Event&, const boost::json::value& request,
                                                        boost::json::value& reply) {
    reply = {{"acknowledged", request.at("id")}};
    return tern::Outcome::success();
  }));

  ASSERT_FALSE(analyzer.start());
  ASSERT_FALSE(alerter.start());
  ASSERT_TRUE(run_until(io, [&] { return analyzer.ready() && alerter.ready(); }));

  tern::Service sensor(io, in_process_options(broker, "sensor"));
  ASSERT_FALSE(sensor.start());
  ASSERT_TRUE(run_until(io, [&] { return sensor.ready(); }));
  ASSERT_FALSE(publish_json(sensor, "sensors/m1/window", boost::json::value{{"rms", 7.5}}));

  ASSERT_TRUE(run_until(io, [&] { return alerts.size() == 1; }));
  EXPECT_EQ(rms_seen, std::vector<double>{7.5});
  EXPECT_EQ(alerts[0].qos, tern::Qos::exactly_once);
  EXPECT_EQ(alerts[0].payload, R"({"severity":"high"})");
  ASSERT_TRUE(alerts[0].content_type.has_value());
  EXPECT_EQ(*alerts[0].content_type, "application/json");
  // The alert continues the trace of the window that caused it.
  const std::string* trace = alerts[0].user_property(tern::kTraceparentProperty);
  ASSERT_NE(trace, nullptr);
  EXPECT_EQ(trace->substr(0, 35), alert_trace.substr(0, 35));

  bool replied = false;
  std::string reply;
  sensor.request("alerts/ack", R"({"id": 42})", 5s, [&](std::error_code ec, tern::Message m) {
    EXPECT_FALSE(ec) << ec.message();
    reply = m.payload;
    replied = true;
  });
  ASSERT_TRUE(run_until(io, [&] { return replied; }));
  EXPECT_EQ(reply, R"({"acknowledged":42})");
  EXPECT_GE(broker.stats().connections_current, 3u);
  EXPECT_GE(broker.stats().messages_received, 3u);

  bool stopped = false;
  analyzer.stop([&] { stopped = true; });
  ASSERT_TRUE(run_until(io, [&] { return stopped; }));
}

TEST(InProcess, FailingHandlerIsRetriedThenDeadLetteredAndInvalidJsonAtOnce) {
  boost::asio::io_context io;
  tern::InProcessBroker broker(io);
  tern::Service svc(io, in_process_options(broker, "worker"));
  int calls = 0;
  svc.on("jobs/plain", [&](const tern::Event&) {
    ++calls;
    return tern::Outcome::failure("always broken");
  });
  int json_calls = 0;
  svc.on("jobs/json", tern::json_handler([&](const tern::Event&, const boost::json::value&) {
    ++json_calls;
    return tern::Outcome::success();
  }));
  tern::Client watcher(io, [&] {
    tern::ClientOptions o;
    o.in_process = &broker;
    o.client_id = "dlq-watcher";
    return o;
  }());
  std::vector<tern::Message> dead;
  bool subscribed = false;
  watcher.on_message([&](const tern::Message& m) { dead.push_back(m); });
  watcher.subscribe({tern::Subscription{"$dlq/worker/#", tern::Qos::at_least_once}},
                    [&](std::error_code ec, std::vector<std::uint8_t>) { subscribed = !ec; });
  ASSERT_FALSE(watcher.start());
  ASSERT_FALSE(svc.start());
  ASSERT_TRUE(run_until(io, [&] { return subscribed && svc.ready(); }));

  ASSERT_FALSE(svc.publish("jobs/plain", "x"));
  ASSERT_FALSE(svc.publish("jobs/json", "{not json"));
  ASSERT_TRUE(run_until(io, [&] { return dead.size() == 2; }));
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(json_calls, 0);
  std::map<std::string, std::string> why;
  for (const auto& m : dead) why[m.topic] = *m.user_property(tern::kTernErrorProperty);
  EXPECT_NE(why["$dlq/worker/jobs/plain"].find("always broken (after 3 attempts)"), std::string::npos);
  EXPECT_NE(why["$dlq/worker/jobs/json"].find("invalid JSON"), std::string::npos);
  EXPECT_NE(why["$dlq/worker/jobs/json"].find("after 1 attempts"), std::string::npos);
  const auto stats = svc.stats();
  EXPECT_EQ(stats.failed, 4u);
  EXPECT_EQ(stats.retried, 2u);
  EXPECT_EQ(stats.dead_lettered, 2u);
  EXPECT_EQ(stats.handler_latency.count, 4u);
}

TEST(InProcess, ClientSeesTheCloseWhenTheBrokerGoesAwayAndKeepsRetrying) {
  boost::asio::io_context io;
  auto broker = std::make_unique<tern::InProcessBroker>(io);
  tern::ClientOptions o;
  o.in_process = broker.get();
  o.client_id = "survivor";
  o.reconnect = tern::BackoffPolicy{5ms, 20ms, 2.0, 0.0};
  tern::Client client(io, o);
  int losses = 0;
  client.on_connection_lost([&](std::error_code, std::uint8_t) { ++losses; });
  ASSERT_FALSE(client.start());
  ASSERT_TRUE(run_until(io, [&] { return client.connected(); }));
  broker.reset();
  ASSERT_TRUE(run_until(io, [&] { return losses >= 2; }));  // the close, then a failed attempt
  EXPECT_FALSE(client.connected());
  client.stop();
  ASSERT_TRUE(run_until(io, [&] { return !client.connected(); }));
}

TEST(InProcess, ReadyzAndMetricsOfAServiceOnTheEmbeddedBroker) {
  boost::asio::io_context io;
  tern::InProcessBroker broker(io);
  auto options = in_process_options(broker, "metered");
  options.http_listen = "127.0.0.1:0";
  tern::Service svc(io, options);
  svc.on("in/#", [](const tern::Event&) { return tern::Outcome::success(); });
  ASSERT_FALSE(svc.start());
  ASSERT_NE(svc.http_port(), 0);
  EXPECT_EQ(tern::test::http_get(io, svc.http_port(), "/healthz").status, 200u);
  ASSERT_TRUE(run_until(io, [&] { return svc.ready(); }));
  auto ready = tern::test::http_get(io, svc.http_port(), "/readyz");
  EXPECT_EQ(ready.status, 200u);
  ASSERT_FALSE(svc.publish("in/1", "x"));
  ASSERT_TRUE(run_until(io, [&] { return svc.stats().handled == 1; }));
  auto metrics = tern::test::http_get(io, svc.http_port(), "/metrics");
  EXPECT_EQ(metrics.status, 200u);
  EXPECT_NE(metrics.content_type.find("version=0.0.4"), std::string::npos);
  EXPECT_NE(metrics.body.find("tern_service_events_handled_total{service=\"metered\"} 1\n"), std::string::npos)
      << metrics.body;
  EXPECT_EQ(tern::test::http_get(io, svc.http_port(), "/other").status, 404u);
}

TEST(InProcess, ReadinessSaysOverloadedWhileTheOutboxIsAboveItsLimit) {
  boost::asio::io_context io;
  tern::InProcessBroker broker(io);
  auto options = in_process_options(broker, "busy");
  options.overload_outbox_depth = 3;
  tern::Service svc(io, options);
  EXPECT_EQ(svc.readiness().reason, "not started");
  ASSERT_FALSE(svc.start());
  ASSERT_TRUE(run_until(io, [&] { return svc.ready(); }));
  // Queued without running the loop: nothing can have been acknowledged yet.
  for (int i = 0; i < 4; ++i) ASSERT_FALSE(svc.publish("out/x", "m"));
  const auto busy = svc.readiness();
  EXPECT_FALSE(busy.ready);
  EXPECT_EQ(busy.reason, "overloaded: 4 publishes waiting for the broker (limit 3)");
  ASSERT_TRUE(run_until(io, [&] { return svc.stats().outbox_depth == 0; }));
  EXPECT_TRUE(svc.readiness().ready);
  svc.stop();
  EXPECT_EQ(svc.readiness().reason, "stopping");
}


TEST(InProcess, StateIsReachableFromTheService) {
  boost::asio::io_context io;
  tern::InProcessBroker broker(io);
  const auto path = temp_db("tern-svc-state");
  {
    auto options = in_process_options(broker, "counter");
    options.state_path = path.string();
    tern::Service svc(io, options);
    svc.on("count/+", [&](const tern::Event& e) {
      auto r = svc.state().transaction([&](tern::StateTransaction& tx) -> std::error_code {
        auto old = tx.get(e.topic());
        if (!old) return old.error();
        return tx.put(e.topic(), std::to_string((*old ? std::stoi(**old) : 0) + 1));
      });
      return r ? tern::Outcome::failure(r.message()) : tern::Outcome::success();
    });
    ASSERT_FALSE(svc.start());
    ASSERT_TRUE(run_until(io, [&] { return svc.ready(); }));
    for (int i = 0; i < 3; ++i) ASSERT_FALSE(svc.publish("count/a", "x"));
    ASSERT_FALSE(svc.publish("count/b", "x"));
    ASSERT_TRUE(run_until(io, [&] { return svc.stats().handled == 4; }));
  }
  tern::StateStore reopened(path.string());
  EXPECT_EQ(**reopened.get("count/a"), "3");
  EXPECT_EQ(**reopened.get("count/b"), "1");
  remove_db(path);
}

}  // namespace
