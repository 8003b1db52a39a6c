// Access control lists (docs/security.md has the file format).
//
//   # comment
//   pattern allow readwrite devices/%c/#      applies to every client
//   user alice                                 the following rules apply to username alice
//   allow read sensors/#
//   deny write sensors/secret/#
//   client sensor-*                            client ids matching the glob
//   allow write sensors/%c/#
//   identity device-042.example                certificate CN/SAN or PSK identity
//   allow all devices/042/#
//   anonymous                                  clients without a username
//   allow read public/#
//
// Rights: read (subscribe + receive), write (publish), subscribe, receive, readwrite
// (read + write), all. A file with no rule allows everything; once any rule exists, what
// no rule allows is denied, and a matching deny wins over any allow.
//
// Topic filters in rules take `%u` (username) and `%c` (client id). A rule whose
// substitution is impossible (no username) or would inject '+', '#' or '/' does not apply.
//
// Subscriptions: a filter is allowed when an allow rule's filter covers every topic it
// can match, and denied when a deny rule's filter does. A subscription that only overlaps
// a denied area is allowed; the deliveries from that area are then stopped by `receive`.
//
// Thread-safety: an Acl is immutable after parsing; concurrent reads are safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "broker/interfaces.hpp"
#include "core/expected.hpp"

namespace tern::policy {

enum Right : std::uint8_t { kReceive = 1, kSubscribe = 2, kWrite = 4 };

struct AclRule {
  bool allow = true;
  std::uint8_t rights = 0;  // Right bits
  std::string filter;
};

struct AclSection {
  enum class Kind { user, client, identity, anonymous };
  Kind kind = Kind::user;
  std::string name;  // user name, client id glob, or identity glob
  std::vector<AclRule> rules;
};

class Acl {
 public:
  // Errors name the line: "acl:4: unknown right 'rw'".
  static Expected<Acl, std::string> parse(std::string_view text, std::string_view source_name);
  static Expected<Acl, std::string> load(const std::string& path);

  std::size_t rule_count() const noexcept;
  // `topic` is a topic name for kReceive and kWrite, a topic filter (shared subscriptions
  // included) for kSubscribe.
  bool allows(const broker::ClientIdentity& who, Right right, std::string_view topic) const;

 private:
  std::vector<AclRule> patterns_;  // for every client
  std::vector<AclSection> sections_;
};

// Whether every topic `inner` can match is also matched by `outer` (both valid filters).
bool filter_covers(std::string_view outer, std::string_view inner) noexcept;

}  // namespace tern::policy
