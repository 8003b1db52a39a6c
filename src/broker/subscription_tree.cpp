#include "broker/subscription_tree.hpp"

#include <algorithm>
#include <iterator>
#include <utility>

namespace tern::broker {
namespace {

// Calls `visit(level)` for every level of `filter`, first to last.
template <class Visit>
void for_each_level(std::string_view filter, Visit&& visit) {
  std::size_t pos = 0;
  for (;;) {
    const std::size_t end = filter.find('/', pos);
    if (end == std::string_view::npos) {
      visit(filter.substr(pos));
      return;
    }
    visit(filter.substr(pos, end - pos));
    pos = end + 1;
  }
}

template <class Vector>
auto find_session(Vector& entries, SessionKey session) {
  return std::find_if(entries.begin(), entries.end(),
                      [session](const SubscriptionEntry& e) { return e.session == session; });
}

}  // namespace

SubscriptionTree::SubscriptionTree() : root_(std::make_unique<Node>()) {}

SubscriptionTree::~SubscriptionTree() {
  // Detach children before each node dies so destruction never recurses level by level.
  std::vector<std::unique_ptr<Node>> pending;
  pending.push_back(std::move(root_));
  while (!pending.empty()) {
    std::unique_ptr<Node> node = std::move(pending.back());
    pending.pop_back();
    for (auto& [level, child] : node->children) pending.push_back(std::move(child));
    if (node->plus) pending.push_back(std::move(node->plus));
    if (node->hash) pending.push_back(std::move(node->hash));
  }
}

SubscriptionTree::Node* SubscriptionTree::child_for_insert(Node& parent, std::string_view level) {
  std::unique_ptr<Node>* slot;
  if (level == "+") {
    slot = &parent.plus;
  } else if (level == "#") {
    slot = &parent.hash;
  } else {
    auto it = parent.children.find(level);
    if (it == parent.children.end()) it = parent.children.emplace(std::string(level), nullptr).first;
    slot = &it->second;
  }
  if (!*slot) {
    *slot = std::make_unique<Node>();
    (*slot)->parent = &parent;
    ++node_count_;
  }
  return slot->get();
}

bool SubscriptionTree::subscribe(std::string_view filter, std::string_view group, const SubscriptionEntry& entry) {
  Node* node = root_.get();
  for_each_level(filter, [&](std::string_view level) { node = child_for_insert(*node, level); });

  std::vector<SubscriptionEntry>* entries = &node->entries;
  if (!group.empty()) {
    auto g = std::find_if(node->groups.begin(), node->groups.end(),
                          [group](const SharedGroup& candidate) { return candidate.name == group; });
    if (g == node->groups.end()) {
      node->groups.push_back(SharedGroup{std::string(group), {}, 0});
      g = std::prev(node->groups.end());
    }
    entries = &g->members;
  }
  auto existing = find_session(*entries, entry.session);
  if (existing != entries->end()) {
    *existing = entry;
    return false;
  }
  entries->push_back(entry);
  ++count_;
  return true;
}

bool SubscriptionTree::unsubscribe(std::string_view filter, std::string_view group, SessionKey session) {
  Node* node = root_.get();
  bool found = true;
  for_each_level(filter, [&](std::string_view level) {
    if (!found) return;
    Node* next = nullptr;
    if (level == "+") {
      next = node->plus.get();
    } else if (level == "#") {
      next = node->hash.get();
    } else {
      auto it = node->children.find(level);
      if (it != node->children.end()) next = it->second.get();
    }
    if (next == nullptr) {
      found = false;
    } else {
      node = next;
    }
  });
  if (!found) return false;

  if (group.empty()) {
    auto it = find_session(node->entries, session);
    if (it == node->entries.end()) return false;
    node->entries.erase(it);
  } else {
    auto g = std::find_if(node->groups.begin(), node->groups.end(),
                          [group](const SharedGroup& candidate) { return candidate.name == group; });
    if (g == node->groups.end()) return false;
    auto it = find_session(g->members, session);
    if (it == g->members.end()) return false;
    // Keep the round-robin cursor on the member it pointed at.
    const auto index = static_cast<std::size_t>(it - g->members.begin());
    g->members.erase(it);
    if (index < g->next) --g->next;
    if (g->next >= g->members.size()) g->next = 0;
    if (g->members.empty()) node->groups.erase(g);
  }
  --count_;
  prune(node, filter);
  return true;
}

void SubscriptionTree::prune(Node* node, std::string_view filter) {
  // Walk back up with the filter's levels taken from its end: the node for the last
  // level hangs off its parent under that level.
  while (node != root_.get() && node->empty()) {
    const std::size_t slash = filter.rfind('/');
    const std::string_view level = slash == std::string_view::npos ? filter : filter.substr(slash + 1);
    Node* parent = node->parent;
    if (level == "+") {
      parent->plus.reset();
    } else if (level == "#") {
      parent->hash.reset();
    } else {
      auto it = parent->children.find(level);
      parent->children.erase(it);
    }
    --node_count_;
    node = parent;
    if (slash == std::string_view::npos) break;
    filter = filter.substr(0, slash);
  }
}

}  // namespace tern::broker
