// The event envelope as a service sees it (DESIGN §2): an owning copy of an MQTT 5
// PUBLISH. Tern's own headers (tern-id, traceparent, tern-error) are user properties.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tern {

enum class Qos : std::uint8_t { at_most_once = 0, at_least_once = 1, exactly_once = 2 };

using UserProperty = std::pair<std::string, std::string>;

struct Message {
  std::string topic;
  std::string payload;
  Qos qos = Qos::at_most_once;
  bool retain = false;
  std::vector<UserProperty> user_properties;
  std::optional<std::string> content_type;
  std::optional<std::string> response_topic;
  std::optional<std::string> correlation_data;
  std::optional<std::uint8_t> payload_format_indicator;
  std::optional<std::uint32_t> message_expiry_interval;

  // The first user property named `key`, or nullptr.
  const std::string* user_property(std::string_view key) const noexcept {
    for (const auto& [k, v] : user_properties) {
      if (k == key) return &v;
    }
    return nullptr;
  }
  // Replaces every user property named `key` by one with `value`.
  void set_user_property(std::string_view key, std::string value) {
    std::erase_if(user_properties, [&](const UserProperty& p) { return p.first == key; });
    user_properties.emplace_back(std::string(key), std::move(value));
  }
};

// Reserved user property names (DESIGN §2).
inline constexpr std::string_view kTernIdProperty = "tern-id";
inline constexpr std::string_view kTraceparentProperty = "traceparent";
inline constexpr std::string_view kTernErrorProperty = "tern-error";

}  // namespace tern
