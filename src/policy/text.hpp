// Small text helpers shared by the policy file parsers.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"

namespace tern::policy::text {

std::string_view trim(std::string_view s) noexcept;
// Splits on '\n' (a trailing '\r' is dropped from each line).
std::vector<std::string_view> lines(std::string_view s);
// Splits on runs of spaces and tabs.
std::vector<std::string_view> words(std::string_view s);

// Standard base64 with padding.
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);
// Lower-case hexadecimal.
std::string hex_encode(std::string_view bytes);
std::optional<std::string> hex_decode(std::string_view text);

// One `name:value` line of a policy file (the password file, the signing keys).
struct ColonEntry {
  std::size_t line;  // 1-based
  std::string_view name;
  std::string_view value;
};
// The `name:value` lines of `text`, trimmed, blank lines and `#` comments skipped. A line
// without ':' is an error "SOURCE:LINE: expected FORM".
Expected<std::vector<ColonEntry>, std::string> colon_entries(std::string_view text, std::string_view source_name,
                                                             std::string_view form);
// A whole file; the error names the path and the reason.
Expected<std::string, std::string> read_file(const std::string& path);

// `*` in `pattern` matches any run of characters (possibly empty); nothing else is special.
bool glob_matches(std::string_view pattern, std::string_view s) noexcept;

}  // namespace tern::policy::text
