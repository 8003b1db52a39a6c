#include "sdk/signing.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/log.hpp"
#include "core/topic.hpp"
#include "policy/crypto.hpp"
#include "policy/text.hpp"

namespace tern {

std::optional<std::string> signing_key_from_hex(std::string_view hex) {
  auto key = policy::text::hex_decode(hex);
  if (!key || key->size() < kMinSigningKeyBytes) return std::nullopt;
  return key;
}

std::string event_signature(std::string_view key, std::string_view topic, std::string_view payload,
                            std::string_view event_id) {
  return policy::event_signature(key, topic, payload, event_id);
}

bool sign_event(Message& message, std::string_view producer, std::string_view key) {
  const std::string* id = message.user_property(kTernIdProperty);
  if (id == nullptr) return false;
  std::string signature = event_signature(key, message.topic, message.payload, *id);
  message.set_user_property(kTernProducerProperty, std::string(producer));
  message.set_user_property(kTernSigProperty, std::move(signature));
  return true;
}

SignatureCheck check_event_signature(const Message& message,
                                     const std::function<const std::string*(std::string_view producer)>& key_for) {
  const std::string* sig = message.user_property(kTernSigProperty);
  const std::string* id = message.user_property(kTernIdProperty);
  if (sig == nullptr || id == nullptr) return SignatureCheck::unsigned_event;
  // The publisher's client id, which ternd falls back to, never reaches a consumer.
  const std::string* producer = message.user_property(kTernProducerProperty);
  const std::string* key = producer != nullptr && key_for ? key_for(*producer) : nullptr;
  if (key == nullptr) return SignatureCheck::unknown_producer;
  const std::string expected = event_signature(*key, message.topic, message.payload, *id);
  return policy::constant_time_equal(expected, *sig) ? SignatureCheck::valid : SignatureCheck::bad_signature;
}

namespace sdk {

namespace {

std::string_view reason_text(SignatureCheck check) {
  switch (check) {
    case SignatureCheck::unsigned_event: return "unsigned (no tern-sig or no tern-id)";
    case SignatureCheck::unknown_producer: return "unknown producer";
    case SignatureCheck::bad_signature: return "bad signature";
    case SignatureCheck::valid: break;
  }
  return "valid";
}

// Property values come from whoever published: keep log lines short.
std::string clipped(const std::string* value) {
  if (value == nullptr) return "(none)";
  constexpr std::size_t kMax = 128;
  return value->size() <= kMax ? *value : value->substr(0, kMax) + "...";
}

}  // namespace

SignatureGate::SignatureGate(std::vector<std::string> filters, SigningKeyMap keys,
                             std::optional<policy::SigningKeys> file_keys, std::string service_name)
    : filters_(std::move(filters)),
      keys_(std::move(keys)),
      file_keys_(std::move(file_keys)),
      service_name_(std::move(service_name)) {}

Expected<std::unique_ptr<SignatureGate>, std::string> SignatureGate::create(const VerificationOptions& options,
                                                                            std::string service_name) {
  for (const auto& filter : options.required_on) {
    if (!is_valid_topic_filter(filter)) {
      return make_unexpected(fmt::format("verification.required_on: '{}' is not a valid topic filter", filter));
    }
  }
  for (const auto& [producer, key] : options.keys) {
    if (key.size() < kMinSigningKeyBytes) {
      return make_unexpected(
          fmt::format("verification.keys: the key of producer '{}' is shorter than {} bytes", producer, kMinSigningKeyBytes));
    }
  }
  std::optional<policy::SigningKeys> file_keys;
  if (!options.keys_file.empty()) {
    auto loaded = policy::SigningKeys::load(options.keys_file);
    if (!loaded) return make_unexpected(std::move(loaded.error()));
    for (const auto& [producer, key] : options.keys) {
      if (loaded->find(producer) != nullptr) {
        return make_unexpected(fmt::format("producer '{}' has a key both in verification.keys and in {}", producer,
                                           options.keys_file));
      }
    }
    file_keys = std::move(*loaded);
  }
  if (!options.required_on.empty() && options.keys.empty() && (!file_keys || file_keys->size() == 0)) {
    return make_unexpected("verification.required_on is set but there are no verification keys");
  }
  return std::make_unique<SignatureGate>(options.required_on, options.keys, std::move(file_keys),
                                         std::move(service_name));
}

bool SignatureGate::required(std::string_view topic) const {
  return std::any_of(filters_.begin(), filters_.end(), [&](const std::string& f) { return topic_matches(f, topic); });
}

const std::string* SignatureGate::key_for(std::string_view producer) const {
  if (auto it = keys_.find(producer); it != keys_.end()) return &it->second;
  return file_keys_ ? file_keys_->find(producer) : nullptr;
}

SignatureCheck SignatureGate::check(const Message& message) const {
  return check_event_signature(message, [this](std::string_view producer) { return key_for(producer); });
}

bool SignatureGate::admit(const Message& message) {
  if (!required(message.topic)) return true;
  const SignatureCheck result = check(message);
  switch (result) {
    case SignatureCheck::valid: return true;
    case SignatureCheck::unsigned_event: ++refusals_.unsigned_events; break;
    case SignatureCheck::unknown_producer: ++refusals_.unknown_producer; break;
    case SignatureCheck::bad_signature: ++refusals_.bad_signature; break;
  }
  // A flood of forged events must not turn into a flood of log lines.
  const auto now = std::chrono::steady_clock::now();
  if (last_warning_ != std::chrono::steady_clock::time_point{} && now - last_warning_ < std::chrono::seconds(1)) {
    ++unlogged_;
    return false;
  }
  last_warning_ = now;
  const std::string earlier = unlogged_ > 0 ? fmt::format(" ({} more refused since the last line)", unlogged_) : "";
  unlogged_ = 0;
  log::warn("sdk", "{}: refused an event on '{}' from producer '{}' with tern-id '{}': {}{}", service_name_,
            message.topic, clipped(message.user_property(kTernProducerProperty)),
            clipped(message.user_property(kTernIdProperty)), reason_text(result), earlier);
  return false;
}

std::optional<std::string> signing_options_error(const SigningOptions& options) {
  if (!options.key.empty() && options.key.size() < kMinSigningKeyBytes) {
    return fmt::format("signing.key is shorter than {} bytes", kMinSigningKeyBytes);
  }
  return std::nullopt;
}

}  // namespace sdk
}  // namespace tern
