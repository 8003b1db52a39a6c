#include "policy/security_policy.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "mqtt/packets.hpp"
#include "policy/crypto.hpp"
#include "policy/text.hpp"

namespace tern::policy {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class SecurityPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tern-policy-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& content) {
    std::ofstream(dir_ / name) << content;
    return (dir_ / name).string();
  }
  std::unique_ptr<SecurityPolicy> make(SecurityConfig config) {
    auto p = SecurityPolicy::create(std::move(config), [this] { return now_; });
    EXPECT_TRUE(p) << p.error();
    return p ? std::move(*p) : nullptr;
  }
  static broker::ClientIdentity who(std::string id, std::optional<std::string> user = std::nullopt) {
    broker::ClientIdentity w;
    w.client_id = std::move(id);
    w.username = std::move(user);
    w.peer = "127.0.0.1:5555";
    return w;
  }
  std::string password_file() {
    PasswordFile f;
    f.set(make_password_entry("alice", "right", kMinIterations));
    return write("passwd", f.to_text());
  }

  fs::path dir_;
  std::chrono::steady_clock::time_point now_{std::chrono::seconds(1000)};
};

TEST_F(SecurityPolicyTest, PasswordsDecideAndAnonymousIsOffWithAPasswordFile) {
  SecurityConfig c;
  c.password_file = password_file();
  auto p = make(c);
  EXPECT_FALSE(p->anonymous_allowed());
  EXPECT_EQ(p->authenticate(who("c", "alice"), "right"), 0);
  EXPECT_EQ(p->authenticate(who("c", "alice"), "right"), 0);  // from the cache
  EXPECT_EQ(p->authenticate(who("c", "alice"), "wrong"), 0x86);
  EXPECT_EQ(p->authenticate(who("c", "alice"), "wrong"), 0x86);  // failure remembered
  EXPECT_EQ(p->authenticate(who("c", "alice"), std::nullopt), 0x86);
  EXPECT_EQ(p->authenticate(who("c", "mallory"), "right"), 0x86);
  EXPECT_EQ(p->authenticate(who("c"), std::nullopt), 0x87);
  EXPECT_EQ(p->stats().auth_succeeded, 2u);
  EXPECT_EQ(p->stats().auth_bad_password, 3u);
  EXPECT_EQ(p->stats().auth_unknown_user, 1u);
  EXPECT_EQ(p->stats().auth_anonymous_refused, 1u);

  auto transport = who("dev");
  transport.transport_identity = "device-1";
  EXPECT_EQ(p->authenticate(transport, std::nullopt), 0);

  c.allow_anonymous = true;
  EXPECT_EQ(make(c)->authenticate(who("c"), std::nullopt), 0);
}

TEST_F(SecurityPolicyTest, ReloadPicksUpAPasswordChangeAndKeepsOldFilesOnError) {
  SecurityConfig c;
  c.password_file = password_file();
  auto p = make(c);
  EXPECT_EQ(p->authenticate(who("c", "alice"), "right"), 0);
  PasswordFile f;
  f.set(make_password_entry("alice", "new", kMinIterations));
  write("passwd", f.to_text());
  ASSERT_TRUE(p->reload());
  EXPECT_EQ(p->authenticate(who("c", "alice"), "right"), 0x86);
  EXPECT_EQ(p->authenticate(who("c", "alice"), "new"), 0);
  write("passwd", "garbage\n");
  EXPECT_FALSE(p->reload());
  EXPECT_EQ(p->authenticate(who("c", "alice"), "new"), 0);
  EXPECT_EQ(p->stats().reload_failures, 1u);
}

TEST_F(SecurityPolicyTest, ConnectionsPerUserAllowATakeover) {
  SecurityConfig c;
  c.quotas.max_connections_per_user = 1;
  auto p = make(c);
  EXPECT_EQ(p->authenticate(who("a", "u"), std::nullopt), 0);
  p->client_connected(who("a", "u"));
  EXPECT_EQ(p->authenticate(who("b", "u"), std::nullopt), 0x97);
  EXPECT_EQ(p->authenticate(who("a", "u"), std::nullopt), 0);  // same client id: takeover
  EXPECT_EQ(p->authenticate(who("b", "other"), std::nullopt), 0);
  p->client_disconnected(who("a", "u"));
  EXPECT_EQ(p->authenticate(who("b", "u"), std::nullopt), 0);
  EXPECT_EQ(p->stats().connections_over_quota, 1u);
}

TEST_F(SecurityPolicyTest, AclIsEnforcedAndCounted) {
  SecurityConfig c;
  c.acl_file = write("acl", "user alice\nallow write in/#\nallow read out/#\n");
  auto p = make(c);
  EXPECT_TRUE(p->may_publish(who("c", "alice"), "in/x"));
  EXPECT_FALSE(p->may_publish(who("c", "alice"), "out/x"));
  EXPECT_TRUE(p->may_subscribe(who("c", "alice"), "out/#"));
  EXPECT_FALSE(p->may_subscribe(who("c", "alice"), "#"));
  EXPECT_FALSE(p->may_receive(who("c", "alice"), "in/x"));
  EXPECT_EQ(p->stats().acl_publish_denied, 1u);
  EXPECT_EQ(p->stats().acl_subscribe_denied, 1u);
  EXPECT_EQ(p->stats().acl_receive_denied, 1u);
}

TEST_F(SecurityPolicyTest, MessageRateRefusesWith0x96ThenRecovers) {
  SecurityConfig c;
  c.quotas.messages_per_second = 2;
  auto p = make(c);
  EXPECT_EQ(p->check_publish(who("c"), "t", "x", {}).reason, 0);
  EXPECT_EQ(p->check_publish(who("c"), "t", "x", {}).reason, 0);
  EXPECT_EQ(p->check_publish(who("c"), "t", "x", {}).reason, 0x96);
  EXPECT_EQ(p->check_publish(who("other"), "t", "x", {}).reason, 0);  // per client
  now_ += 500ms;
  EXPECT_EQ(p->check_publish(who("c"), "t", "x", {}).reason, 0);
  EXPECT_EQ(p->stats().message_rate_refused, 1u);
}

TEST_F(SecurityPolicyTest, ByteRateRefusesWith0x97AndPayloadSizeWith0x95) {
  SecurityConfig c;
  c.quotas.bytes_per_second = 100;
  c.quotas.max_payload_size = 150;
  auto p = make(c);
  EXPECT_EQ(p->check_publish(who("c"), "t", std::string(151, 'x'), {}).reason, 0x95);
  EXPECT_EQ(p->check_publish(who("c"), "t", std::string(150, 'x'), {}).reason, 0);  // into debt
  EXPECT_EQ(p->check_publish(who("c"), "t", "x", {}).reason, 0x97);
  now_ += 1s;
  EXPECT_EQ(p->check_publish(who("c"), "t", "x", {}).reason, 0);
  EXPECT_EQ(p->stats().payload_too_large, 1u);
  EXPECT_EQ(p->stats().byte_rate_refused, 1u);
}

TEST_F(SecurityPolicyTest, ThrottleAcceptsAndPausesTheReader) {
  SecurityConfig c;
  c.quotas.messages_per_second = 10;
  c.quotas.throttle = true;
  auto p = make(c);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(p->check_publish(who("c"), "t", "x", {}).pause_reading.count(), 0);
  const auto v = p->check_publish(who("c"), "t", "x", {});
  EXPECT_EQ(v.reason, 0);
  EXPECT_GE(v.pause_reading.count(), 100);
  EXPECT_LE(v.pause_reading.count(), 101);
  EXPECT_EQ(p->stats().throttled, 1u);
}

TEST_F(SecurityPolicyTest, SchemaValidPayloadsAreTaggedInvalidOnesDeadLettered) {
  fs::create_directories(dir_ / "reg" / "temperature");
  write("reg/temperature/1.json", R"({"type":"object","required":["celsius"],"properties":{"celsius":{"type":"number"}}})");
  write("reg/bindings.json", R"({"sensors/+/temperature": "temperature"})");
  SecurityConfig c;
  c.schema_registry = (dir_ / "reg").string();
  auto p = make(c);
  const auto ok = p->check_publish(who("c"), "sensors/a/temperature", R"({"celsius": 3})", {});
  EXPECT_EQ(ok.reason, 0);
  ASSERT_EQ(ok.add_user_properties.size(), 1u);
  EXPECT_EQ(ok.add_user_properties[0], (std::pair<std::string, std::string>{"tern-schema", "temperature@1"}));
  const auto bad = p->check_publish(who("c"), "sensors/a/temperature", R"({"celsius": "x"})", {});
  EXPECT_EQ(bad.reason, 0x99);
  EXPECT_EQ(bad.dead_letter_topic, "$dlq/schema/sensors/a/temperature");
  EXPECT_EQ(bad.why.rfind("schema temperature@1: ", 0), 0u) << bad.why;
  EXPECT_TRUE(p->check_publish(who("c"), "sensors/a/humidity", "not json", {}).add_user_properties.empty());
  EXPECT_EQ(p->stats().schema_valid, 1u);
  EXPECT_EQ(p->stats().schema_invalid, 1u);
}

TEST_F(SecurityPolicyTest, SignaturesAreRequiredOnConfiguredTopics) {
  const std::string key_hex = "000102030405060708090a0b0c0d0e0f";
  SecurityConfig c;
  c.signature_keys_file = write("keys", "sensor-1:" + key_hex + "\n");
  c.signed_topics = {"signed/#"};
  auto p = make(c);
  const std::string key = *text::hex_decode(key_hex);
  const auto props = [](std::initializer_list<std::pair<std::string_view, std::string_view>> kv) {
    std::string out;
    for (const auto& [k, v] : kv) mqtt::append_user_property(out, k, v);
    return out;
  };
  const std::string sig = event_signature(key, "signed/a", "payload", "e1");
  EXPECT_EQ(p->check_publish(who("sensor-1"), "signed/a", "payload", props({{"tern-id", "e1"}, {"tern-sig", sig}})).reason, 0);
  // The producer named by tern-producer selects the key, whoever connects.
  EXPECT_EQ(p->check_publish(who("gw"), "signed/a", "payload",
                             props({{"tern-producer", "sensor-1"}, {"tern-id", "e1"}, {"tern-sig", sig}})).reason,
            0);
  EXPECT_EQ(p->check_publish(who("sensor-1"), "signed/a", "tampered", props({{"tern-id", "e1"}, {"tern-sig", sig}})).reason, 0x87);
  EXPECT_EQ(p->check_publish(who("sensor-1"), "signed/a", "payload", props({{"tern-id", "e2"}, {"tern-sig", sig}})).reason, 0x87);
  EXPECT_EQ(p->check_publish(who("sensor-1"), "signed/a", "payload", props({{"tern-id", "e1"}})).reason, 0x87);
  EXPECT_EQ(p->check_publish(who("stranger"), "signed/a", "payload", props({{"tern-id", "e1"}, {"tern-sig", sig}})).reason, 0x87);
  EXPECT_EQ(p->check_publish(who("sensor-1"), "plain/a", "payload", {}).reason, 0);
  EXPECT_EQ(p->stats().signature_missing, 1u);
  EXPECT_EQ(p->stats().signature_invalid, 3u);
}

TEST_F(SecurityPolicyTest, ErrorsNameTheFileAndNeverTheSecret) {
  SecurityConfig c;
  c.signature_keys_file = write("keys", "p:deadbeefdeadbeefdeadbeefdeadbe\n");
  auto p = SecurityPolicy::create(c);
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().find("keys:1:"), std::string::npos);
  EXPECT_EQ(p.error().find("deadbeef"), std::string::npos);
  c = {};
  c.signed_topics = {"x/#"};
  EXPECT_FALSE(SecurityPolicy::create(c));
}

TEST(PolicyMetrics, ExposeEveryCounter) {
  PolicyStats s;
  s.schema_invalid = 7;
  const std::string text = format_policy_metrics(s);
  EXPECT_NE(text.find("tern_security_schema_checks_total{result=\"invalid\"} 7\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE tern_security_acl_denied_total counter"), std::string::npos);
}

}  // namespace
}  // namespace tern::policy
