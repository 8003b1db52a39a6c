// SubscriptionTree: topic filters of every session, organised by level so that matching
// a topic costs in proportion to the topic's depth and the subscriptions that match it,
// not to the number of unrelated subscriptions.
//
// Design: a trie keyed by topic level. Each node holds a child map for literal levels,
// plus dedicated '+' and '#' children. A node's subscribers are kept in a small vector
// (one entry per session) and its shared groups in a vector of groups, each with its
// members and a round-robin cursor the broker advances. Empty nodes are pruned on
// unsubscribe so the tree does not grow with churn.
//
// Matching follows §4.7: '#' also matches the parent level ("a/#" matches "a"), and
// filters starting with a wildcard do not match topics starting with '$'.
//
// Thread-safety: none; owned and used by the broker thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mqtt/packets.hpp"

namespace tern::broker {

using SessionKey = std::uint64_t;

struct SubscriptionEntry {
  SessionKey session = 0;
  mqtt::SubscriptionOptions options;
  std::uint32_t subscription_id = 0;  // 0: none
};

struct SharedGroup {
  std::string name;
  std::vector<SubscriptionEntry> members;
  std::size_t next = 0;  // round-robin cursor, advanced by the broker
};

class SubscriptionTree {
 public:
  SubscriptionTree();
  ~SubscriptionTree();
  SubscriptionTree(const SubscriptionTree&) = delete;
  SubscriptionTree& operator=(const SubscriptionTree&) = delete;

  // Adds, or replaces, the subscription of `entry.session` on `filter` (a valid, non-shared
  // filter). With a non-empty `group` it joins that shared group on `filter`.
  // Returns true when the subscription is new, false when it replaced one.
  bool subscribe(std::string_view filter, std::string_view group, const SubscriptionEntry& entry);

  // Removes the subscription of `session` on `filter` (in `group` when non-empty).
  // Returns false when there was none.
  bool unsubscribe(std::string_view filter, std::string_view group, SessionKey session);

  // Calls `on_entry(filter_node_entry)` for every non-shared subscription matching `topic`
  // and `on_group(group)` for every shared group whose filter matches. A session with
  // several matching filters is reported once per filter; the broker merges them.
  void match(std::string_view topic, const std::function<void(const SubscriptionEntry&)>& on_entry,
             const std::function<void(SharedGroup&)>& on_group);

  std::size_t size() const noexcept { return count_; }  // subscriptions, shared members included

 private:
  struct Node;
  std::unique_ptr<Node> root_;
  std::size_t count_ = 0;
};

}  // namespace tern::broker
