// The ternd configuration parser: any input gives a configuration or an error message,
// never a crash; an accepted configuration prints as TOML that parses back to itself.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = tern::ternd::parse_config(text, "fuzz.toml");
  if (!parsed) {
    if (parsed.error().empty()) __builtin_trap();
    return 0;
  }
  const std::string printed = tern::ternd::to_toml(*parsed);
  auto again = tern::ternd::parse_config(printed, "printed.toml");
  if (!again || tern::ternd::to_toml(*again) != printed) __builtin_trap();
  return 0;
}
