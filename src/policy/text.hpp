// Small text helpers shared by the policy file parsers. Pure functions, no dependencies.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

// `*` in `pattern` matches any run of characters (possibly empty); nothing else is special.
bool glob_matches(std::string_view pattern, std::string_view s) noexcept;

}  // namespace tern::policy::text
