#include "policy/acl.hpp"

#include <gtest/gtest.h>

namespace tern::policy {
namespace {

broker::ClientIdentity client(std::string id, std::optional<std::string> user = std::nullopt,
                              std::optional<std::string> transport = std::nullopt) {
  broker::ClientIdentity who;
  who.client_id = std::move(id);
  who.username = std::move(user);
  who.transport_identity = std::move(transport);
  return who;
}

Acl parse(std::string_view text) {
  auto acl = Acl::parse(text, "acl");
  EXPECT_TRUE(acl) << acl.error();
  return *acl;
}

TEST(Acl, EmptyFileAllowsEverything) {
  const Acl acl = parse("# nothing\n\n");
  EXPECT_EQ(acl.rule_count(), 0u);
  EXPECT_TRUE(acl.allows(client("c"), kWrite, "a/b"));
}

TEST(Acl, DeniesWhatNoRuleAllowsOnceAnyRuleExists) {
  const Acl acl = parse("user alice\nallow read sensors/#\n");
  EXPECT_TRUE(acl.allows(client("c", "alice"), kReceive, "sensors/t"));
  EXPECT_TRUE(acl.allows(client("c", "alice"), kSubscribe, "sensors/+/x"));
  EXPECT_FALSE(acl.allows(client("c", "alice"), kWrite, "sensors/t"));
  EXPECT_FALSE(acl.allows(client("c", "bob"), kReceive, "sensors/t"));
  EXPECT_FALSE(acl.allows(client("c"), kReceive, "sensors/t"));
}

TEST(Acl, DenyWinsOverAllow) {
  const Acl acl = parse("user alice\nallow all sensors/#\ndeny write sensors/secret/#\n");
  EXPECT_TRUE(acl.allows(client("c", "alice"), kWrite, "sensors/open"));
  EXPECT_FALSE(acl.allows(client("c", "alice"), kWrite, "sensors/secret/x"));
  EXPECT_TRUE(acl.allows(client("c", "alice"), kReceive, "sensors/secret/x"));
}

TEST(Acl, SubscriptionMustBeCoveredByAnAllowRule) {
  const Acl acl = parse("pattern allow read a/+/c\npattern deny read a/x/#\n");
  EXPECT_TRUE(acl.allows(client("c"), kSubscribe, "a/b/c"));
  EXPECT_TRUE(acl.allows(client("c"), kSubscribe, "a/+/c"));
  EXPECT_FALSE(acl.allows(client("c"), kSubscribe, "a/#"));
  EXPECT_FALSE(acl.allows(client("c"), kSubscribe, "a/x/c"));
  EXPECT_TRUE(acl.allows(client("c"), kSubscribe, "$share/g/a/b/c"));
  EXPECT_FALSE(acl.allows(client("c"), kReceive, "a/x/c"));
}

TEST(Acl, SubstitutesUserAndClientId) {
  const Acl acl = parse("pattern allow write devices/%c/#\npattern allow read users/%u/inbox\n");
  EXPECT_TRUE(acl.allows(client("dev1"), kWrite, "devices/dev1/temp"));
  EXPECT_FALSE(acl.allows(client("dev1"), kWrite, "devices/dev2/temp"));
  EXPECT_TRUE(acl.allows(client("c", "bob"), kReceive, "users/bob/inbox"));
  EXPECT_FALSE(acl.allows(client("c"), kReceive, "users//inbox"));
}

TEST(Acl, SubstitutionCannotInjectWildcards) {
  const Acl acl = parse("pattern allow write devices/%c/data\n");
  EXPECT_FALSE(acl.allows(client("#"), kWrite, "devices/x/data"));
  EXPECT_FALSE(acl.allows(client("+"), kWrite, "devices/x/data"));
  EXPECT_FALSE(acl.allows(client("a/b"), kWrite, "devices/a/b/data"));
}

TEST(Acl, ClientGlobIdentityAndAnonymousSections) {
  const Acl acl = parse(
      "client sensor-*\nallow write sensors/#\n"
      "identity device-*.example\nallow write devices/#\n"
      "anonymous\nallow read public/#\n");
  EXPECT_TRUE(acl.allows(client("sensor-12"), kWrite, "sensors/t"));
  EXPECT_FALSE(acl.allows(client("actuator-1"), kWrite, "sensors/t"));
  EXPECT_TRUE(acl.allows(client("x", std::nullopt, "device-7.example"), kWrite, "devices/7"));
  EXPECT_FALSE(acl.allows(client("x"), kWrite, "devices/7"));
  EXPECT_TRUE(acl.allows(client("x"), kReceive, "public/news"));
  EXPECT_FALSE(acl.allows(client("x", "alice"), kReceive, "public/news"));
}

TEST(Acl, WildcardRulesDoNotMatchDollarTopics) {
  const Acl acl = parse("pattern allow read #\n");
  EXPECT_FALSE(acl.allows(client("c"), kReceive, "$SYS/broker/uptime"));
  EXPECT_FALSE(acl.allows(client("c"), kSubscribe, "$SYS/#"));
}

TEST(Acl, ErrorsNameTheLine) {
  EXPECT_EQ(Acl::parse("user a\nallow rw x\n", "acl").error(),
            "acl:2: unknown right 'rw' (read, write, subscribe, receive, readwrite, all)");
  EXPECT_EQ(Acl::parse("allow read x\n", "acl").error().substr(0, 6), "acl:1:");
  EXPECT_EQ(Acl::parse("user a\nallow read a/#/b\n", "acl").error(), "acl:2: invalid topic filter 'a/#/b'");
  EXPECT_FALSE(Acl::parse("frobnicate\n", "acl"));
  EXPECT_FALSE(Acl::parse("user\n", "acl"));
}

TEST(FilterCovers, LevelByLevel) {
  EXPECT_TRUE(filter_covers("a/#", "a"));
  EXPECT_TRUE(filter_covers("a/#", "a/b/#"));
  EXPECT_TRUE(filter_covers("+/b", "x/b"));
  EXPECT_FALSE(filter_covers("+/b", "#"));
  EXPECT_FALSE(filter_covers("a/b", "a/+"));
  EXPECT_FALSE(filter_covers("a/b", "a/b/c"));
  EXPECT_FALSE(filter_covers("a/b/c", "a/b"));
  EXPECT_TRUE(filter_covers("#", "x/y"));
}

}  // namespace
}  // namespace tern::policy
