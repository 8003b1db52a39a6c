// The signing keys file: `producer-id:hexkey` per line, `#` comments; keys are at least
// 16 bytes (32 hex digits). Parsing needs no cryptography (fuzzed alone). Error messages
// never contain key material.
//
// Thread-safety: immutable after parsing.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "core/expected.hpp"

namespace tern::policy {

class SigningKeys {
 public:
  static Expected<SigningKeys, std::string> parse(std::string_view text, std::string_view source_name);
  static Expected<SigningKeys, std::string> load(const std::string& path);
  // The raw key bytes, or null.
  const std::string* find(std::string_view producer) const;
  std::size_t size() const noexcept { return keys_.size(); }

 private:
  std::map<std::string, std::string, std::less<>> keys_;
};

}  // namespace tern::policy
