#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "admin/api.hpp"

namespace tern::admin {
namespace {

namespace json = boost::json;

TEST(ParseTarget, SplitsPathAndDecodesQuery) {
  const auto t = parse_target("/api/v1/logs?level=warning&limit=10&q=a%2Fb+c&flag&bad=%zz");
  EXPECT_EQ(t.path, "/api/v1/logs");
  EXPECT_EQ(t.param("level"), "warning");
  EXPECT_EQ(t.param("limit"), "10");
  EXPECT_EQ(t.param("q"), "a/b c");
  EXPECT_EQ(t.param("flag"), "");
  EXPECT_EQ(t.param("bad"), "%zz");
  EXPECT_EQ(t.param("missing"), std::nullopt);
  EXPECT_EQ(parse_target("/metrics").path, "/metrics");
  EXPECT_TRUE(parse_target("/metrics?").query.empty());
  EXPECT_EQ(parse_target("/x?a=%4").param("a"), "%4");
}

TEST(BearerToken, MatchesOnlyTheExactToken) {
  EXPECT_TRUE(bearer_token_matches("Bearer s3cret", "s3cret"));
  EXPECT_TRUE(bearer_token_matches("bearer s3cret", "s3cret"));
  EXPECT_FALSE(bearer_token_matches("Bearer s3cret ", "s3cret"));
  EXPECT_FALSE(bearer_token_matches("Bearer s3creT", "s3cret"));
  EXPECT_FALSE(bearer_token_matches("Bearer s3cre", "s3cret"));
  EXPECT_FALSE(bearer_token_matches("Basic s3cret", "s3cret"));
  EXPECT_FALSE(bearer_token_matches("Bearers3cret", "s3cret"));
  EXPECT_FALSE(bearer_token_matches("", "s3cret"));
  EXPECT_FALSE(bearer_token_matches("Bearer-s3cret", "s3cret"));
}

TEST(ReadinessJson, NamesTheFailingChecks) {
  const auto doc = json::parse(readiness_json({{"listeners", std::nullopt}, {"store", "database is closed"}}));
  EXPECT_EQ(doc.at("ready"), false);
  const auto& checks = doc.at("checks").as_array();
  ASSERT_EQ(checks.size(), 2U);
  EXPECT_EQ(checks[0].at("name"), "listeners");
  EXPECT_EQ(checks[0].at("ok"), true);
  EXPECT_EQ(checks[1].at("ok"), false);
  EXPECT_EQ(checks[1].at("reason"), "database is closed");
  EXPECT_EQ(json::parse(readiness_json({})).at("ready"), true);
}

TEST(ClientsJson, ListsClientsWithTotal) {
  broker::ClientInfo c;
  c.client_id = "sensor-\"1\"";
  c.peer = "127.0.0.1:5555";
  c.connected = true;
  c.protocol_version = 4;
  c.queued_messages = 3;
  broker::ClientInfo d;
  d.client_id = "offline";
  d.peer = "";
  const auto doc = json::parse(clients_json({c, d}, 7));
  EXPECT_EQ(doc.at("total"), 7);
  const auto& list = doc.at("clients").as_array();
  ASSERT_EQ(list.size(), 2U);
  EXPECT_EQ(list[0].at("client_id"), "sensor-\"1\"");
  EXPECT_EQ(list[0].at("peer"), "127.0.0.1:5555");
  EXPECT_EQ(list[0].at("protocol_version"), 4);
  EXPECT_EQ(list[0].at("queued_messages"), 3);
  EXPECT_FALSE(list[1].as_object().contains("peer"));
}

TEST(SubscriptionsJson, ListsFilters) {
  const auto doc = json::parse(subscriptions_json({{"a", "$share/g/x/#", 1, 0}, {"b", "y/+", 2, 9}}, 2));
  const auto& list = doc.at("subscriptions").as_array();
  ASSERT_EQ(list.size(), 2U);
  EXPECT_EQ(list[0].at("filter"), "$share/g/x/#");
  EXPECT_FALSE(list[0].as_object().contains("subscription_id"));
  EXPECT_EQ(list[1].at("subscription_id"), 9);
  EXPECT_EQ(list[1].at("qos"), 2);
}

TEST(LogsJson, EmbedsTheLinesAsObjects) {
  std::vector<log::RingLine> lines{{1, log::Level::warning, R"({"level":"warning","msg":"a"})"},
                                   {2, log::Level::error, R"({"level":"error","msg":"b"})"}};
  const auto doc = json::parse(logs_json(lines, 50));
  EXPECT_EQ(doc.at("capacity"), 50);
  ASSERT_EQ(doc.at("lines").as_array().size(), 2U);
  EXPECT_EQ(doc.at("lines").as_array()[1].at("msg"), "b");
  EXPECT_EQ(json::parse(logs_json({}, 0)).at("lines").as_array().size(), 0U);
}

TEST(StatusJson, SummarisesTheSnapshot) {
  MetricsSnapshot snap;
  snap.node = "gw1";
  snap.version = "0.1.0";
  broker::BrokerStats stats;
  stats.connections_current = 2;
  stats.dropped_expired = 5;
  snap.broker = stats;
  snap.queued_messages = 9;
  snap.deepest_queues = {{"slow", 9}};
  snap.alerts = {{"queue_depth", true, 9, 5}};
  const auto doc = json::parse(status_json(snap, StatusInfo{12.5, false}));
  EXPECT_EQ(doc.at("node"), "gw1");
  EXPECT_EQ(doc.at("ready"), false);
  EXPECT_EQ(doc.at("uptime_seconds"), 12.5);
  EXPECT_EQ(doc.at("broker").at("connections_current"), 2);
  EXPECT_EQ(doc.at("broker").at("dropped").at("expired"), 5);
  EXPECT_EQ(doc.at("queued_messages"), 9);
  EXPECT_EQ(doc.at("deepest_queues").as_array()[0].at("client_id"), "slow");
  EXPECT_EQ(doc.at("alerts").as_array()[0].at("firing"), true);
}

}  // namespace
}  // namespace tern::admin
