// The TLS-PSK key file: one `identity:hexkey` a line.
//
//   # comment lines and blank lines are ignored
//   sensor-17:8a3f0c1d9e2b4f6a
//
// The identity is everything before the last ':' (surrounding blanks removed), the key the
// hexadecimal digits after it. Errors name the line and never quote a key.
//
// Pure functions without Boost or OpenSSL, so the fuzz target builds them alone.
// Thread-safety: no shared state.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"

namespace tern::net {

inline constexpr std::size_t kMaxPskIdentityBytes = 128;  // what common TLS stacks accept
inline constexpr std::size_t kMaxPskKeyBytes = 64;
inline constexpr std::size_t kMinPskKeyBytes = 1;

struct PskEntry {
  std::string identity;
  std::string key;  // raw bytes
};

struct PskTable {
  std::vector<PskEntry> entries;  // in file order; identities are unique
  // The key of `identity`, or nullptr.
  const PskEntry* find(std::string_view identity) const;
};

// Parses the file's text.
Expected<PskTable, std::string> parse_psk_file(std::string_view text);
// Reads and parses a file; errors start with the path.
Expected<PskTable, std::string> load_psk_file(const std::string& path);

}  // namespace tern::net
