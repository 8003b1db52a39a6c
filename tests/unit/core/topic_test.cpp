#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/topic.hpp"

namespace {

using namespace std::string_literals;
using tern::is_valid_topic_filter;
using tern::is_valid_topic_name;
using tern::topic_matches;

TEST(TopicName, AcceptsOrdinaryNames) {
  EXPECT_TRUE(is_valid_topic_name("a"));
  EXPECT_TRUE(is_valid_topic_name("/"));
  EXPECT_TRUE(is_valid_topic_name("//"));
  EXPECT_TRUE(is_valid_topic_name(" "));
  EXPECT_TRUE(is_valid_topic_name("sport/tennis/player1"));
  EXPECT_TRUE(is_valid_topic_name("/finance"));
  EXPECT_TRUE(is_valid_topic_name("Accounts payable"));
  EXPECT_TRUE(is_valid_topic_name("$SYS/broker/uptime"));
  EXPECT_TRUE(is_valid_topic_name("caf\xC3\xA9/\xE6\x9D\xB1\xE4\xBA\xAC"));
}

TEST(TopicName, RejectsEmptyWildcardsAndBadText) {
  EXPECT_FALSE(is_valid_topic_name(""));
  EXPECT_FALSE(is_valid_topic_name("+"));
  EXPECT_FALSE(is_valid_topic_name("#"));
  EXPECT_FALSE(is_valid_topic_name("sport/+"));
  EXPECT_FALSE(is_valid_topic_name("sport/#"));
  EXPECT_FALSE(is_valid_topic_name("sport+"));
  EXPECT_FALSE(is_valid_topic_name("a#b"));
  EXPECT_FALSE(is_valid_topic_name("a\0b"s));
  EXPECT_FALSE(is_valid_topic_name("a/\xED\xA0\x80"));
  EXPECT_FALSE(is_valid_topic_name("\xC0\xAF"));
}

TEST(TopicName, LengthLimitIs65535Bytes) {
  EXPECT_TRUE(is_valid_topic_name(std::string(65535, 'a')));
  EXPECT_FALSE(is_valid_topic_name(std::string(65536, 'a')));
}

TEST(TopicFilter, AcceptsWildcardsOccupyingWholeLevels) {
  for (const char* f : {"#", "+", "+/+", "/+", "+/", "/", "//", "sport/#", "sport/tennis/#", "sport/+/player1",
                        "+/tennis/#", "sport/tennis/player1/#", "$SYS/#", "$SYS/monitor/+", "+/+/+/+",
                        "a//+//#", "$share/g/x", "plain"}) {
    EXPECT_TRUE(is_valid_topic_filter(f)) << f;
  }
}

TEST(TopicFilter, RejectsMisplacedWildcards) {
  for (const char* f : {"", "sport/tennis#", "sport/tennis/#/ranking", "sport+", "sp+ort/a", "a/#/", "#/",
                        "##", "++", "+#", "#+", "a/b+", "+a", "a/+b/c", "a/#b", "#/#", "a/##"}) {
    EXPECT_FALSE(is_valid_topic_filter(f)) << f;
  }
}

TEST(TopicFilter, RejectsBadTextAndLength) {
  EXPECT_FALSE(is_valid_topic_filter("a/\0/b"s));
  EXPECT_FALSE(is_valid_topic_filter("a/\xFF"));
  EXPECT_FALSE(is_valid_topic_filter("\xED\xBF\xBF/#"));
  EXPECT_TRUE(is_valid_topic_filter(std::string(65533, 'a') + "/#"));
  EXPECT_FALSE(is_valid_topic_filter(std::string(65534, 'a') + "/#"));
}

// §4.7.1.2
TEST(TopicMatches, MultiLevelWildcardExamplesFromSpecification) {
  EXPECT_TRUE(topic_matches("sport/tennis/player1/#", "sport/tennis/player1"));
  EXPECT_TRUE(topic_matches("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
  EXPECT_TRUE(topic_matches("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon"));
  EXPECT_TRUE(topic_matches("sport/#", "sport"));
  EXPECT_TRUE(topic_matches("#", "sport/tennis"));
  EXPECT_TRUE(topic_matches("#", "/"));
  EXPECT_FALSE(topic_matches("sport/tennis/player1/#", "sport/tennis"));
  EXPECT_FALSE(topic_matches("sport/tennis/player1/#", "sport/tennis/player2"));
}

// §4.7.1.3
TEST(TopicMatches, SingleLevelWildcardExamplesFromSpecification) {
  EXPECT_TRUE(topic_matches("sport/tennis/+", "sport/tennis/player1"));
  EXPECT_TRUE(topic_matches("sport/tennis/+", "sport/tennis/player2"));
  EXPECT_FALSE(topic_matches("sport/tennis/+", "sport/tennis/player1/ranking"));
  EXPECT_FALSE(topic_matches("sport/+", "sport"));
  EXPECT_TRUE(topic_matches("sport/+", "sport/"));
  EXPECT_TRUE(topic_matches("+/+", "/finance"));
  EXPECT_TRUE(topic_matches("/+", "/finance"));
  EXPECT_FALSE(topic_matches("+", "/finance"));
  EXPECT_TRUE(topic_matches("+/tennis/#", "sport/tennis/player1"));
  EXPECT_TRUE(topic_matches("sport/+/player1", "sport/tennis/player1"));
}

TEST(TopicMatches, SingleLevelWildcardMatchesEmptyLevels) {
  EXPECT_TRUE(topic_matches("+/+", "/"));
  EXPECT_TRUE(topic_matches("+", "a"));
  EXPECT_FALSE(topic_matches("+", "/"));
  EXPECT_TRUE(topic_matches("a/+/c", "a//c"));
  EXPECT_TRUE(topic_matches("+/+/+", "//"));
  EXPECT_FALSE(topic_matches("+/+/+", "/"));
  EXPECT_TRUE(topic_matches("a/+", "a/"));
  EXPECT_TRUE(topic_matches("+/#", "a"));
  EXPECT_TRUE(topic_matches("+/#", "/"));
  EXPECT_TRUE(topic_matches("a/#", "a/"));
  EXPECT_TRUE(topic_matches("a/#", "a//"));
}

// §4.7.2
TEST(TopicMatches, WildcardsAtStartDoNotMatchDollarTopics) {
  EXPECT_FALSE(topic_matches("#", "$SYS/monitor/Clients"));
  EXPECT_FALSE(topic_matches("+/monitor/Clients", "$SYS/monitor/Clients"));
  EXPECT_FALSE(topic_matches("+", "$SYS"));
  EXPECT_FALSE(topic_matches("+/#", "$SYS/x"));
  EXPECT_TRUE(topic_matches("$SYS/#", "$SYS/monitor/Clients"));
  EXPECT_TRUE(topic_matches("$SYS/#", "$SYS"));
  EXPECT_TRUE(topic_matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
  EXPECT_TRUE(topic_matches("$SYS", "$SYS"));
  // Only the first level is special: '$' further in is an ordinary character.
  EXPECT_TRUE(topic_matches("+/$x", "a/$x"));
  EXPECT_TRUE(topic_matches("a/#", "a/$SYS"));
  EXPECT_TRUE(topic_matches("#", "a$"));
}

// §4.7.3
TEST(TopicMatches, LiteralLevelsCompareExactly) {
  EXPECT_TRUE(topic_matches("a/b/c", "a/b/c"));
  EXPECT_FALSE(topic_matches("ACCOUNTS", "Accounts"));
  EXPECT_FALSE(topic_matches("/finance", "finance"));
  EXPECT_FALSE(topic_matches("finance", "/finance"));
  EXPECT_FALSE(topic_matches("a/b", "a/b/c"));
  EXPECT_FALSE(topic_matches("a/b/c", "a/b"));
  EXPECT_FALSE(topic_matches("a/b", "a/bc"));
  EXPECT_FALSE(topic_matches("a/bc", "a/b"));
  EXPECT_FALSE(topic_matches("a/b/", "a/b"));
  EXPECT_FALSE(topic_matches("a/b", "a/b/"));
  EXPECT_FALSE(topic_matches("a/b/#", "a"));
  EXPECT_TRUE(topic_matches("Accounts payable", "Accounts payable"));
}

// Independent reference: split both into level lists and match level by level.
std::vector<std::string> split(std::string_view s) {
  std::vector<std::string> levels;
  std::string current;
  for (char c : s) {
    if (c == '/') {
      levels.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  levels.push_back(current);
  return levels;
}

bool reference_matches(std::string_view filter, std::string_view topic) {
  if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#')) return false;
  const auto f = split(filter);
  const auto t = split(topic);
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") return true;
    if (i >= t.size()) return false;
    if (f[i] != "+" && f[i] != t[i]) return false;
  }
  return f.size() == t.size();
}

TEST(TopicMatches, AgreesWithReferenceOnRandomFiltersAndTopics) {
  std::mt19937 rng(12345);
  const char filter_alphabet[] = {'a', 'b', '/', '+', '#', '$'};
  const char topic_alphabet[] = {'a', 'b', '/', '$'};
  int valid_pairs = 0;
  int matches = 0;
  for (int n = 0; n < 200000; ++n) {
    std::string filter;
    std::string topic;
    const auto flen = 1 + rng() % 7;
    const auto tlen = 1 + rng() % 7;
    for (unsigned i = 0; i < flen; ++i) filter += filter_alphabet[rng() % sizeof filter_alphabet];
    for (unsigned i = 0; i < tlen; ++i) topic += topic_alphabet[rng() % sizeof topic_alphabet];
    if (!is_valid_topic_filter(filter) || !is_valid_topic_name(topic)) continue;
    ++valid_pairs;
    const bool expected = reference_matches(filter, topic);
    matches += expected;
    ASSERT_EQ(topic_matches(filter, topic), expected) << filter << " vs " << topic;
  }
  EXPECT_GT(valid_pairs, 10000);
  EXPECT_GT(matches, 1000);
}

TEST(SharedSubscription, SplitsGroupAndFilter) {
  tern::SharedSubscription shared;
  bool ok = false;
  ASSERT_TRUE(tern::parse_shared_subscription("$share/consumers/sport/tennis/+", shared, ok));
  EXPECT_TRUE(ok);
  EXPECT_EQ(shared.group, "consumers");
  EXPECT_EQ(shared.filter, "sport/tennis/+");

  ASSERT_TRUE(tern::parse_shared_subscription("$share/g/#", shared, ok));
  EXPECT_TRUE(ok);
  EXPECT_EQ(shared.group, "g");
  EXPECT_EQ(shared.filter, "#");

  ASSERT_TRUE(tern::parse_shared_subscription("$share/g//", shared, ok));
  EXPECT_TRUE(ok);
  EXPECT_EQ(shared.filter, "/");
}

TEST(SharedSubscription, OrdinaryFiltersAreNotShared) {
  tern::SharedSubscription shared;
  for (const char* f : {"sport/#", "$SYS/#", "$share", "$sharex/g/a", "share/g/a", "$Share/g/a", "a/$share/g/a"}) {
    bool ok = false;
    EXPECT_FALSE(tern::parse_shared_subscription(f, shared, ok)) << f;
  }
}

TEST(SharedSubscription, MalformedSharedFiltersAreReported) {
  tern::SharedSubscription shared;
  for (const char* f : {"$share/", "$share/group", "$share//a", "$share/group/", "$share/gr+oup/a", "$share/+/a",
                        "$share/#/a", "$share/g#/a", "$share/g/a#", "$share/g/a/#/b"}) {
    bool ok = true;
    EXPECT_TRUE(tern::parse_shared_subscription(f, shared, ok)) << f;
    EXPECT_FALSE(ok) << f;
  }
}

}  // namespace
