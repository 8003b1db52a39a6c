// The Service's side of event signatures: SignatureGate decides whether a consumed event may
// reach the handlers (tern/signing.hpp holds the public construction).
//
// Why keys files are read with policy::SigningKeys: a consumer and ternd must accept exactly
// the same files, so there is one parser, and one event_signature, for both.
//
// Thread-safety: one io_context thread, like the Service that owns it.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"
#include "policy/signing_keys.hpp"
#include "tern/signing.hpp"

namespace tern::sdk {

class SignatureGate {
 public:
  // Reads `options.keys_file`; the error names the file and line, never key material.
  static Expected<std::unique_ptr<SignatureGate>, std::string> create(const VerificationOptions& options,
                                                                      std::string service_name);

  // True when `topic` is under a filter of VerificationOptions::required_on.
  bool required(std::string_view topic) const;
  SignatureCheck check(const Message& message) const;
  // check(), and for a refused event: counts it and logs a warning (at most one a second;
  // the next line says how many were not logged).
  bool admit(const Message& message);
  const SignatureRefusals& refusals() const noexcept { return refusals_; }

  SignatureGate(std::vector<std::string> filters, SigningKeyMap keys, std::optional<policy::SigningKeys> file_keys,
                std::string service_name);

 private:
  const std::string* key_for(std::string_view producer) const;

  std::vector<std::string> filters_;
  SigningKeyMap keys_;
  std::optional<policy::SigningKeys> file_keys_;
  std::string service_name_;
  SignatureRefusals refusals_;
  std::chrono::steady_clock::time_point last_warning_{};
  std::uint64_t unlogged_ = 0;
};

// Why `options` cannot sign (a key that is too short), or nullopt.
std::optional<std::string> signing_options_error(const SigningOptions& options);

}  // namespace tern::sdk
