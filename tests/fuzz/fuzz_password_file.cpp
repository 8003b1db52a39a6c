// libFuzzer target: the password file and the signing keys file (both `name:secret` per
// line). The first byte picks the parser.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "policy/password_file.hpp"
#include "policy/signing_keys.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    auto file = tern::policy::PasswordFile::parse(text, "fuzz");
    if (!file) return 0;
    // What was accepted survives a round trip unchanged.
    auto again = tern::policy::PasswordFile::parse(file->to_text(), "fuzz");
    if (!again || again->entries().size() != file->entries().size()) __builtin_trap();
  } else {
    (void)tern::policy::SigningKeys::parse(text, "fuzz");
  }
  return 0;
}
