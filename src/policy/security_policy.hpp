// SecurityPolicy: the broker's Policy built from ternd's [security] configuration —
// passwords, ACLs, per-client quotas, schema validation and event signatures
// (docs/security.md).
//
// Password hashes are slow by design (PBKDF2, ~100 ms at the default iteration count).
// Once start_verifier() has been called, start_authentication() hashes on a worker thread
// (PasswordVerifier) and hands the verdict back on the broker's thread, so a flood of
// CONNECTs with wrong passwords costs the other clients nothing but a queue slot; with
// too many verifications pending, or from an address that failed too often in a row (a
// short, doubling back-off), a CONNECT that needs a hash is refused at once with 0x9F.
// Verified pairs are remembered (keyed by an HMAC of user and password under a
// per-process random key, never the password itself) until the password file changes,
// so reconnects are answered at once; recently failed pairs are remembered too. Unknown
// users are hashed against a dummy entry, so they take as long as wrong passwords.
// authenticate() still verifies synchronously (tools, tests, no verifier).
//
// Thread-safety: every call, reload() included, on the broker's thread; only the hash
// itself runs on the verifier's threads.
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
#include "policy/password_verifier.hpp"
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
  std::uint64_t auth_refused_busy = 0;      // too many verifications pending
  std::uint64_t auth_refused_backoff = 0;   // the address failed too often in a row
  std::uint64_t password_verifications = 0;  // hashes computed (verifier or not)
  std::uint64_t verifications_pending = 0;   // gauge: queued or running on the verifier
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

  // Verifies passwords on `threads` worker threads from now on; `post` runs a completion
  // on the broker's thread (from any thread). Call stop_verifier() before whatever `post`
  // posts to goes away.
  void start_verifier(PasswordVerifier::Post post, std::size_t threads = 1);
  // Drops queued verifications (their CONNECTs wait for the connect timeout or their
  // connection's end) and joins the threads. Later authentications are synchronous.
  void stop_verifier();

  std::uint8_t authenticate(const broker::ClientIdentity& who, std::optional<std::string_view> password) override;
  std::optional<std::uint8_t> start_authentication(const broker::ClientIdentity& who,
                                                   std::optional<std::string_view> password,
                                                   AuthenticationDone done) override;
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
    // Unknown users are verified against this (random salt and hash; never matches).
    PasswordEntry dummy;
  };
  // What is known of a CONNECT before hashing its password.
  struct Check {
    std::optional<std::uint8_t> verdict;  // set: known without hashing
    const PasswordEntry* entry = nullptr;  // to verify against (the dummy for unknown users)
    bool unknown_user = false;
    std::string key;  // cache_key(user, password)
  };
  struct Backoff {
    std::uint32_t failures = 0;  // in a row
    std::uint32_t pending = 0;   // verifications under way; one at a time while backing off
    std::chrono::steady_clock::time_point until{};
  };
  struct ClientState {
    std::optional<TokenBucket> messages;
    std::optional<TokenBucket> bytes;
  };

  SecurityPolicy(SecurityConfig config, Now now, Files files);
  static Expected<Files, std::string> load_files(const SecurityConfig& config);
  static std::optional<std::string> quota_key(const broker::ClientIdentity& who);
  std::string cache_key(std::string_view user, std::string_view password) const;
  Check check_credentials(const broker::ClientIdentity& who, std::optional<std::string_view> password);
  // The verdict once the password was (or could not be) verified against `hash`.
  std::uint8_t conclude(const broker::ClientIdentity& who, const std::string& key, const std::string& hash,
                        bool unknown_user, bool password_matches, bool hashed);
  std::uint8_t check_connection_quota(const broker::ClientIdentity& who);
  static std::string address_of(const std::string& peer);
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
  std::unordered_map<std::string, Backoff> backoff_;  // by address
  PolicyStats stats_;
  bool busy_logged_ = false;
  // Completions check it: a verdict posted after the policy is gone is dropped.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unique_ptr<PasswordVerifier> verifier_;  // last: joined before the state it reports into
};

}  // namespace tern::policy
