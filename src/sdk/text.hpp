// Small text helpers shared by the SDK and the CLI: JSON string escaping and base64.
#pragma once

#include <string>
#include <string_view>

#include "tern/message.hpp"

namespace tern::sdk {

// Appends `s` as a JSON string literal (quotes included).
void append_json_string(std::string& out, std::string_view s);
std::string base64_encode(std::string_view bytes);
// A JSON object with topic, payload (utf-8 text or base64 with "payload_encoding"),
// qos, retain and properties.
std::string message_to_json(const Message& message);
// A random lower-case hex string of `bytes` random bytes.
std::string random_hex(std::size_t bytes);

}  // namespace tern::sdk
