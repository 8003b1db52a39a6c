#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "config.hpp"

namespace tern::ternd {
namespace {

Config parse_ok(std::string_view text) {
  auto parsed = parse_config(text, "t.toml");
  EXPECT_TRUE(parsed.has_value()) << (parsed ? "" : parsed.error());
  return parsed ? *parsed : Config{};
}

std::string parse_error(std::string_view text) {
  auto parsed = parse_config(text, "t.toml");
  EXPECT_FALSE(parsed.has_value()) << "accepted:\n" << text;
  return parsed ? std::string() : parsed.error();
}

TEST(ConfigDefaults, EmptyFileGivesEmbeddedDefaults) {
  const Config c = parse_ok("");
  const broker::BrokerConfig defaults;
  EXPECT_EQ(c.broker.node_name, "ternd");
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].host, "127.0.0.1");
  EXPECT_EQ(c.listeners[0].port, 1883);
  EXPECT_EQ(c.data_dir, "");
  EXPECT_EQ(c.log_level, log::Level::info);
  EXPECT_EQ(c.broker.max_connections, defaults.max_connections);
  EXPECT_EQ(c.broker.max_packet_size, 1048576u);
  EXPECT_EQ(c.broker.receive_maximum, 100);
  EXPECT_EQ(c.broker.queue_full_policy, broker::QueueFullPolicy::drop_oldest);
  EXPECT_EQ(c.broker.connect_timeout, std::chrono::milliseconds(10000));
  EXPECT_EQ(c.broker.sys_interval, std::chrono::seconds(10));
}

TEST(ConfigDefaults, NoFileAndNoFlagsGivesDefaults) {
  auto c = resolve_config(Overrides{});
  ASSERT_TRUE(c.has_value());
  ASSERT_EQ(c->listeners.size(), 1u);
  EXPECT_EQ(format_listen_address(c->listeners[0]), "127.0.0.1:1883");
}

TEST(ConfigKeys, EveryKeyIsRead) {
  const Config c = parse_ok(R"(
node_name = "gateway-7"
log_level = "debug"
data_dir = "/tmp/tern-data"
[[listener]]
address = "0.0.0.0:1884"
[[listener]]
address = "[::1]:0"
[limits]
max_connections = 50
max_packet_size = 2048
receive_maximum = 10
max_inflight_out = 20
max_queued_messages = 30
max_queued_bytes = 4096
queue_full_policy = "disconnect"
max_keep_alive = 60
topic_alias_maximum = 0
max_session_expiry = 4294967295
connect_timeout_ms = 2500
max_write_queue_bytes = 65536
max_stream_read = 77
[features]
retain_available = false
wildcard_subscriptions = false
shared_subscriptions = false
subscription_identifiers = false
[sys]
interval_s = 3
)");
  EXPECT_EQ(c.broker.node_name, "gateway-7");
  EXPECT_EQ(c.log_level, log::Level::debug);
  EXPECT_EQ(c.data_dir, "/tmp/tern-data");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].host, "0.0.0.0");
  EXPECT_EQ(c.listeners[0].port, 1884);
  EXPECT_EQ(c.listeners[1].host, "::1");
  EXPECT_EQ(c.listeners[1].port, 0);
  EXPECT_EQ(c.broker.max_connections, 50u);
  EXPECT_EQ(c.broker.max_packet_size, 2048u);
  EXPECT_EQ(c.broker.receive_maximum, 10);
  EXPECT_EQ(c.broker.max_inflight_out, 20);
  EXPECT_EQ(c.broker.max_queued_messages, 30u);
  EXPECT_EQ(c.broker.max_queued_bytes, 4096u);
  EXPECT_EQ(c.broker.queue_full_policy, broker::QueueFullPolicy::disconnect);
  EXPECT_EQ(c.broker.max_keep_alive, 60);
  EXPECT_EQ(c.broker.topic_alias_maximum, 0);
  EXPECT_EQ(c.broker.max_session_expiry, 4294967295u);
  EXPECT_EQ(c.broker.connect_timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(c.broker.max_write_queue_bytes, 65536u);
  EXPECT_EQ(c.broker.max_stream_read, 77u);
  EXPECT_FALSE(c.broker.retain_available);
  EXPECT_FALSE(c.broker.wildcard_subscriptions);
  EXPECT_FALSE(c.broker.shared_subscriptions);
  EXPECT_FALSE(c.broker.subscription_identifiers);
  EXPECT_EQ(c.broker.sys_interval, std::chrono::seconds(3));
}

TEST(ConfigKeys, QueueFullPolicies) {
  EXPECT_EQ(parse_ok("limits.queue_full_policy = \"drop_new\"").broker.queue_full_policy,
            broker::QueueFullPolicy::drop_new);
  EXPECT_EQ(parse_ok("limits.queue_full_policy = \"drop_oldest\"").broker.queue_full_policy,
            broker::QueueFullPolicy::drop_oldest);
  EXPECT_EQ(parse_ok("limits.queue_full_policy = \"disconnect\"").broker.queue_full_policy,
            broker::QueueFullPolicy::disconnect);
}

TEST(ConfigKeys, LogLevels) {
  EXPECT_EQ(parse_ok("log_level = \"info\"").log_level, log::Level::info);
  EXPECT_EQ(parse_ok("log_level = \"warning\"").log_level, log::Level::warning);
  EXPECT_EQ(parse_ok("log_level = \"error\"").log_level, log::Level::error);
}

TEST(ConfigKeys, RangeBoundsAreInclusive) {
  EXPECT_EQ(parse_ok("[limits]\nmax_packet_size = 16").broker.max_packet_size, 16u);
  EXPECT_EQ(parse_ok("[limits]\nmax_packet_size = 268435455").broker.max_packet_size, 268435455u);
  EXPECT_EQ(parse_ok("[limits]\nreceive_maximum = 65535").broker.receive_maximum, 65535);
  EXPECT_EQ(parse_ok("[limits]\nmax_keep_alive = 1").broker.max_keep_alive, 1);
}

TEST(ConfigErrors, OutOfRangeNamesFileLineKeyRangeAndValue) {
  EXPECT_EQ(parse_error("node_name = \"x\"\n[limits]\nreceive_maximum = 0\n"),
            "t.toml:3: limits.receive_maximum must be between 1 and 65535 (got 0)");
  EXPECT_EQ(parse_error("[limits]\nmax_packet_size = 15"),
            "t.toml:2: limits.max_packet_size must be between 16 and 268435455 (got 15)");
  EXPECT_EQ(parse_error("[limits]\nmax_packet_size = 268435456"),
            "t.toml:2: limits.max_packet_size must be between 16 and 268435455 (got 268435456)");
  EXPECT_EQ(parse_error("[limits]\nmax_keep_alive = 65536"),
            "t.toml:2: limits.max_keep_alive must be between 1 and 65535 (got 65536)");
  EXPECT_EQ(parse_error("[limits]\nmax_connections = -1"),
            "t.toml:2: limits.max_connections must be between 1 and 10000000 (got -1)");
  EXPECT_EQ(parse_error("[sys]\ninterval_s = 0"), "t.toml:2: sys.interval_s must be between 1 and 86400 (got 0)");
  EXPECT_EQ(parse_error("[limits]\nmax_session_expiry = 4294967296"),
            "t.toml:2: limits.max_session_expiry must be between 0 and 4294967295 (got 4294967296)");
}

TEST(ConfigErrors, WrongTypes) {
  EXPECT_EQ(parse_error("[limits]\nmax_connections = \"many\""),
            "t.toml:2: limits.max_connections must be an integer (got string)");
  EXPECT_EQ(parse_error("[limits]\nmax_connections = 1.5"),
            "t.toml:2: limits.max_connections must be an integer (got float)");
  EXPECT_EQ(parse_error("[features]\nretain_available = 1"),
            "t.toml:2: features.retain_available must be true or false (got integer)");
  EXPECT_EQ(parse_error("node_name = 3"), "t.toml:1: node_name must be a string (got integer)");
  EXPECT_EQ(parse_error("limits = 3"), "t.toml:1: limits must be a table (got integer)");
  EXPECT_NE(parse_error("[listener]\naddress = \"127.0.0.1:1\"").find("listener must be an array of tables"),
            std::string::npos);
}

TEST(ConfigErrors, BadEnumValues) {
  EXPECT_EQ(parse_error("\n\nlimits.queue_full_policy = \"block\""),
            "t.toml:3: limits.queue_full_policy must be one of drop_new, drop_oldest, disconnect (got \"block\")");
  EXPECT_EQ(parse_error("log_level = \"verbose\""),
            "t.toml:1: log_level must be one of debug, info, warning, error (got \"verbose\")");
}

TEST(ConfigErrors, BadStrings) {
  EXPECT_NE(parse_error("node_name = \"\"").find("t.toml:1: node_name must be 1 to 64 characters long"),
            std::string::npos);
  EXPECT_NE(parse_error("node_name = \"a/b\"").find("t.toml:1: node_name must be printable ASCII"),
            std::string::npos);
  EXPECT_NE(parse_error("data_dir = \"\"").find("t.toml:1: data_dir must not be empty"), std::string::npos);
}

TEST(ConfigThreads, DefaultsToOneAndTakesOneToSixtyFour) {
  EXPECT_EQ(parse_ok("").threads, 1u);
  EXPECT_EQ(parse_ok("threads = 2").threads, 2u);
  EXPECT_EQ(parse_ok("threads = 64").threads, 64u);
  EXPECT_NE(parse_error("\nthreads = 0").find("t.toml:2: threads must be between 1 and 64 (got 0)"), std::string::npos);
  EXPECT_NE(parse_error("threads = 65").find("t.toml:1: threads must be between 1 and 64"), std::string::npos);
  EXPECT_NE(parse_error("threads = \"2\"").find("t.toml:1: threads"), std::string::npos);
  EXPECT_NE(to_toml(parse_ok("threads = 3")).find("threads = 3\n"), std::string::npos);
}

TEST(ConfigErrors, UnknownKeysNameTheKeyLineAndAllowedKeys) {
  EXPECT_EQ(parse_error("node_name = \"a\"\nnodename = \"b\""),
            "t.toml:2: unknown key 'nodename' (allowed keys: node_name, log_level, durability, data_dir, threads, "
            "listener, stream, limits, store, features, sys, admin, log, alerts, tracing, security)");
  EXPECT_EQ(parse_error("[limits]\nmax_connections = 5\nmax_conections = 6"),
            "t.toml:3: unknown key 'limits.max_conections' (allowed keys: max_connections, max_packet_size, "
            "receive_maximum, max_inflight_out, max_queued_messages, max_queued_bytes, queue_full_policy, "
            "max_keep_alive, topic_alias_maximum, max_session_expiry, connect_timeout_ms, "
            "max_write_queue_bytes, max_stream_read)");
  EXPECT_EQ(parse_error("[features]\nretain = true"),
            "t.toml:2: unknown key 'features.retain' (allowed keys: retain_available, wildcard_subscriptions, "
            "shared_subscriptions, subscription_identifiers)");
  EXPECT_EQ(parse_error("[[listener]]\naddress = \"127.0.0.1:1\"\nport = 5"),
            "t.toml:3: unknown key 'listener[0].port' (allowed keys: address, transport, cert, key, ca, crl, psk_file, "
            "client_certificates, handshake_timeout_ms, ws_path)");
  EXPECT_EQ(parse_error("[sys]\nintervall = 5"), "t.toml:2: unknown key 'sys.intervall' (allowed keys: interval_s)");
}

TEST(ConfigErrors, ControlCharactersAreRejectedWithTheirPosition) {
  EXPECT_EQ(parse_error("node_name = \"a\"\n[\x01x]\n"),
            "t.toml:2:2: control character U+0001 is not allowed in TOML");
  EXPECT_EQ(parse_error(std::string_view("a = 1\x00", 6)), "t.toml:1:6: control character U+0000 is not allowed in TOML");
  EXPECT_EQ(parse_ok("# tabs\tand CRLF line ends are fine\r\nnode_name = \"x\"\r\n").broker.node_name, "x");
}

TEST(ConfigErrors, MalformedTableHeaderIsASyntaxError) {
  const std::string e = parse_error("[[,listener]]\naddress = \"127.0.0.1:1\"\n");
  EXPECT_EQ(e.rfind("t.toml:1:3: ", 0), 0u) << e;
}

TEST(ConfigErrors, SyntaxErrorGivesFileLineColumnAndDescription) {
  const std::string e = parse_error("node_name = \"a\"\n[limits\nmax_connections = 5\n");
  EXPECT_EQ(e.rfind("t.toml:2:", 0), 0u) << e;
  EXPECT_GT(e.size(), std::string("t.toml:2:8: ").size()) << e;
  const std::string e2 = parse_error("log_level = info\n");
  EXPECT_EQ(e2.rfind("t.toml:1:", 0), 0u) << e2;
  const std::string dup = parse_error("node_name = \"a\"\nnode_name = \"b\"\n");
  EXPECT_EQ(dup.rfind("t.toml:2:", 0), 0u) << dup;
}

TEST(ConfigListeners, BadListenerAddresses) {
  EXPECT_NE(parse_error("[[listener]]\naddress = \"127.0.0.1\"").find("t.toml:2: listener[0].address '127.0.0.1' is not HOST:PORT"),
            std::string::npos);
  EXPECT_NE(parse_error("[[listener]]\naddress = \"127.0.0.1:1\"\n[[listener]]\naddress = \"h:70000\"")
                .find("t.toml:4: listener[1].address port '70000'"),
            std::string::npos);
  EXPECT_NE(parse_error("[[listener]]\n").find("t.toml:1: listener[0] needs an address"), std::string::npos);
  EXPECT_NE(parse_error("listener = []").find("listener must not be empty"), std::string::npos);
}

TEST(ConfigStreams, StreamsAreReadInOrder) {
  const Config c = parse_ok(R"(
[[stream]]
name = "vibration"
filter = "sensors/+/vibration"
max_age_s = 86400
max_bytes = 1000000
[[stream]]
name = "all"
filter = "#"
)");
  ASSERT_EQ(c.broker.streams.size(), 2u);
  EXPECT_EQ(c.broker.streams[0].name, "vibration");
  EXPECT_EQ(c.broker.streams[0].filter, "sensors/+/vibration");
  EXPECT_EQ(c.broker.streams[0].max_age, std::chrono::seconds(86400));
  EXPECT_EQ(c.broker.streams[0].max_bytes, 1000000u);
  EXPECT_EQ(c.broker.streams[1].name, "all");
  EXPECT_EQ(c.broker.streams[1].max_age, std::chrono::seconds(0));
  EXPECT_EQ(c.broker.streams[1].max_bytes, 0u);
  EXPECT_TRUE(parse_ok("").broker.streams.empty());
}

TEST(ConfigStreams, BadStreams) {
  EXPECT_EQ(parse_error("[[stream]]\nname = \"a\"\nfilter = \"a/#/b\""),
            "t.toml:3: stream[0].filter \"a/#/b\" is not a valid MQTT topic filter");
  EXPECT_NE(parse_error("[[stream]]\nname = \"a/b\"\nfilter = \"x\"").find("t.toml:2: stream[0].name must be"),
            std::string::npos);
  EXPECT_NE(parse_error("[[stream]]\nfilter = \"x\"").find("t.toml:1: stream[0] needs a name and a filter"),
            std::string::npos);
  EXPECT_EQ(parse_error("[[stream]]\nname = \"a\"\nfilter = \"x\"\n[[stream]]\nname = \"a\"\nfilter = \"y\""),
            "t.toml:5: stream[1].name \"a\" is already the name of another stream");
  EXPECT_EQ(parse_error("[[stream]]\nname = \"a\"\nfilter = \"x\"\nmax_age_s = -1"),
            "t.toml:4: stream[0].max_age_s must be between 0 and 3153600000 (got -1)");
  EXPECT_EQ(parse_error("[[stream]]\nname = \"a\"\nfilter = \"x\"\nretention = 1"),
            "t.toml:4: unknown key 'stream[0].retention' (allowed keys: name, filter, max_age_s, max_bytes)");
}

TEST(ConfigOperations, DurabilityAdminLogAndAlertsAreRead) {
  const Config c = parse_ok(R"(
durability = "batch"
[admin]
listen = "[::1]:9090"
token = "secret"
max_connections = 4
[log]
ring_lines = 0
forward_level = "warning"
[alerts]
interval_ms = 500
queue_depth = 100
drop_rate = 2.5
store_latency_ms = 200
memory_mb = 64
)");
  EXPECT_EQ(c.durability, Durability::batch);
  EXPECT_EQ(c.admin.listen, "[::1]:9090");
  EXPECT_EQ(c.admin.token, "secret");
  EXPECT_EQ(c.admin.max_connections, 4u);
  EXPECT_EQ(c.admin.log_ring_lines, 0u);
  EXPECT_EQ(c.admin.log_forward_level, log::Level::warning);
  EXPECT_EQ(c.admin.alert_interval_ms, 500);
  EXPECT_EQ(c.admin.alert_queue_depth, 100u);
  EXPECT_EQ(c.admin.alert_drop_rate, 2.5);
  EXPECT_EQ(c.admin.alert_store_latency_ms, 200u);
  EXPECT_EQ(c.admin.alert_memory_mb, 64u);
}

TEST(ConfigOperations, DefaultsLeaveAlertsOffAndAdminOnLoopback) {
  const Config c = parse_ok("");
  EXPECT_EQ(c.durability, Durability::fsync);
  EXPECT_EQ(c.admin.listen, "127.0.0.1:8080");
  EXPECT_FALSE(c.admin.log_forward_level);
  EXPECT_FALSE(c.admin.alert_queue_depth);
  EXPECT_FALSE(c.admin.alert_drop_rate);
  EXPECT_EQ(parse_ok("[admin]\nlisten = \"\"").admin.listen, "");
  EXPECT_EQ(parse_ok("[alerts]\ndrop_rate = 3").admin.alert_drop_rate, 3.0);
}

TEST(ConfigOperations, BadValues) {
  EXPECT_EQ(parse_error("durability = \"sometimes\""),
            "t.toml:1: durability must be one of fsync, batch, memory (got \"sometimes\")");
  EXPECT_NE(parse_error("[admin]\nlisten = \"8080\"").find("t.toml:2: admin.listen '8080' is not HOST:PORT"),
            std::string::npos);
  EXPECT_EQ(parse_error("[admin]\nmax_connections = 0"),
            "t.toml:2: admin.max_connections must be between 1 and 1024 (got 0)");
  EXPECT_EQ(parse_error("[alerts]\ndrop_rate = -1.0"), "t.toml:2: alerts.drop_rate must be a number of at least 0 (got -1)");
  EXPECT_EQ(parse_error("[alerts]\ndrop_rate = nan"), "t.toml:2: alerts.drop_rate must be a number of at least 0 (got nan)");
  EXPECT_EQ(parse_error("[alerts]\ndrop_rate = \"1\""), "t.toml:2: alerts.drop_rate must be a number (got string)");
  EXPECT_EQ(parse_error("[log]\nforward_level = \"all\""),
            "t.toml:2: log.forward_level must be one of debug, info, warning, error (got \"all\")");
  EXPECT_EQ(parse_error("[admin]\nport = 1"), "t.toml:2: unknown key 'admin.port' (allowed keys: listen, token, max_connections, cert, key)");
}

TEST(Overrides, DurabilityAndAdminFlags) {
  Config c = parse_ok("durability = \"fsync\"\n[admin]\nlisten = \"127.0.0.1:8080\"");
  Overrides o;
  o.durability = "memory";
  o.admin = "";
  ASSERT_TRUE(apply_overrides(c, o).has_value());
  EXPECT_EQ(c.durability, Durability::memory);
  EXPECT_EQ(c.admin.listen, "");
  Overrides bad;
  bad.admin = "nonsense";
  auto r = apply_overrides(c, bad);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().rfind("--admin: ", 0), 0u) << r.error();
  Overrides bad_durability;
  bad_durability.durability = "disk";
  EXPECT_FALSE(apply_overrides(c, bad_durability).has_value());
}

TEST(ListenAddress, ParsesIPv4IPv6AndNames) {
  auto v4 = parse_listen_address("127.0.0.1:1883");
  ASSERT_TRUE(v4.has_value());
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 1883);
  auto v6 = parse_listen_address("[::1]:8883");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 8883);
  auto any = parse_listen_address("[::]:0");
  ASSERT_TRUE(any.has_value());
  EXPECT_EQ(any->host, "::");
  EXPECT_EQ(any->port, 0);
  auto name = parse_listen_address("localhost:65535");
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->host, "localhost");
  EXPECT_EQ(name->port, 65535);
}

TEST(ListenAddress, RejectsMalformedAddresses) {
  for (const char* bad : {"", ":", "1883", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:18a3",
                          "127.0.0.1:000001", "::1:1883", "[::1]", "[::1]1883", "[::1:1883", "[nothost]:1",
                          "bad host:1", ":1883"}) {
    EXPECT_FALSE(parse_listen_address(bad).has_value()) << bad;
  }
}

TEST(ListenAddress, FormatIsTheInverse) {
  for (const char* text : {"127.0.0.1:1883", "[::1]:0", "localhost:80", "[fe80::1]:1"}) {
    auto parsed = parse_listen_address(text);
    ASSERT_TRUE(parsed.has_value()) << text;
    EXPECT_EQ(format_listen_address(*parsed), text);
  }
}

TEST(Overrides, FlagsOverrideTheFile) {
  Config c = parse_ok("log_level = \"error\"\ndata_dir = \"/a\"\n[[listener]]\naddress = \"127.0.0.1:1\"\n"
                      "[[listener]]\naddress = \"127.0.0.1:2\"\n");
  Overrides o;
  o.listen = {"[::1]:1884"};
  o.data_dir = "/b";
  o.log_level = "debug";
  ASSERT_TRUE(apply_overrides(c, o).has_value());
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].host, "::1");
  EXPECT_EQ(c.listeners[0].port, 1884);
  EXPECT_EQ(c.data_dir, "/b");
  EXPECT_EQ(c.log_level, log::Level::debug);
}

TEST(Overrides, NoFlagsKeepTheFile) {
  Config c = parse_ok("log_level = \"error\"\n[[listener]]\naddress = \"127.0.0.1:1\"\n");
  ASSERT_TRUE(apply_overrides(c, Overrides{}).has_value());
  EXPECT_EQ(c.log_level, log::Level::error);
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].port, 1);
}

TEST(Overrides, RepeatedListenGivesEveryListenerInOrder) {
  Config c;
  Overrides o;
  o.listen = {"127.0.0.1:0", "[::1]:0", "127.0.0.1:1885"};
  ASSERT_TRUE(apply_overrides(c, o).has_value());
  ASSERT_EQ(c.listeners.size(), 3u);
  EXPECT_EQ(format_listen_address(c.listeners[2]), "127.0.0.1:1885");
}

TEST(Overrides, BadFlagValuesAreErrors) {
  Config c;
  Overrides bad_listen;
  bad_listen.listen = {"127.0.0.1"};
  auto r1 = apply_overrides(c, bad_listen);
  ASSERT_FALSE(r1.has_value());
  EXPECT_EQ(r1.error().rfind("--listen: ", 0), 0u) << r1.error();
  Overrides bad_level;
  bad_level.log_level = "loud";
  auto r2 = apply_overrides(c, bad_level);
  ASSERT_FALSE(r2.has_value());
  EXPECT_EQ(r2.error(), "--log-level must be one of debug, info, warning, error (got \"loud\")");
  Overrides empty_dir;
  empty_dir.data_dir = "";
  EXPECT_FALSE(apply_overrides(c, empty_dir).has_value());
}

class ConfigFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ternd-config-test-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(std::string_view name, std::string_view text) {
    const auto path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(ConfigFile, ResolveReadsTheFileThenAppliesFlags) {
  Overrides o;
  o.config_file = write("a.toml", "node_name = \"n1\"\nlog_level = \"warning\"\n");
  o.log_level = "error";
  auto c = resolve_config(o);
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_EQ(c->broker.node_name, "n1");
  EXPECT_EQ(c->log_level, log::Level::error);
}

TEST_F(ConfigFile, ErrorsNameThePath) {
  Overrides o;
  o.config_file = write("bad.toml", "\n[limits]\nreceive_maximum = 0\n");
  auto c = resolve_config(o);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error(), o.config_file.value() + ":3: limits.receive_maximum must be between 1 and 65535 (got 0)");
}

TEST_F(ConfigFile, MissingFileIsAnError) {
  Overrides o;
  o.config_file = (dir_ / "missing.toml").string();
  auto c = resolve_config(o);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().rfind("cannot read " + o.config_file.value() + ": ", 0), 0u) << c.error();
}

TEST(ToToml, RoundTripsTheEffectiveConfiguration) {
  Config c;
  c.broker.node_name = "edge-1";
  c.data_dir = "/var/lib/tern \"quoted\" \\ dir";
  c.log_level = log::Level::warning;
  c.listeners = {{"::1", 0}, {"127.0.0.1", 1999}};
  c.broker.max_packet_size = 4096;
  c.broker.queue_full_policy = broker::QueueFullPolicy::drop_new;
  c.broker.connect_timeout = std::chrono::milliseconds(1234);
  c.broker.shared_subscriptions = false;
  c.broker.sys_interval = std::chrono::seconds(77);
  c.broker.streams = {{"s1", "a/+", std::chrono::seconds(60), 123}, {"s2", "#", std::chrono::seconds(0), 0}};
  c.durability = Durability::batch;
  c.admin.listen = "";
  c.admin.token = "t\"k";
  c.admin.log_forward_level = log::Level::error;
  c.admin.alert_drop_rate = 2.0;
  c.admin.alert_memory_mb = 12;
  const std::string text = to_toml(c);
  const Config back = parse_ok(text);
  EXPECT_EQ(to_toml(back), text);
  EXPECT_EQ(back.broker.node_name, "edge-1");
  EXPECT_EQ(back.data_dir, c.data_dir);
  EXPECT_EQ(back.log_level, log::Level::warning);
  ASSERT_EQ(back.listeners.size(), 2u);
  EXPECT_EQ(back.listeners[0].host, "::1");
  EXPECT_EQ(back.broker.max_packet_size, 4096u);
  EXPECT_EQ(back.broker.queue_full_policy, broker::QueueFullPolicy::drop_new);
  EXPECT_EQ(back.broker.connect_timeout, std::chrono::milliseconds(1234));
  EXPECT_FALSE(back.broker.shared_subscriptions);
  EXPECT_EQ(back.broker.sys_interval, std::chrono::seconds(77));
  ASSERT_EQ(back.broker.streams.size(), 2u);
  EXPECT_EQ(back.broker.streams[0].filter, "a/+");
  EXPECT_EQ(back.broker.streams[0].max_age, std::chrono::seconds(60));
  EXPECT_EQ(back.broker.streams[0].max_bytes, 123u);
  EXPECT_EQ(back.durability, Durability::batch);
  EXPECT_EQ(back.admin.listen, "");
  EXPECT_EQ(back.admin.token, "t\"k");
  EXPECT_EQ(back.admin.log_forward_level, log::Level::error);
  EXPECT_EQ(back.admin.alert_drop_rate, 2.0);
  EXPECT_EQ(back.admin.alert_memory_mb, 12u);
  EXPECT_FALSE(back.admin.alert_queue_depth);
}

TEST(AdminTls, CertAndKeyAreReadTogetherAndRoundTrip) {
  Config c = parse_ok("[admin]\ncert = \"/etc/tern/admin.crt\"\nkey = \"/etc/tern/admin.key\"");
  EXPECT_EQ(c.admin.cert_file, "/etc/tern/admin.crt");
  EXPECT_EQ(c.admin.key_file, "/etc/tern/admin.key");
  const Config back = parse_ok(to_toml(c));
  EXPECT_EQ(back.admin.cert_file, "/etc/tern/admin.crt");
  EXPECT_EQ(back.admin.key_file, "/etc/tern/admin.key");
  EXPECT_TRUE(parse_ok("").admin.cert_file.empty());
}

TEST(AdminTls, OneWithoutTheOtherNamesFileAndLine) {
  EXPECT_EQ(parse_error("node_name = \"a\"\n[admin]\ncert = \"c.pem\""),
            "t.toml:2: admin needs both cert and key (HTTPS), or neither (HTTP)");
  EXPECT_EQ(parse_error("[admin]\nkey = \"k.pem\""), "t.toml:1: admin needs both cert and key (HTTPS), or neither (HTTP)");
  EXPECT_EQ(parse_error("[admin]\ncert = \"\"\nkey = \"k.pem\""),
            "t.toml:2: admin.cert must not be empty (leave out cert and key to serve plain HTTP)");
}

TEST(AdminTls, FlagsSetOrCompleteTheFilesPair) {
  Config c = parse_ok("");
  Overrides both;
  both.admin_cert = "c.pem";
  both.admin_key = "k.pem";
  ASSERT_TRUE(apply_overrides(c, both).has_value());
  EXPECT_EQ(c.admin.cert_file, "c.pem");
  EXPECT_EQ(c.admin.key_file, "k.pem");

  Config from_file = parse_ok("[admin]\ncert = \"old.pem\"\nkey = \"old.key\"");
  Overrides cert_only;
  cert_only.admin_cert = "new.pem";
  ASSERT_TRUE(apply_overrides(from_file, cert_only).has_value());
  EXPECT_EQ(from_file.admin.cert_file, "new.pem");
  EXPECT_EQ(from_file.admin.key_file, "old.key");

  Config plain = parse_ok("");
  auto r = apply_overrides(plain, cert_only);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("--admin-key"), std::string::npos) << r.error();
  Overrides empty;
  empty.admin_key = "";
  EXPECT_FALSE(apply_overrides(plain, empty).has_value());
}

TEST(ConfigStore, CommitSettingsAreReadAndRoundTrip) {
  auto c = parse_config("[store]\ncommit_interval_ms = 0\ncommit_bytes = 4096\ncommit_delay_ms = 7\npage_size = 4096\n",
                        "t.toml");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->store.commit_interval_ms, 0);
  EXPECT_EQ(c->store.commit_bytes, 4096);
  EXPECT_EQ(c->store.commit_delay_ms, 7);
  EXPECT_EQ(c->store.page_size, 4096);
  auto again = parse_config(to_toml(*c), "again.toml");
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(again->store.commit_interval_ms, 0);
  EXPECT_EQ(again->store.commit_bytes, 4096);
  EXPECT_EQ(again->store.commit_delay_ms, 7);
  EXPECT_EQ(again->store.page_size, 4096);
  EXPECT_EQ(Config{}.store.commit_interval_ms, 75);
  EXPECT_EQ(Config{}.store.page_size, 1024);
}

TEST(ConfigStore, BadValuesNameFileLineAndFix) {
  EXPECT_EQ(parse_error("[store]\npage_size = 1000"),
            "t.toml:1: store.page_size must be a power of two from 512 to 65536 (got 1000)");
  EXPECT_EQ(parse_error("[store]\ncommit_interval_ms = -1"),
            "t.toml:2: store.commit_interval_ms must be between 0 and 10000 (got -1)");
  EXPECT_EQ(parse_error("[store]\ncommit_bytes = 10"),
            "t.toml:2: store.commit_bytes must be between 1024 and 67108864 (got 10)");
  EXPECT_EQ(parse_error("[store]\ncommit_every = 1"),
            "t.toml:2: unknown key 'store.commit_every' (allowed keys: commit_interval_ms, commit_bytes, "
            "commit_delay_ms, page_size)");
}

TEST(ToToml, DefaultsPrintEverySection) {
  const std::string text = to_toml(Config{});
  for (const char* needle : {"node_name = \"ternd\"", "[[listener]]\naddress = \"127.0.0.1:1883\"", "[limits]",
                             "receive_maximum = 100", "queue_full_policy = \"drop_oldest\"", "[features]",
                             "[sys]\ninterval_s = 10"}) {
    EXPECT_NE(text.find(needle), std::string::npos) << needle << "\nin:\n" << text;
  }
}

}  // namespace
}  // namespace tern::ternd
