// The [security] table of ternd's configuration (docs/security.md, docs/configuration.md):
//
//   [security]
//   allow_anonymous = false          # default: false with a password file or client certificates
//   password_file = "/etc/tern/passwd"
//   acl_file = "/etc/tern/acl"
//   [security.quotas]                # per client; 0 or absent: no limit
//   messages_per_second = 100.0
//   message_burst = 200
//   bytes_per_second = 65536.0
//   byte_burst = 131072
//   max_payload_size = 16384
//   max_subscriptions = 50
//   max_connections_per_user = 4
//   throttle = false
//   [security.schemas]
//   registry = "/etc/tern/schemas"
//   [security.signatures]
//   keys_file = "/etc/tern/signing-keys"
//   topics = ["payments/#"]
//
// Like the rest of the configuration parser: toml++ and fmt only, no Boost.
#pragma once

#include <string>
#include <string_view>
#include <toml++/toml.h>

#include "core/expected.hpp"
#include "policy/security_config.hpp"

namespace tern::ternd {

// Errors read "FILE:LINE: security.quotas.throttle must be true or false (got string)".
Expected<void, std::string> read_security_table(const toml::node& node, std::string_view source_name,
                                                policy::SecurityConfig& out);

// The [security] tables for to_toml; empty when everything has its default.
std::string security_to_toml(const policy::SecurityConfig& config);

}  // namespace tern::ternd
