#include "sdk/text.hpp"

#include <fmt/format.h>

#include <random>

#include "core/topic.hpp"

namespace tern::sdk {

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (u < 0x20) out += fmt::format("\\u{:04x}", static_cast<unsigned>(u));
        else out.push_back(c);
    }
  }
  out.push_back('"');
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto at = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t v = at(i) << 16;
    if (rest == 2) v |= at(i + 1) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::string message_to_json(const Message& m) {
  std::string out = "{\"topic\":";
  append_json_string(out, m.topic);
  // Payloads that are not text (or hold U+0000) are shown as base64 so that every line
  // stays valid JSON.
  if (m.payload.empty() || is_valid_mqtt_utf8(m.payload)) {
    out += ",\"payload\":";
    append_json_string(out, m.payload);
  } else {
    out += ",\"payload\":";
    append_json_string(out, base64_encode(m.payload));
    out += ",\"payload_encoding\":\"base64\"";
  }
  out += fmt::format(",\"qos\":{},\"retain\":{},\"properties\":{{", static_cast<int>(m.qos), m.retain);
  bool first = true;
  auto key = [&](std::string_view k) {
    if (!first) out.push_back(',');
    first = false;
    append_json_string(out, k);
    out.push_back(':');
  };
  if (!m.user_properties.empty()) {
    key("user_properties");
    out.push_back('[');
    for (std::size_t i = 0; i < m.user_properties.size(); ++i) {
      if (i) out.push_back(',');
      out.push_back('[');
      append_json_string(out, m.user_properties[i].first);
      out.push_back(',');
      append_json_string(out, m.user_properties[i].second);
      out.push_back(']');
    }
    out.push_back(']');
  }
  if (m.content_type) { key("content_type"); append_json_string(out, *m.content_type); }
  if (m.response_topic) { key("response_topic"); append_json_string(out, *m.response_topic); }
  if (m.correlation_data) { key("correlation_data_base64"); append_json_string(out, base64_encode(*m.correlation_data)); }
  if (m.payload_format_indicator) { key("payload_format_indicator"); out += std::to_string(*m.payload_format_indicator); }
  if (m.message_expiry_interval) { key("message_expiry_interval"); out += std::to_string(*m.message_expiry_interval); }
  out += "}}";
  return out;
}

std::string random_hex(std::size_t bytes) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  std::string out;
  out.reserve(bytes * 2);
  static constexpr char kHex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < bytes; ++i) {
    const auto b = static_cast<unsigned>(rng() & 0xFF);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

}  // namespace tern::sdk
