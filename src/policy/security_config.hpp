// What the [security] table of ternd's configuration says (docs/security.md). A plain
// value with no dependencies, so the configuration parser can fill it without linking
// the policy module.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tern::policy {

// Per-client limits. 0 means no limit.
struct QuotaConfig {
  double messages_per_second = 0;      // token bucket refill rate
  std::uint64_t message_burst = 0;     // bucket size; 0: one second's worth (at least 1)
  double bytes_per_second = 0;         // payload bytes
  std::uint64_t byte_burst = 0;        // bucket size; 0: one second's worth
  std::uint64_t max_payload_size = 0;  // bytes; beyond it PUBACK 0x95
  std::uint64_t max_subscriptions = 0;
  std::uint64_t max_connections_per_user = 0;
  // true: a client over its rate is slowed down (its socket is not read for a while) and
  // its messages accepted; false: they are refused with 0x96 / 0x97.
  bool throttle = false;
};

// Password checks run on worker threads, off the broker's thread (docs/security.md).
struct AuthenticationLimits {
  std::uint32_t verifier_threads = 1;
  // Verifications queued or running at once; beyond it a CONNECT that needs one is refused
  // with 0x9F (5.0) / server unavailable (3.1.1).
  std::uint32_t max_pending_verifications = 16;
  // After this many failed verifications in a row from one address, that address's
  // CONNECTs that need a verification are refused with 0x9F for a while, doubling from
  // backoff_initial_ms up to backoff_max_ms. 0: no back-off.
  std::uint32_t failures_before_backoff = 5;
  std::uint32_t backoff_initial_ms = 500;
  std::uint32_t backoff_max_ms = 10'000;
};

struct SecurityConfig {
  // Unset: anonymous clients are allowed unless a password file is configured or a
  // listener asks for client certificates.
  std::optional<bool> allow_anonymous;
  std::string password_file;  // empty: usernames are not checked
  std::string acl_file;       // empty: every client may do everything
  QuotaConfig quotas;
  AuthenticationLimits authentication;
  std::string schema_registry;  // folder: {subject}/{version}.json and bindings.json
  std::string signature_keys_file;          // producer-id:hexkey per line
  std::vector<std::string> signed_topics;   // topic filters whose messages must carry tern-sig
  // Set by ternd from its listeners (not a key of the [security] table): whether any
  // listener authenticates clients by certificate or PSK.
  bool transport_authentication = false;
};

}  // namespace tern::policy
