// SecurityPolicy: the broker's Policy built from ternd's [security] configuration —
// passwords, ACLs, per-client quotas, schema validation and event signatures
// (docs/security.md).
//
// Password hashes are slow by design (PBKDF2, ~100 ms at the default iteration count)
// and authenticate() runs on the broker's thread, so every first login of a
// (user, password) pair stalls the broker for that long. Verified pairs are remembered
// (keyed by an HMAC of user and password under a per-process random key, never the
// password itself) until the password file changes, so reconnects cost microseconds;
// recently failed pairs are remembered too, so a client retrying one wrong password does
// not stall the broker again and again.
//
// Thread-safety: every call, reload() included, on the broker's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/interfaces.hpp"
#include "core/expected.hpp"
#include "policy/acl.hpp"
#include "policy/password_file.hpp"
#include "policy/schema_registry.hpp"
#include "policy/security_config.hpp"
#include "policy/signing_keys.hpp"
#include "policy/token_bucket.hpp"

namespace tern::policy {

struct PolicyStats {
  std::uint64_t auth_succeeded = 0;
  std::uint64_t auth_bad_password = 0;
  std::uint64_t auth_unknown_user = 0;
  std::uint64_t auth_anonymous_refused = 0;
  std::uint64_t connections_over_quota = 0;
  std::uint64_t acl_publish_denied = 0;
  std::uint64_t acl_subscribe_denied = 0;
  std::uint64_t acl_receive_denied = 0;
  std::uint64_t payload_too_large = 0;
  std::uint64_t message_rate_refused = 0;
  std::uint64_t byte_rate_refused = 0;
  std::uint64_t throttled = 0;
  std::uint64_t schema_valid = 0;
  std::uint64_t schema_invalid = 0;
  std::uint64_t signature_missing = 0;
  std::uint64_t signature_invalid = 0;
  std::uint64_t reloads = 0;
  std::uint64_t reload_failures = 0;
};

// Prometheus text exposition of the counters (tern_security_*).
std::string format_policy_metrics(const PolicyStats& stats);

class SecurityPolicy final : public broker::Policy {
 public:
  using Now = std::function<std::chrono::steady_clock::time_point()>;

  // Loads every configured file; an error names the file and line.
  static Expected<std::unique_ptr<SecurityPolicy>, std::string> create(SecurityConfig config, Now now = {});

  // Reads the password, ACL, keys and schema files again. All or nothing: on any error
  // the previous state stays and the error is returned.
  Expected<void, std::string> reload();

  const PolicyStats& stats() const noexcept { return stats_; }
  bool anonymous_allowed() const noexcept { return allow_anonymous_; }

  std::uint8_t authenticate(const broker::ClientIdentity& who, std::optional<std::string_view> password) override;
  bool may_publish(const broker::ClientIdentity& who, std::string_view topic) override;
  bool may_subscribe(const broker::ClientIdentity& who, std::string_view filter) override;
  bool may_receive(const broker::ClientIdentity& who, std::string_view topic) override;
  broker::PublishVerdict check_publish(const broker::ClientIdentity& who, std::string_view topic,
                                       std::string_view payload, std::string_view user_properties) override;
  void client_connected(const broker::ClientIdentity& who) override;
  void client_disconnected(const broker::ClientIdentity& who) override;
  std::size_t max_subscriptions(const broker::ClientIdentity& who) override;

 private:
  struct Files {
    std::optional<PasswordFile> passwords;
    std::optional<Acl> acl;
    std::optional<SigningKeys> keys;
    std::optional<SchemaRegistry> schemas;
  };
  struct ClientState {
    std::optional<TokenBucket> messages;
    std::optional<TokenBucket> bytes;
  };

  SecurityPolicy(SecurityConfig config, Now now, Files files);
  static Expected<Files, std::string> load_files(const SecurityConfig& config);
  static std::optional<std::string> quota_key(const broker::ClientIdentity& who);
  std::string cache_key(std::string_view user, std::string_view password) const;
  std::optional<broker::PublishVerdict> check_quotas(const broker::ClientIdentity& who, std::size_t payload_size);
  std::optional<broker::PublishVerdict> check_signature(const broker::ClientIdentity& who, std::string_view topic,
                                                        std::string_view payload, std::string_view user_properties);

  SecurityConfig config_;
  Now now_;
  Files files_;
  bool allow_anonymous_ = true;
  std::string cache_secret_;
  // cache_key -> the hash of the entry it was verified against (a password change
  // invalidates it), and the recent failures.
  std::unordered_map<std::string, std::string> verified_;
  std::unordered_map<std::string, std::string> failed_;
  std::unordered_map<std::string, ClientState> clients_;            // by client id
  // quota_key -> client ids connected (a client id twice while a takeover is under way).
  std::unordered_map<std::string, std::vector<std::string>> connections_by_user_;
  PolicyStats stats_;
};

}  // namespace tern::policy
