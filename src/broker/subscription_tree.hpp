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
// Every walk (subscribe, unsubscribe, match, destruction) is iterative: a filter may have
// up to 65536 levels, too deep for recursion on a thread's stack.
//
// Thread-safety: none; owned and used by the broker thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
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

namespace detail {

// Lets the child map be searched with a string_view level without building a string.
struct LevelHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view level) const noexcept { return std::hash<std::string_view>{}(level); }
};

struct SubscriptionNode {
  SubscriptionNode* parent = nullptr;
  std::unordered_map<std::string, std::unique_ptr<SubscriptionNode>, LevelHash, std::equal_to<>> children;
  std::unique_ptr<SubscriptionNode> plus;   // '+' level
  std::unique_ptr<SubscriptionNode> hash;   // '#' level (always a leaf)
  std::vector<SubscriptionEntry> entries;   // one per session
  std::vector<SharedGroup> groups;

  bool empty() const noexcept {
    return entries.empty() && groups.empty() && children.empty() && !plus && !hash;
  }
};

}  // namespace detail

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

  // Calls `on_entry(const SubscriptionEntry&)` for every non-shared subscription matching
  // `topic` (a valid topic name) and `on_group(SharedGroup&)` for every shared group whose
  // filter matches. A session with several matching filters is reported once per filter;
  // the broker merges them. The callbacks must not subscribe or unsubscribe; they may
  // advance a group's cursor. No allocation once the scratch stack has grown to the
  // deepest topic seen.
  template <class OnEntry, class OnGroup>
  void match(std::string_view topic, OnEntry&& on_entry, OnGroup&& on_group);

  std::size_t size() const noexcept { return count_; }  // subscriptions, shared members included

  // Nodes in the trie, the root included: 1 when empty, whatever the past churn.
  std::size_t node_count() const noexcept { return node_count_; }

 private:
  using Node = detail::SubscriptionNode;

  // One pending step of the match walk: `node` is reached having consumed the topic up to
  // `pos`; pos == topic.size() + 1 means every level has been consumed.
  struct Frame {
    Node* node;
    std::size_t pos;
  };

  Node* child_for_insert(Node& parent, std::string_view level);
  void prune(Node* node, std::string_view filter);

  std::unique_ptr<Node> root_;
  std::size_t count_ = 0;
  std::size_t node_count_ = 1;
  std::vector<Frame> stack_;  // reused by match so steady-state matching does not allocate
  bool matching_ = false;
};

template <class OnEntry, class OnGroup>
void SubscriptionTree::match(std::string_view topic, OnEntry&& on_entry, OnGroup&& on_group) {
  if (topic.empty()) return;
  // A match started from inside a callback gets its own stack instead of clobbering ours.
  std::vector<Frame> nested;
  std::vector<Frame>& stack = matching_ ? nested : stack_;
  struct Guard {
    bool& flag;
    bool outermost;
    ~Guard() {
      if (outermost) flag = false;
    }
  } guard{matching_, !matching_};
  matching_ = true;

  const bool system_topic = topic.front() == '$';
  const std::size_t consumed = topic.size() + 1;
  auto report = [&](Node& node) {
    for (const SubscriptionEntry& entry : node.entries) on_entry(entry);
    for (SharedGroup& group : node.groups) on_group(group);
  };

  stack.clear();
  stack.push_back(Frame{root_.get(), 0});
  while (!stack.empty()) {
    const Frame frame = stack.back();
    stack.pop_back();
    Node& node = *frame.node;
    const bool at_root = frame.node == root_.get();
    // '#' matches the remaining levels, including none ("a/#" matches "a").
    if (node.hash && !(at_root && system_topic)) report(*node.hash);
    if (frame.pos == consumed) {
      report(node);
      continue;
    }
    std::size_t end = topic.find('/', frame.pos);
    if (end == std::string_view::npos) end = topic.size();
    const std::size_t next = end + 1;
    if (!node.children.empty()) {
      auto it = node.children.find(topic.substr(frame.pos, end - frame.pos));
      if (it != node.children.end()) stack.push_back(Frame{it->second.get(), next});
    }
    if (node.plus && !(at_root && system_topic)) stack.push_back(Frame{node.plus.get(), next});
  }
}

}  // namespace tern::broker
