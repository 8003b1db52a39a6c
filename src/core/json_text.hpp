// JSON text helpers shared by the JSON-lines log and the OTLP encoder.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace tern {

// Appends `s` as a JSON string literal, quotes included. Control characters are escaped;
// bytes that are not well-formed UTF-8 become U+FFFD, so the output is always valid JSON
// and valid UTF-8 whatever a client sent.
void append_json_string(std::string& out, std::string_view s);

}  // namespace tern
