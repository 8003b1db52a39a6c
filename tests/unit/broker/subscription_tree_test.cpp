#include "broker/subscription_tree.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/topic.hpp"

// Counts heap allocations so a test can show that matching does not allocate. Kept out
// of line: once inlined, GCC pairs the malloc/free inside with new/delete expressions and
// reports a false mismatch.
namespace {
std::atomic<std::size_t> g_allocations{0};
}  // namespace

[[gnu::noinline]] void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using tern::broker::SessionKey;
using tern::broker::SharedGroup;
using tern::broker::SubscriptionEntry;
using tern::broker::SubscriptionTree;
using tern::mqtt::QoS;

SubscriptionEntry entry(SessionKey session, QoS qos = QoS::at_most_once, std::uint32_t id = 0) {
  SubscriptionEntry e;
  e.session = session;
  e.options.qos = qos;
  e.subscription_id = id;
  return e;
}

struct Matches {
  std::vector<SessionKey> sessions;                                  // sorted
  std::vector<std::pair<std::string, std::vector<SessionKey>>> groups;  // sorted by name
};

Matches collect(SubscriptionTree& tree, std::string_view topic) {
  Matches m;
  tree.match(
      topic, [&](const SubscriptionEntry& e) { m.sessions.push_back(e.session); },
      [&](SharedGroup& g) {
        std::vector<SessionKey> members;
        for (const auto& member : g.members) members.push_back(member.session);
        std::sort(members.begin(), members.end());
        m.groups.emplace_back(g.name, std::move(members));
      });
  std::sort(m.sessions.begin(), m.sessions.end());
  std::sort(m.groups.begin(), m.groups.end());
  return m;
}

std::vector<SessionKey> sessions(SubscriptionTree& tree, std::string_view topic) {
  return collect(tree, topic).sessions;
}

using Keys = std::vector<SessionKey>;

TEST(SubscriptionTree, StartsEmptyWithOnlyTheRoot) {
  SubscriptionTree tree;
  EXPECT_EQ(tree.size(), 0u);
  EXPECT_EQ(tree.node_count(), 1u);
  EXPECT_TRUE(sessions(tree, "a/b").empty());
}

TEST(SubscriptionTree, SubscribeOnExistingFilterAndSessionReplacesOptions) {
  SubscriptionTree tree;
  EXPECT_TRUE(tree.subscribe("a/b", "", entry(1, QoS::at_most_once, 7)));
  EXPECT_FALSE(tree.subscribe("a/b", "", entry(1, QoS::exactly_once, 9)));
  EXPECT_EQ(tree.size(), 1u);
  std::vector<SubscriptionEntry> seen;
  tree.match("a/b", [&](const SubscriptionEntry& e) { seen.push_back(e); }, [](SharedGroup&) { FAIL(); });
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].session, 1u);
  EXPECT_EQ(seen[0].options.qos, QoS::exactly_once);
  EXPECT_EQ(seen[0].subscription_id, 9u);
}

TEST(SubscriptionTree, SeveralSessionsOnOneFilter) {
  SubscriptionTree tree;
  EXPECT_TRUE(tree.subscribe("a/b", "", entry(1)));
  EXPECT_TRUE(tree.subscribe("a/b", "", entry(2)));
  EXPECT_TRUE(tree.subscribe("a/b", "", entry(3)));
  EXPECT_EQ(tree.size(), 3u);
  EXPECT_EQ(sessions(tree, "a/b"), (Keys{1, 2, 3}));
  EXPECT_TRUE(tree.unsubscribe("a/b", "", 2));
  EXPECT_EQ(sessions(tree, "a/b"), (Keys{1, 3}));
  EXPECT_EQ(tree.size(), 2u);
}

TEST(SubscriptionTree, UnsubscribeReportsWhetherThereWasASubscription) {
  SubscriptionTree tree;
  tree.subscribe("a/b", "", entry(1));
  EXPECT_FALSE(tree.unsubscribe("a/c", "", 1));
  EXPECT_FALSE(tree.unsubscribe("a/b/c", "", 1));
  EXPECT_FALSE(tree.unsubscribe("a", "", 1));
  EXPECT_FALSE(tree.unsubscribe("a/b", "", 2));
  EXPECT_FALSE(tree.unsubscribe("a/b", "group", 1));
  EXPECT_FALSE(tree.unsubscribe("a/+", "", 1));
  EXPECT_EQ(tree.size(), 1u);
  EXPECT_TRUE(tree.unsubscribe("a/b", "", 1));
  EXPECT_FALSE(tree.unsubscribe("a/b", "", 1));
  EXPECT_EQ(tree.size(), 0u);
  EXPECT_EQ(tree.node_count(), 1u);
  EXPECT_TRUE(sessions(tree, "a/b").empty());
}

TEST(SubscriptionTree, MatchesSingleLevelWildcard) {
  SubscriptionTree tree;
  tree.subscribe("sport/tennis/+", "", entry(1));
  tree.subscribe("sport/+", "", entry(2));
  tree.subscribe("+/+", "", entry(3));
  tree.subscribe("+", "", entry(4));
  tree.subscribe("/+", "", entry(5));
  EXPECT_EQ(sessions(tree, "sport/tennis/player1"), (Keys{1}));
  EXPECT_EQ(sessions(tree, "sport/tennis/player1/ranking"), Keys{});
  EXPECT_EQ(sessions(tree, "sport"), (Keys{4}));
  EXPECT_EQ(sessions(tree, "sport/"), (Keys{2, 3}));
  EXPECT_EQ(sessions(tree, "/finance"), (Keys{3, 5}));
  EXPECT_EQ(sessions(tree, "/"), (Keys{3, 5}));
}

TEST(SubscriptionTree, MatchesMultiLevelWildcardIncludingParentLevel) {
  SubscriptionTree tree;
  tree.subscribe("sport/tennis/player1/#", "", entry(1));
  tree.subscribe("sport/#", "", entry(2));
  tree.subscribe("#", "", entry(3));
  tree.subscribe("+/tennis/#", "", entry(4));
  EXPECT_EQ(sessions(tree, "sport/tennis/player1"), (Keys{1, 2, 3, 4}));
  EXPECT_EQ(sessions(tree, "sport/tennis/player1/ranking"), (Keys{1, 2, 3, 4}));
  EXPECT_EQ(sessions(tree, "sport/tennis/player1/score/wimbledon"), (Keys{1, 2, 3, 4}));
  EXPECT_EQ(sessions(tree, "sport/tennis"), (Keys{2, 3, 4}));
  EXPECT_EQ(sessions(tree, "sport"), (Keys{2, 3}));
  EXPECT_EQ(sessions(tree, "music"), (Keys{3}));
}

TEST(SubscriptionTree, ReportsASessionOncePerMatchingFilter) {
  SubscriptionTree tree;
  tree.subscribe("a/b", "", entry(1));
  tree.subscribe("a/+", "", entry(1));
  tree.subscribe("a/#", "", entry(1));
  tree.subscribe("#", "", entry(1));
  EXPECT_EQ(sessions(tree, "a/b"), (Keys{1, 1, 1, 1}));
  EXPECT_EQ(tree.size(), 4u);
}

TEST(SubscriptionTree, WildcardsAtStartDoNotMatchDollarTopics) {
  SubscriptionTree tree;
  tree.subscribe("#", "", entry(1));
  tree.subscribe("+/monitor/Clients", "", entry(2));
  tree.subscribe("$SYS/#", "", entry(3));
  tree.subscribe("$SYS/monitor/+", "", entry(4));
  tree.subscribe("+", "", entry(5));
  tree.subscribe("$share/#", "", entry(6));
  EXPECT_EQ(sessions(tree, "$SYS/monitor/Clients"), (Keys{3, 4}));
  EXPECT_EQ(sessions(tree, "$SYS"), (Keys{3}));
  EXPECT_EQ(sessions(tree, "x/monitor/Clients"), (Keys{1, 2}));
  EXPECT_EQ(sessions(tree, "$other"), Keys{});
  // '$' is only special at the start of the topic.
  EXPECT_EQ(sessions(tree, "a$"), (Keys{1, 5}));
}

TEST(SubscriptionTree, SharedGroupJoinLeaveAndMembers) {
  SubscriptionTree tree;
  EXPECT_TRUE(tree.subscribe("jobs/+", "workers", entry(1)));
  EXPECT_TRUE(tree.subscribe("jobs/+", "workers", entry(2)));
  EXPECT_FALSE(tree.subscribe("jobs/+", "workers", entry(2, QoS::at_least_once)));
  EXPECT_EQ(tree.size(), 2u);

  Matches m = collect(tree, "jobs/1");
  EXPECT_TRUE(m.sessions.empty());
  ASSERT_EQ(m.groups.size(), 1u);
  EXPECT_EQ(m.groups[0].first, "workers");
  EXPECT_EQ(m.groups[0].second, (Keys{1, 2}));

  EXPECT_FALSE(tree.unsubscribe("jobs/+", "", 1));  // a shared member is not a plain subscriber
  EXPECT_FALSE(tree.unsubscribe("jobs/+", "others", 1));
  EXPECT_TRUE(tree.unsubscribe("jobs/+", "workers", 1));
  m = collect(tree, "jobs/1");
  ASSERT_EQ(m.groups.size(), 1u);
  EXPECT_EQ(m.groups[0].second, (Keys{2}));

  EXPECT_TRUE(tree.unsubscribe("jobs/+", "workers", 2));
  EXPECT_TRUE(collect(tree, "jobs/1").groups.empty());
  EXPECT_EQ(tree.size(), 0u);
  EXPECT_EQ(tree.node_count(), 1u);
}

TEST(SubscriptionTree, TwoGroupsAndPlainSubscribersOnTheSameFilter) {
  SubscriptionTree tree;
  tree.subscribe("t", "g1", entry(1));
  tree.subscribe("t", "g1", entry(2));
  tree.subscribe("t", "g2", entry(2));
  tree.subscribe("t", "g2", entry(3));
  tree.subscribe("t", "", entry(2));
  EXPECT_EQ(tree.size(), 5u);
  Matches m = collect(tree, "t");
  EXPECT_EQ(m.sessions, (Keys{2}));
  ASSERT_EQ(m.groups.size(), 2u);
  EXPECT_EQ(m.groups[0], (std::pair<std::string, Keys>{"g1", {1, 2}}));
  EXPECT_EQ(m.groups[1], (std::pair<std::string, Keys>{"g2", {2, 3}}));

  EXPECT_TRUE(tree.unsubscribe("t", "g2", 2));
  m = collect(tree, "t");
  ASSERT_EQ(m.groups.size(), 2u);
  EXPECT_EQ(m.groups[1].second, (Keys{3}));
}

TEST(SubscriptionTree, GroupCursorSurvivesTheBrokerAndMemberRemoval) {
  SubscriptionTree tree;
  for (SessionKey s = 1; s <= 4; ++s) tree.subscribe("t", "g", entry(s));
  auto cursor_member = [&] {
    SessionKey chosen = 0;
    tree.match("t", [](const SubscriptionEntry&) {}, [&](SharedGroup& g) { chosen = g.members[g.next].session; });
    return chosen;
  };
  // The broker advances the cursor; the tree keeps it between matches.
  tree.match("t", [](const SubscriptionEntry&) {}, [](SharedGroup& g) { g.next = 2; });
  EXPECT_EQ(cursor_member(), 3u);
  tree.unsubscribe("t", "g", 1);  // before the cursor: it moves with its member
  EXPECT_EQ(cursor_member(), 3u);
  tree.unsubscribe("t", "g", 3);  // the cursor's own member: the next one takes its place
  EXPECT_EQ(cursor_member(), 4u);
  tree.unsubscribe("t", "g", 4);  // the last member: wraps to the front
  EXPECT_EQ(cursor_member(), 2u);
}

TEST(SubscriptionTree, PrunesOnlyNodesThatBecameEmpty) {
  SubscriptionTree tree;
  tree.subscribe("a/b/c", "", entry(1));
  tree.subscribe("a/b", "", entry(2));
  tree.subscribe("a/+/#", "", entry(3));
  EXPECT_EQ(tree.node_count(), 6u);  // root, a, b, c, +, #
  EXPECT_TRUE(tree.unsubscribe("a/b/c", "", 1));
  EXPECT_EQ(tree.node_count(), 5u);
  EXPECT_EQ(sessions(tree, "a/b"), (Keys{2, 3}));
  EXPECT_TRUE(tree.unsubscribe("a/+/#", "", 3));
  EXPECT_EQ(tree.node_count(), 3u);
  EXPECT_TRUE(tree.unsubscribe("a/b", "", 2));
  EXPECT_EQ(tree.node_count(), 1u);
  EXPECT_EQ(tree.size(), 0u);
}

TEST(SubscriptionTree, ChurnDoesNotGrowTheTree) {
  SubscriptionTree tree;
  tree.subscribe("keep/this", "", entry(999));
  const std::size_t baseline = tree.node_count();
  std::mt19937 rng(7);
  for (int i = 0; i < 100000; ++i) {
    const std::string filter = "dev/" + std::to_string(rng() % 1000) + ((i % 3 == 0) ? "/+/#" : "/temp");
    const std::string group = (i % 5 == 0) ? "g" : "";
    const auto session = static_cast<SessionKey>(i);
    ASSERT_TRUE(tree.subscribe(filter, group, entry(session)));
    ASSERT_TRUE(tree.unsubscribe(filter, group, session));
    ASSERT_EQ(tree.node_count(), baseline);
  }
  EXPECT_EQ(tree.size(), 1u);
  EXPECT_TRUE(tree.unsubscribe("keep/this", "", 999));
  EXPECT_EQ(tree.node_count(), 1u);
}

TEST(SubscriptionTree, HandlesTheDeepestPossibleFilter) {
  // 32768 '+' levels, 65535 bytes: walks must not recurse per level.
  std::string filter = "+";
  for (int i = 1; i < 32768; ++i) filter += "/+";
  ASSERT_EQ(filter.size(), 65535u);
  ASSERT_TRUE(tern::is_valid_topic_filter(filter));
  const std::string topic(32767, '/');  // 32768 empty levels

  auto tree = std::make_unique<SubscriptionTree>();
  tree->subscribe(filter, "", entry(1));
  tree->subscribe(topic, "", entry(2));
  EXPECT_EQ(tree->node_count(), 1u + 32768u + 32768u);
  EXPECT_EQ(sessions(*tree, topic), (Keys{1, 2}));
  EXPECT_TRUE(tree->unsubscribe(topic, "", 2));
  EXPECT_EQ(tree->node_count(), 1u + 32768u);
  tree.reset();  // destroys a 32768-level chain

  SubscriptionTree again;
  again.subscribe(filter, "", entry(1));
  EXPECT_TRUE(again.unsubscribe(filter, "", 1));
  EXPECT_EQ(again.node_count(), 1u);
}

TEST(SubscriptionTree, MatchingDoesNotAllocateInSteadyState) {
  SubscriptionTree tree;
  tree.subscribe("sensors/+/temperature", "", entry(1));
  tree.subscribe("sensors/#", "", entry(2));
  tree.subscribe("+/+/+", "", entry(3));
  tree.subscribe("sensors/+/temperature", "g", entry(4));
  for (int i = 0; i < 100; ++i) tree.subscribe("other/" + std::to_string(i), "", entry(5));
  const std::string topic = "sensors/kitchen/temperature";
  std::size_t entries = 0;
  std::size_t groups = 0;
  auto on_entry = [&](const SubscriptionEntry&) { ++entries; };
  auto on_group = [&](SharedGroup&) { ++groups; };
  tree.match(topic, on_entry, on_group);  // warms up the scratch stack
  const std::size_t before = g_allocations.load();
  for (int i = 0; i < 1000; ++i) tree.match(topic, on_entry, on_group);
  EXPECT_EQ(g_allocations.load(), before);
  EXPECT_EQ(entries, 1001u * 3u);
  EXPECT_EQ(groups, 1001u);
}

TEST(SubscriptionTree, AMatchInsideACallbackSeesTheSameTree) {
  SubscriptionTree tree;
  tree.subscribe("a/+", "", entry(1));
  tree.subscribe("a/b", "", entry(2));
  tree.subscribe("x/#", "", entry(3));
  std::vector<SessionKey> outer;
  std::vector<SessionKey> inner;
  tree.match(
      "a/b",
      [&](const SubscriptionEntry& e) {
        outer.push_back(e.session);
        tree.match("x/y", [&](const SubscriptionEntry& i) { inner.push_back(i.session); }, [](SharedGroup&) {});
      },
      [](SharedGroup&) {});
  std::sort(outer.begin(), outer.end());
  EXPECT_EQ(outer, (Keys{1, 2}));
  EXPECT_EQ(inner, (Keys{3, 3}));
}

// Property: the tree reports exactly the live subscriptions whose filter matches the
// topic by topic_matches, for random filters, topics, groups and churn.
TEST(SubscriptionTree, AgreesWithBruteForceMatcher) {
  struct Sub {
    std::string filter;
    std::string group;
    SessionKey session;
    std::uint32_t id;
  };
  std::mt19937 rng(2024);
  // Built level by level from a tiny vocabulary so that matches are frequent.
  auto random_levels = [&](std::initializer_list<const char*> vocabulary, bool allow_hash) {
    std::string s;
    const auto levels = 1 + rng() % 4;
    for (std::size_t i = 0; i < levels; ++i) {
      if (i > 0) s += '/';
      if (allow_hash && i + 1 == levels && rng() % 4 == 0) {
        s += '#';
      } else {
        s += vocabulary.begin()[rng() % vocabulary.size()];
      }
    }
    return s;
  };

  std::size_t total_plain = 0;
  std::size_t total_shared = 0;
  std::size_t dollar_topics = 0;
  for (int round = 0; round < 20; ++round) {
    SubscriptionTree tree;
    std::vector<Sub> live;
    std::uint32_t next_id = 1;
    for (int op = 0; op < 600; ++op) {
      if (!live.empty() && rng() % 3 == 0) {
        const std::size_t victim = rng() % live.size();
        const Sub s = live[victim];
        ASSERT_TRUE(tree.unsubscribe(s.filter, s.group, s.session));
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(victim));
        continue;
      }
      const std::string filter = random_levels({"a", "b", "", "+", "$s"}, true);
      if (!tern::is_valid_topic_filter(filter)) continue;
      const std::string group = rng() % 4 == 0 ? std::string(1, static_cast<char>('x' + rng() % 2)) : "";
      const SessionKey session = rng() % 4;
      const std::uint32_t id = next_id++;
      auto existing = std::find_if(live.begin(), live.end(), [&](const Sub& s) {
        return s.filter == filter && s.group == group && s.session == session;
      });
      const bool fresh = existing == live.end();
      ASSERT_EQ(tree.subscribe(filter, group, entry(session, QoS::at_most_once, id)), fresh);
      if (fresh) {
        live.push_back(Sub{filter, group, session, id});
      } else {
        existing->id = id;
      }
    }
    ASSERT_EQ(tree.size(), live.size());

    for (int t = 0; t < 300; ++t) {
      const std::string topic = random_levels({"a", "b", "", "$s"}, false);
      std::vector<std::uint32_t> expected_plain;
      std::vector<std::uint32_t> expected_shared;
      for (const Sub& s : live) {
        if (!tern::topic_matches(s.filter, topic)) continue;
        (s.group.empty() ? expected_plain : expected_shared).push_back(s.id);
      }
      std::vector<std::uint32_t> plain;
      std::vector<std::uint32_t> shared;
      tree.match(
          topic, [&](const SubscriptionEntry& e) { plain.push_back(e.subscription_id); },
          [&](SharedGroup& g) {
            ASSERT_FALSE(g.members.empty());
            for (const auto& m : g.members) shared.push_back(m.subscription_id);
          });
      for (auto* v : {&expected_plain, &expected_shared, &plain, &shared}) std::sort(v->begin(), v->end());
      ASSERT_EQ(plain, expected_plain) << "topic " << topic;
      ASSERT_EQ(shared, expected_shared) << "topic " << topic;
      total_plain += plain.size();
      total_shared += shared.size();
      dollar_topics += topic[0] == '$';
    }

    for (const Sub& s : live) ASSERT_TRUE(tree.unsubscribe(s.filter, s.group, s.session));
    EXPECT_EQ(tree.size(), 0u);
    EXPECT_EQ(tree.node_count(), 1u);
  }
  // The random alphabet must actually exercise matches, groups and '$' topics.
  EXPECT_GT(total_plain, 10000u);
  EXPECT_GT(total_shared, 5000u);
  EXPECT_GT(dollar_topics, 500u);
}

}  // namespace
