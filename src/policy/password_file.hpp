// The password file: one user a line, `user:$pbkdf2-sha512$ITERATIONS$SALT$HASH` with
// SALT and HASH in base64 (docs/security.md). `#` starts a comment line. Parsing needs no
// cryptography (fuzzed alone); hashing and verification live in password_hash.hpp.
//
// Thread-safety: values; no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"

namespace tern::policy {

struct PasswordEntry {
  std::string user;
  std::uint32_t iterations = 0;
  std::string salt;  // raw bytes
  std::string hash;  // raw bytes (64 for SHA-512)
};

inline constexpr std::uint32_t kMinIterations = 1000;
inline constexpr std::uint32_t kMaxIterations = 10'000'000;

// A user name the file can hold: 1 to 256 bytes, no ':', no control characters, no
// spaces (so lines stay unambiguous).
bool is_valid_password_user(std::string_view user) noexcept;

class PasswordFile {
 public:
  // Errors name the line: "passwd:3: ...". Never includes hash or salt bytes.
  static Expected<PasswordFile, std::string> parse(std::string_view text, std::string_view source_name);
  static Expected<PasswordFile, std::string> load(const std::string& path);

  const PasswordEntry* find(std::string_view user) const noexcept;
  const std::vector<PasswordEntry>& entries() const noexcept { return entries_; }
  // Adds or replaces the user's entry.
  void set(PasswordEntry entry);
  bool remove(std::string_view user);
  std::string to_text() const;

 private:
  std::vector<PasswordEntry> entries_;
};

std::string format_password_entry(const PasswordEntry& entry);

}  // namespace tern::policy
