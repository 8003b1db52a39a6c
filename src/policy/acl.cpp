#include "policy/acl.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "core/topic.hpp"
#include "policy/text.hpp"

namespace tern::policy {

namespace {

std::optional<std::uint8_t> parse_rights(std::string_view word) {
  if (word == "read") return kReceive | kSubscribe;
  if (word == "write") return kWrite;
  if (word == "subscribe") return kSubscribe;
  if (word == "receive") return kReceive;
  if (word == "readwrite") return kReceive | kSubscribe | kWrite;
  if (word == "all") return kReceive | kSubscribe | kWrite;
  return std::nullopt;
}

// The rule's filter with %u and %c replaced, or nothing when the rule cannot apply.
std::optional<std::string> substitute(std::string_view filter, const broker::ClientIdentity& who) {
  if (filter.find('%') == std::string_view::npos) return std::string(filter);
  const auto safe = [](std::string_view v) { return !v.empty() && v.find_first_of("+#/") == std::string_view::npos; };
  std::string out;
  for (std::size_t i = 0; i < filter.size(); ++i) {
    if (filter[i] == '%' && i + 1 < filter.size() && (filter[i + 1] == 'u' || filter[i + 1] == 'c')) {
      if (filter[i + 1] == 'u') {
        if (!who.username || !safe(*who.username)) return std::nullopt;
        out += *who.username;
      } else {
        if (!safe(who.client_id)) return std::nullopt;
        out += who.client_id;
      }
      ++i;
    } else {
      out += filter[i];
    }
  }
  return out;
}

bool section_applies(const AclSection& s, const broker::ClientIdentity& who) {
  switch (s.kind) {
    case AclSection::Kind::user: return who.username && *who.username == s.name;
    case AclSection::Kind::client: return text::glob_matches(s.name, who.client_id);
    case AclSection::Kind::identity:
      return who.transport_identity && text::glob_matches(s.name, *who.transport_identity);
    case AclSection::Kind::anonymous: return !who.username && !who.transport_identity;
  }
  return false;
}

std::string_view next_level(std::string_view& rest, bool& done) {
  const auto slash = rest.find('/');
  std::string_view level = rest.substr(0, slash);
  if (slash == std::string_view::npos) {
    done = true;
    rest = {};
  } else {
    rest.remove_prefix(slash + 1);
  }
  return level;
}

}  // namespace

bool filter_covers(std::string_view outer, std::string_view inner) noexcept {
  // A filter starting with a wildcard does not match '$' topics (§4.7.2).
  if (!inner.empty() && inner.front() == '$' && !outer.empty() && (outer.front() == '+' || outer.front() == '#')) {
    return false;
  }
  bool outer_done = false, inner_done = false;
  while (true) {
    if (outer_done) return inner_done;
    const std::string_view o = next_level(outer, outer_done);
    if (o == "#") return true;
    if (inner_done) return false;  // "a" is not covered by "a/b"; "a/#" is handled above
    const std::string_view i = next_level(inner, inner_done);
    if (i == "#") return false;
    if (o == "+") continue;
    if (i == "+" || i != o) return false;
  }
}

Expected<Acl, std::string> Acl::parse(std::string_view text_in, std::string_view source_name) {
  Acl acl;
  std::size_t number = 0;
  constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::size_t current = kNone;
  for (const std::string_view raw : text::lines(text_in)) {
    ++number;
    const std::string_view line = text::trim(raw);
    if (line.empty() || line.front() == '#') continue;
    const auto fail = [&](const std::string& what) {
      return make_unexpected(fmt::format("{}:{}: {}", source_name, number, what));
    };
    auto w = text::words(line);
    const std::string_view keyword = w[0];
    if (keyword == "user" || keyword == "client" || keyword == "identity") {
      if (w.size() != 2) return fail(fmt::format("expected '{} NAME'", keyword));
      AclSection s;
      s.kind = keyword == "user" ? AclSection::Kind::user
               : keyword == "client" ? AclSection::Kind::client
                                     : AclSection::Kind::identity;
      s.name = std::string(w[1]);
      acl.sections_.push_back(std::move(s));
      current = acl.sections_.size() - 1;
      continue;
    }
    if (keyword == "anonymous") {
      if (w.size() != 1) return fail("expected 'anonymous' alone on its line");
      acl.sections_.push_back(AclSection{AclSection::Kind::anonymous, {}, {}});
      current = acl.sections_.size() - 1;
      continue;
    }
    std::vector<AclRule>* target = current == kNone ? nullptr : &acl.sections_[current].rules;
    if (keyword == "pattern") {
      w.erase(w.begin());
      target = &acl.patterns_;
    }
    if (w.empty() || (w[0] != "allow" && w[0] != "deny")) {
      return fail(fmt::format("expected user, client, identity, anonymous, pattern, allow or deny (got '{}')",
                              w.empty() ? keyword : w[0]));
    }
    if (w.size() != 3) return fail("expected 'allow|deny RIGHT TOPIC-FILTER'");
    if (target == nullptr) return fail("a rule outside a section (start with user, client, identity or anonymous, or use pattern)");
    const auto rights = parse_rights(w[1]);
    if (!rights) return fail(fmt::format("unknown right '{}' (read, write, subscribe, receive, readwrite, all)", w[1]));
    // Validate with placeholders replaced by a plain level, as they will be.
    std::string probe;
    for (std::size_t i = 0; i < w[2].size(); ++i) {
      if (w[2][i] == '%' && i + 1 < w[2].size() && (w[2][i + 1] == 'u' || w[2][i + 1] == 'c')) {
        probe += 'x';
        ++i;
      } else {
        probe += w[2][i];
      }
    }
    if (!is_valid_topic_filter(probe)) return fail(fmt::format("invalid topic filter '{}'", w[2]));
    target->push_back(AclRule{w[0] == "allow", *rights, std::string(w[2])});
  }
  return acl;
}

Expected<Acl, std::string> Acl::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_unexpected(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  std::ostringstream content;
  content << in.rdbuf();
  return parse(content.str(), path);
}

std::size_t Acl::rule_count() const noexcept {
  std::size_t n = patterns_.size();
  for (const auto& s : sections_) n += s.rules.size();
  return n;
}

bool Acl::allows(const broker::ClientIdentity& who, Right right, std::string_view topic) const {
  if (rule_count() == 0) return true;
  if (right == kSubscribe) {
    SharedSubscription shared;
    bool ok = true;
    if (parse_shared_subscription(topic, shared, ok)) {
      if (!ok) return false;
      topic = shared.filter;
    }
  }
  bool allowed = false;
  bool denied = false;
  const auto apply = [&](const std::vector<AclRule>& rules) {
    for (const auto& rule : rules) {
      if ((rule.rights & right) == 0) continue;
      const auto filter = substitute(rule.filter, who);
      if (!filter) continue;
      const bool match = right == kSubscribe ? filter_covers(*filter, topic) : topic_matches(*filter, topic);
      if (!match) continue;
      (rule.allow ? allowed : denied) = true;
    }
  };
  apply(patterns_);
  for (const auto& section : sections_) {
    if (section_applies(section, who)) apply(section.rules);
  }
  return allowed && !denied;
}

}  // namespace tern::policy
