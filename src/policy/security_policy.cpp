#include "policy/security_policy.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/log.hpp"
#include "core/topic.hpp"
#include "mqtt/packets.hpp"
#include "policy/crypto.hpp"

namespace tern::policy {

namespace {
constexpr std::string_view kLog = "security";
constexpr std::size_t kMaxCachedPairs = 4096;

// MQTT 5.0 reason codes the policy answers with.
constexpr std::uint8_t kBadUserNameOrPassword = 0x86;
constexpr std::uint8_t kNotAuthorized = 0x87;
constexpr std::uint8_t kPacketTooLarge = 0x95;
constexpr std::uint8_t kMessageRateTooHigh = 0x96;
constexpr std::uint8_t kQuotaExceeded = 0x97;
constexpr std::uint8_t kConnectionRateExceeded = 0x9F;  // 3.1.1 clients get "server unavailable"
constexpr std::uint8_t kPayloadFormatInvalid = 0x99;

broker::PublishVerdict refuse(std::uint8_t reason, std::string why) {
  broker::PublishVerdict v;
  v.reason = reason;
  v.why = std::move(why);
  return v;
}

template <class Map>
void remember(Map& map, std::string key, std::string value) {
  // Bounded: when full, forget everything rather than track ages; a forgotten pair costs
  // one slow verification.
  if (map.size() >= kMaxCachedPairs) map.clear();
  map.insert_or_assign(std::move(key), std::move(value));
}
}  // namespace

Expected<SecurityPolicy::Files, std::string> SecurityPolicy::load_files(const SecurityConfig& config) {
  Files files;
  if (!config.password_file.empty()) {
    auto p = PasswordFile::load(config.password_file);
    if (!p) return make_unexpected(p.error());
    files.passwords = std::move(*p);
    // As slow as a real entry, so an unknown user answers no faster than a wrong password.
    files.dummy.iterations =
        files.passwords->entries().empty() ? kDefaultIterations : files.passwords->entries().front().iterations;
    files.dummy.salt = random_bytes(kSaltBytes);
    files.dummy.hash = random_bytes(64);
  }
  if (!config.acl_file.empty()) {
    auto a = Acl::load(config.acl_file);
    if (!a) return make_unexpected(a.error());
    files.acl = std::move(*a);
  }
  if (!config.signature_keys_file.empty()) {
    auto k = SigningKeys::load(config.signature_keys_file);
    if (!k) return make_unexpected(k.error());
    files.keys = std::move(*k);
  } else if (!config.signed_topics.empty()) {
    return make_unexpected("security.signatures: topics need a keys_file");
  }
  if (!config.schema_registry.empty()) {
    auto r = SchemaRegistry::load(config.schema_registry);
    if (!r) return make_unexpected(r.error());
    files.schemas = std::move(*r);
  }
  return files;
}

Expected<std::unique_ptr<SecurityPolicy>, std::string> SecurityPolicy::create(SecurityConfig config, Now now) {
  auto files = load_files(config);
  if (!files) return make_unexpected(files.error());
  if (!now) now = [] { return std::chrono::steady_clock::now(); };
  return std::unique_ptr<SecurityPolicy>(new SecurityPolicy(std::move(config), std::move(now), std::move(*files)));
}

SecurityPolicy::SecurityPolicy(SecurityConfig config, Now now, Files files)
    : config_(std::move(config)), now_(std::move(now)), files_(std::move(files)), cache_secret_(random_bytes(32)) {
  allow_anonymous_ = config_.allow_anonymous.value_or(!files_.passwords && !config_.transport_authentication);
  log::info(kLog, "anonymous clients {}; {} users; {} ACL rules; {} signing keys; {} schema bindings",
            allow_anonymous_ ? "allowed" : "refused", files_.passwords ? files_.passwords->entries().size() : 0,
            files_.acl ? files_.acl->rule_count() : 0, files_.keys ? files_.keys->size() : 0,
            files_.schemas ? files_.schemas->bindings().size() : 0);
}

Expected<void, std::string> SecurityPolicy::reload() {
  auto files = load_files(config_);
  if (!files) {
    ++stats_.reload_failures;
    log::error(kLog, "reload failed, keeping the previous files: {}", files.error());
    return make_unexpected(files.error());
  }
  files_ = std::move(*files);
  verified_.clear();
  failed_.clear();
  ++stats_.reloads;
  log::info(kLog, "reloaded: {} users; {} ACL rules; {} signing keys; {} schema bindings",
            files_.passwords ? files_.passwords->entries().size() : 0, files_.acl ? files_.acl->rule_count() : 0,
            files_.keys ? files_.keys->size() : 0, files_.schemas ? files_.schemas->bindings().size() : 0);
  return {};
}

std::optional<std::string> SecurityPolicy::quota_key(const broker::ClientIdentity& who) {
  if (who.username) return "u:" + *who.username;
  if (who.transport_identity) return "i:" + *who.transport_identity;
  return std::nullopt;
}

std::string SecurityPolicy::cache_key(std::string_view user, std::string_view password) const {
  std::string data(user);
  data += '\0';
  data.append(password);
  return hmac_sha256(cache_secret_, data);
}

std::string SecurityPolicy::address_of(const std::string& peer) {
  // "ip:port" or "[v6]:port": the port changes with every connection, the address does not.
  const auto colon = peer.rfind(':');
  return colon == std::string::npos ? peer : peer.substr(0, colon);
}

SecurityPolicy::Check SecurityPolicy::check_credentials(const broker::ClientIdentity& who,
                                                        std::optional<std::string_view> password) {
  Check check;
  if (!who.username) {
    if (!who.transport_identity && !allow_anonymous_) {
      ++stats_.auth_anonymous_refused;
      log::info(kLog, "{} ({}): anonymous clients are not allowed", who.client_id, who.peer);
      check.verdict = kNotAuthorized;
      return check;
    }
    check.verdict = check_connection_quota(who);
    return check;
  }
  if (!files_.passwords) {
    check.verdict = check_connection_quota(who);
    return check;
  }
  check.entry = files_.passwords->find(*who.username);
  if (check.entry == nullptr) {
    check.entry = &files_.dummy;
    check.unknown_user = true;
  }
  check.key = cache_key(*who.username, password.value_or(std::string_view{}));
  if (const auto it = verified_.find(check.key); it != verified_.end() && it->second == check.entry->hash) {
    check.verdict = conclude(who, check.key, check.entry->hash, check.unknown_user, true, false);
    return check;
  }
  if (const auto bad = failed_.find(check.key); bad != failed_.end() && bad->second == check.entry->hash) {
    check.verdict = conclude(who, check.key, check.entry->hash, check.unknown_user, false, false);
    return check;
  }
  if (!password) {
    check.verdict = conclude(who, check.key, check.entry->hash, check.unknown_user, false, false);
    return check;
  }
  const AuthenticationLimits& limits = config_.authentication;
  if (limits.failures_before_backoff > 0) {
    if (const auto it = backoff_.find(address_of(who.peer)); it != backoff_.end() && now_() < it->second.until) {
      ++stats_.auth_refused_backoff;
      log::debug(kLog, "{} ({}): refused, its address is backing off after {} failures", who.client_id, who.peer,
                 it->second.failures);
      check.verdict = kConnectionRateExceeded;
      return check;
    }
  }
  return check;
}

std::uint8_t SecurityPolicy::conclude(const broker::ClientIdentity& who, const std::string& key,
                                      const std::string& hash, bool unknown_user, bool password_matches,
                                      bool hashed) {
  const bool ok = password_matches && !unknown_user;
  remember(ok ? verified_ : failed_, key, hash);
  const AuthenticationLimits& limits = config_.authentication;
  // Only hashed verdicts move the back-off: a remembered pair costs nothing, and a client
  // that knows one password must not be able to reset it by logging in between guesses.
  if (hashed && limits.failures_before_backoff > 0) {
    const std::string address = address_of(who.peer);
    if (ok) {
      backoff_.erase(address);
    } else {
      if (backoff_.size() >= kMaxCachedPairs && !backoff_.contains(address)) backoff_.clear();
      Backoff& b = backoff_[address];
      ++b.failures;
      if (b.failures >= limits.failures_before_backoff) {
        const std::uint32_t doublings = std::min<std::uint32_t>(b.failures - limits.failures_before_backoff, 16);
        const auto wait = std::min<std::uint64_t>(std::uint64_t{limits.backoff_initial_ms} << doublings,
                                                  limits.backoff_max_ms);
        b.until = now_() + std::chrono::milliseconds(wait);
        if (b.failures == limits.failures_before_backoff) {
          log::warn(kLog, "{}: {} failed authentications in a row; backing off", address, b.failures);
        }
      }
    }
  }
  if (unknown_user) {
    // Unknown users are answered like wrong passwords, so names cannot be probed.
    ++stats_.auth_unknown_user;
    log::info(kLog, "{} ({}): unknown user", who.client_id, who.peer);
    return kBadUserNameOrPassword;
  }
  if (!ok) {
    ++stats_.auth_bad_password;
    log::info(kLog, "{} ({}): wrong password for user {}", who.client_id, who.peer, who.username.value_or(""));
    return kBadUserNameOrPassword;
  }
  return check_connection_quota(who);
}

std::uint8_t SecurityPolicy::check_connection_quota(const broker::ClientIdentity& who) {
  if (config_.quotas.max_connections_per_user > 0) {
    if (const auto k = quota_key(who)) {
      const auto it = connections_by_user_.find(*k);
      if (it != connections_by_user_.end() && it->second.size() >= config_.quotas.max_connections_per_user &&
          std::find(it->second.begin(), it->second.end(), who.client_id) == it->second.end()) {
        ++stats_.connections_over_quota;
        log::info(kLog, "{} ({}): too many connections for {}", who.client_id, who.peer, k->substr(2));
        return kQuotaExceeded;
      }
    }
  }
  ++stats_.auth_succeeded;
  return 0;
}

std::uint8_t SecurityPolicy::authenticate(const broker::ClientIdentity& who, std::optional<std::string_view> password) {
  Check check = check_credentials(who, password);
  if (check.verdict) return *check.verdict;
  ++stats_.password_verifications;
  const bool matches = verify_password(*check.entry, *password);
  return conclude(who, check.key, check.entry->hash, check.unknown_user, matches, true);
}

std::optional<std::uint8_t> SecurityPolicy::start_authentication(const broker::ClientIdentity& who,
                                                                 std::optional<std::string_view> password,
                                                                 AuthenticationDone done) {
  if (!verifier_) return authenticate(who, password);
  Check check = check_credentials(who, password);
  if (check.verdict) return check.verdict;
  const AuthenticationLimits& limits = config_.authentication;
  std::string address = address_of(who.peer);
  if (limits.failures_before_backoff > 0) {
    // Between back-off windows an address gets one hash at a time, not a queue's worth.
    if (const auto it = backoff_.find(address); it != backoff_.end() &&
                                                it->second.failures >= limits.failures_before_backoff &&
                                                it->second.pending > 0) {
      ++stats_.auth_refused_backoff;
      return kConnectionRateExceeded;
    }
  }
  std::string hash = check.entry->hash;
  std::string user = check.entry->user;
  auto completion = [this, alive = std::weak_ptr<bool>(alive_), who, key = check.key, user = std::move(user),
                     hash, address, unknown = check.unknown_user, done = std::move(done)](bool matches) {
    if (alive.expired()) return;
    stats_.verifications_pending = verifier_ ? verifier_->pending() : 0;
    if (stats_.verifications_pending == 0) busy_logged_ = false;  // one warning per episode
    if (const auto it = backoff_.find(address); it != backoff_.end() && it->second.pending > 0) --it->second.pending;
    // A reload may have changed the user's password while it was being checked: the
    // verdict holds only for the entry it was checked against.
    const PasswordEntry* now_entry = files_.passwords ? files_.passwords->find(user) : nullptr;
    const bool still_current = unknown || (now_entry != nullptr && now_entry->hash == hash);
    done(conclude(who, key, hash, unknown, matches && still_current, true));
  };
  if (!verifier_->submit(*check.entry, std::string(*password), std::move(completion))) {
    ++stats_.auth_refused_busy;
    if (!busy_logged_) {
      busy_logged_ = true;
      log::warn(kLog, "{} password verifications pending: refusing CONNECTs that need one with 0x9F",
                verifier_->pending());
    }
    return kConnectionRateExceeded;
  }
  if (limits.failures_before_backoff > 0) {
    if (backoff_.size() >= kMaxCachedPairs && !backoff_.contains(address)) backoff_.clear();
    ++backoff_[address].pending;
  }
  ++stats_.password_verifications;
  stats_.verifications_pending = verifier_->pending();
  return std::nullopt;
}

void SecurityPolicy::start_verifier(PasswordVerifier::Post post, std::size_t threads) {
  stop_verifier();
  verifier_ = std::make_unique<PasswordVerifier>(std::move(post), threads,
                                                 config_.authentication.max_pending_verifications);
}

void SecurityPolicy::stop_verifier() {
  if (!verifier_) return;
  verifier_->stop();
  verifier_.reset();
  stats_.verifications_pending = 0;
}

bool SecurityPolicy::may_publish(const broker::ClientIdentity& who, std::string_view topic) {
  if (!files_.acl || files_.acl->allows(who, kWrite, topic)) return true;
  ++stats_.acl_publish_denied;
  return false;
}

bool SecurityPolicy::may_subscribe(const broker::ClientIdentity& who, std::string_view filter) {
  if (!files_.acl || files_.acl->allows(who, kSubscribe, filter)) return true;
  ++stats_.acl_subscribe_denied;
  return false;
}

bool SecurityPolicy::may_receive(const broker::ClientIdentity& who, std::string_view topic) {
  if (!files_.acl || files_.acl->allows(who, kReceive, topic)) return true;
  ++stats_.acl_receive_denied;
  return false;
}

std::optional<broker::PublishVerdict> SecurityPolicy::check_quotas(const broker::ClientIdentity& who,
                                                                   std::size_t payload_size) {
  const QuotaConfig& q = config_.quotas;
  if (q.max_payload_size > 0 && payload_size > q.max_payload_size) {
    ++stats_.payload_too_large;
    return refuse(kPacketTooLarge, fmt::format("payload of {} bytes exceeds the limit of {}", payload_size, q.max_payload_size));
  }
  if (q.messages_per_second <= 0 && q.bytes_per_second <= 0) return std::nullopt;
  const auto now = now_();
  ClientState& state = clients_[who.client_id];
  if (q.messages_per_second > 0 && !state.messages) {
    const double burst = q.message_burst > 0 ? static_cast<double>(q.message_burst) : std::max(1.0, q.messages_per_second);
    state.messages.emplace(q.messages_per_second, burst, now);
  }
  if (q.bytes_per_second > 0 && !state.bytes) {
    const double burst = q.byte_burst > 0 ? static_cast<double>(q.byte_burst) : q.bytes_per_second;
    state.bytes.emplace(q.bytes_per_second, burst, now);
  }
  const bool messages_ok = !state.messages || state.messages->available(now);
  const bool bytes_ok = !state.bytes || state.bytes->available(now);
  if (!q.throttle) {
    if (!messages_ok) {
      ++stats_.message_rate_refused;
      return refuse(kMessageRateTooHigh, fmt::format("more than {} messages a second", q.messages_per_second));
    }
    if (!bytes_ok) {
      ++stats_.byte_rate_refused;
      return refuse(kQuotaExceeded, fmt::format("more than {} payload bytes a second", q.bytes_per_second));
    }
  }
  if (state.messages) state.messages->take(1);
  if (state.bytes) state.bytes->take(static_cast<double>(payload_size));
  if (q.throttle) {
    auto pause = std::chrono::milliseconds(0);
    if (state.messages) pause = std::max(pause, state.messages->time_to_recover(now));
    if (state.bytes) pause = std::max(pause, state.bytes->time_to_recover(now));
    if (pause.count() > 0) {
      ++stats_.throttled;
      broker::PublishVerdict v;
      v.pause_reading = pause;
      return v;
    }
  }
  return std::nullopt;
}

std::optional<broker::PublishVerdict> SecurityPolicy::check_signature(const broker::ClientIdentity& who,
                                                                      std::string_view topic, std::string_view payload,
                                                                      std::string_view user_properties) {
  if (!files_.keys) return std::nullopt;
  const bool required = std::any_of(config_.signed_topics.begin(), config_.signed_topics.end(),
                                    [&](const std::string& f) { return topic_matches(f, topic); });
  if (!required) return std::nullopt;
  std::optional<std::string_view> sig, id, producer;
  mqtt::for_each_user_property(user_properties, [&](std::string_view key, std::string_view value) {
    if (key == "tern-sig" && !sig) sig = value;
    if (key == "tern-id" && !id) id = value;
    if (key == "tern-producer" && !producer) producer = value;
  });
  if (!sig || !id) {
    ++stats_.signature_missing;
    return refuse(kNotAuthorized, !sig ? "missing tern-sig" : "missing tern-id");
  }
  const std::string_view producer_id = producer.value_or(std::string_view(who.client_id));
  const std::string* key = files_.keys->find(producer_id);
  if (key == nullptr) {
    ++stats_.signature_invalid;
    return refuse(kNotAuthorized, fmt::format("no signing key for producer '{}'", producer_id));
  }
  if (!constant_time_equal(event_signature(*key, topic, payload, *id), *sig)) {
    ++stats_.signature_invalid;
    return refuse(kNotAuthorized, fmt::format("invalid tern-sig for producer '{}'", producer_id));
  }
  return std::nullopt;
}

broker::PublishVerdict SecurityPolicy::check_publish(const broker::ClientIdentity& who, std::string_view topic,
                                                     std::string_view payload, std::string_view user_properties) {
  broker::PublishVerdict verdict;
  if (auto v = check_quotas(who, payload.size())) {
    if (v->reason != 0) return std::move(*v);
    verdict = std::move(*v);  // throttled: accepted, with a pause
  }
  if (auto v = check_signature(who, topic, payload, user_properties)) return std::move(*v);
  if (files_.schemas) {
    if (const auto match = files_.schemas->schema_for(topic)) {
      if (auto error = match->schema->validate(payload)) {
        ++stats_.schema_invalid;
        broker::PublishVerdict v = refuse(kPayloadFormatInvalid, fmt::format("schema {}@{}: {}", match->subject,
                                                                             match->version, *error));
        v.dead_letter_topic = fmt::format("$dlq/schema/{}", topic);
        v.pause_reading = verdict.pause_reading;
        return v;
      }
      ++stats_.schema_valid;
      verdict.add_user_properties.emplace_back("tern-schema", fmt::format("{}@{}", match->subject, match->version));
    }
  }
  return verdict;
}

void SecurityPolicy::client_connected(const broker::ClientIdentity& who) {
  if (const auto k = quota_key(who)) connections_by_user_[*k].push_back(who.client_id);
}

void SecurityPolicy::client_disconnected(const broker::ClientIdentity& who) {
  clients_.erase(who.client_id);
  if (const auto k = quota_key(who)) {
    const auto it = connections_by_user_.find(*k);
    if (it == connections_by_user_.end()) return;
    auto& ids = it->second;
    if (const auto pos = std::find(ids.begin(), ids.end(), who.client_id); pos != ids.end()) ids.erase(pos);
    if (ids.empty()) connections_by_user_.erase(it);
  }
}

std::size_t SecurityPolicy::max_subscriptions(const broker::ClientIdentity&) {
  return static_cast<std::size_t>(config_.quotas.max_subscriptions);
}

std::string format_policy_metrics(const PolicyStats& s) {
  std::string out;
  const auto family = [&](std::string_view name, std::string_view help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n", name, help, name);
  };
  const auto sample = [&](std::string_view name, std::string_view label, std::string_view value, std::uint64_t n) {
    out += fmt::format("{}{{{}=\"{}\"}} {}\n", name, label, value, n);
  };
  family("tern_security_authentications_total", "CONNECT authentications, by result.");
  sample("tern_security_authentications_total", "result", "ok", s.auth_succeeded);
  sample("tern_security_authentications_total", "result", "bad_password", s.auth_bad_password);
  sample("tern_security_authentications_total", "result", "unknown_user", s.auth_unknown_user);
  sample("tern_security_authentications_total", "result", "anonymous_refused", s.auth_anonymous_refused);
  sample("tern_security_authentications_total", "result", "connection_quota", s.connections_over_quota);
  sample("tern_security_authentications_total", "result", "busy", s.auth_refused_busy);
  sample("tern_security_authentications_total", "result", "backoff", s.auth_refused_backoff);
  family("tern_security_password_verifications_total", "Password hashes computed to check a CONNECT.");
  out += fmt::format("tern_security_password_verifications_total {}\n", s.password_verifications);
  out += "# HELP tern_security_password_verifications_pending Password checks queued or running off the "
         "broker's thread.\n# TYPE tern_security_password_verifications_pending gauge\n";
  out += fmt::format("tern_security_password_verifications_pending {}\n", s.verifications_pending);
  family("tern_security_acl_denied_total", "ACL denials, by operation.");
  sample("tern_security_acl_denied_total", "operation", "publish", s.acl_publish_denied);
  sample("tern_security_acl_denied_total", "operation", "subscribe", s.acl_subscribe_denied);
  sample("tern_security_acl_denied_total", "operation", "receive", s.acl_receive_denied);
  family("tern_security_quota_total", "Publishes refused or slowed by quotas, by kind.");
  sample("tern_security_quota_total", "kind", "payload_too_large", s.payload_too_large);
  sample("tern_security_quota_total", "kind", "message_rate", s.message_rate_refused);
  sample("tern_security_quota_total", "kind", "byte_rate", s.byte_rate_refused);
  sample("tern_security_quota_total", "kind", "throttled", s.throttled);
  family("tern_security_schema_checks_total", "Payloads validated against a bound schema, by result.");
  sample("tern_security_schema_checks_total", "result", "valid", s.schema_valid);
  sample("tern_security_schema_checks_total", "result", "invalid", s.schema_invalid);
  family("tern_security_signatures_refused_total", "Publishes refused on signed topics, by reason.");
  sample("tern_security_signatures_refused_total", "reason", "missing", s.signature_missing);
  sample("tern_security_signatures_refused_total", "reason", "invalid", s.signature_invalid);
  family("tern_security_reloads_total", "Reloads of the security files, by result.");
  sample("tern_security_reloads_total", "result", "ok", s.reloads);
  sample("tern_security_reloads_total", "result", "failed", s.reload_failures);
  return out;
}

}  // namespace tern::policy
