// Message: an application message as the broker keeps it once it has been received.
// Immutable after construction and shared (MessagePtr) among every session it is queued for.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "mqtt/packets.hpp"

namespace tern::broker {

struct Message {
  std::string topic;
  std::string payload;
  mqtt::QoS qos = mqtt::QoS::at_most_once;
  bool retain = false;
  std::optional<std::uint8_t> payload_format_indicator;
  std::optional<std::string> content_type;
  std::optional<std::string> response_topic;
  std::optional<std::string> correlation_data;
  std::string user_properties;  // encoded, as in mqtt::Properties::user_properties
  // When the message expires (message expiry interval), on the steady clock.
  std::optional<std::chrono::steady_clock::time_point> expires_at;
  std::string origin_client_id;  // for no-local
};

using MessagePtr = std::shared_ptr<const Message>;

}  // namespace tern::broker
