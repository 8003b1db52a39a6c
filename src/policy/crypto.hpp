// The cryptography the policy uses, all from OpenSSL: PBKDF2-SHA512 password hashes,
// HMAC-SHA256 event signatures, random bytes and constant-time comparison.
//
// Thread-safety: pure functions, callable from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "policy/password_file.hpp"

namespace tern::policy {

inline constexpr std::uint32_t kDefaultIterations = 210'000;
inline constexpr std::size_t kSaltBytes = 16;

std::string random_bytes(std::size_t n);
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

std::string pbkdf2_sha512(std::string_view password, std::string_view salt, std::uint32_t iterations);
// A new entry with a fresh random salt.
PasswordEntry make_password_entry(std::string user, std::string_view password,
                                  std::uint32_t iterations = kDefaultIterations);
// Slow by design (the entry's iteration count decides how slow).
bool verify_password(const PasswordEntry& entry, std::string_view password);

std::string hmac_sha256(std::string_view key, std::string_view data);
std::string sha256(std::string_view data);

// The tern-sig of an event: hex(HMAC-SHA256(key, topic || 0x00 || payload || 0x00 || tern-id)).
std::string event_signature(std::string_view key, std::string_view topic, std::string_view payload,
                            std::string_view event_id);

}  // namespace tern::policy
