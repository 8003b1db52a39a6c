// The MQTT packet model, shared by 3.1.1 and 5.0.
//
// Decoded packets borrow: every std::string_view in them points into the buffer that
// was decoded, which must outlive the packet. Copy what must be kept. The same structs
// are what the encoder takes, so a caller builds a packet from views over its own data.
//
// Properties that may repeat (user properties, subscription identifiers) are kept as
// their encoded bytes (identifier byte included) so that decoding never allocates and a
// broker can forward them as they came. Iterate them with for_each_user_property and
// for_each_subscription_identifier; build them with append_user_property and
// append_subscription_identifier.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "mqtt/reason_code.hpp"

namespace tern::mqtt {

enum class Version : std::uint8_t { v311 = 4, v5 = 5 };

enum class PacketType : std::uint8_t {
  connect = 1, connack = 2, publish = 3, puback = 4, pubrec = 5, pubrel = 6, pubcomp = 7,
  subscribe = 8, suback = 9, unsubscribe = 10, unsuback = 11, pingreq = 12, pingresp = 13,
  disconnect = 14, auth = 15,
};

enum class QoS : std::uint8_t { at_most_once = 0, at_least_once = 1, exactly_once = 2 };

// Property identifiers (§2.2.2.2).
enum class PropertyId : std::uint8_t {
  payload_format_indicator = 0x01,
  message_expiry_interval = 0x02,
  content_type = 0x03,
  response_topic = 0x08,
  correlation_data = 0x09,
  subscription_identifier = 0x0B,
  session_expiry_interval = 0x11,
  assigned_client_identifier = 0x12,
  server_keep_alive = 0x13,
  authentication_method = 0x15,
  authentication_data = 0x16,
  request_problem_information = 0x17,
  will_delay_interval = 0x18,
  request_response_information = 0x19,
  response_information = 0x1A,
  server_reference = 0x1C,
  reason_string = 0x1F,
  receive_maximum = 0x21,
  topic_alias_maximum = 0x22,
  topic_alias = 0x23,
  maximum_qos = 0x24,
  retain_available = 0x25,
  user_property = 0x26,
  maximum_packet_size = 0x27,
  wildcard_subscription_available = 0x28,
  subscription_identifier_available = 0x29,
  shared_subscription_available = 0x2A,
};

// Every 5.0 property. The decoder checks that each property is allowed in the packet it
// appears in and that none but user properties and subscription identifiers repeat.
struct Properties {
  std::optional<std::uint8_t> payload_format_indicator;
  std::optional<std::uint32_t> message_expiry_interval;
  std::optional<std::string_view> content_type;
  std::optional<std::string_view> response_topic;
  std::optional<std::string_view> correlation_data;
  std::optional<std::uint32_t> session_expiry_interval;
  std::optional<std::string_view> assigned_client_identifier;
  std::optional<std::uint16_t> server_keep_alive;
  std::optional<std::string_view> authentication_method;
  std::optional<std::string_view> authentication_data;
  std::optional<std::uint8_t> request_problem_information;
  std::optional<std::uint32_t> will_delay_interval;
  std::optional<std::uint8_t> request_response_information;
  std::optional<std::string_view> response_information;
  std::optional<std::string_view> server_reference;
  std::optional<std::string_view> reason_string;
  std::optional<std::uint16_t> receive_maximum;
  std::optional<std::uint16_t> topic_alias_maximum;
  std::optional<std::uint16_t> topic_alias;
  std::optional<std::uint8_t> maximum_qos;
  std::optional<std::uint8_t> retain_available;
  std::optional<std::uint32_t> maximum_packet_size;
  std::optional<std::uint8_t> wildcard_subscription_available;
  std::optional<std::uint8_t> subscription_identifier_available;
  std::optional<std::uint8_t> shared_subscription_available;
  // Encoded user properties: repeated (0x26, UTF-8 string pair). Once decoded, other
  // properties may sit between them (see the note above the inline definitions).
  std::string_view user_properties;
  // Encoded subscription identifiers: repeated (0x0B, variable byte integer); same note.
  std::string_view subscription_identifiers;
};

struct Will {
  std::string_view topic;
  std::string_view payload;
  QoS qos = QoS::at_most_once;
  bool retain = false;
  Properties properties;  // 5.0 will properties
};

struct Connect {
  Version version = Version::v5;
  bool clean_start = true;  // 3.1.1: clean session
  std::uint16_t keep_alive = 0;
  std::string_view client_id;
  std::optional<std::string_view> username;
  std::optional<std::string_view> password;
  std::optional<Will> will;
  Properties properties;
};

struct Connack {
  bool session_present = false;
  ReasonCode reason_code = ReasonCode::success;  // 3.1.1: encoded with to_connect_return_code_311
  Properties properties;
};

struct Publish {
  std::string_view topic;  // may be empty in 5.0 when a topic alias is used
  std::string_view payload;
  QoS qos = QoS::at_most_once;
  bool retain = false;
  bool dup = false;
  std::uint16_t packet_id = 0;  // only for QoS 1 and 2
  Properties properties;
};

// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape.
struct PubAck {
  PacketType type = PacketType::puback;
  std::uint16_t packet_id = 0;
  ReasonCode reason_code = ReasonCode::success;
  Properties properties;
};

enum class RetainHandling : std::uint8_t { send_on_subscribe = 0, send_if_new = 1, do_not_send = 2 };

struct SubscriptionOptions {
  QoS qos = QoS::at_most_once;
  bool no_local = false;
  bool retain_as_published = false;
  RetainHandling retain_handling = RetainHandling::send_on_subscribe;
};

struct TopicSubscription {
  std::string_view filter;
  SubscriptionOptions options;
};

struct Subscribe {
  std::uint16_t packet_id = 0;
  std::vector<TopicSubscription> topics;  // never empty once decoded
  Properties properties;
};

struct Suback {
  std::uint16_t packet_id = 0;
  std::vector<ReasonCode> reason_codes;  // 3.1.1: 0x00, 0x01, 0x02 or 0x80
  Properties properties;
};

struct Unsubscribe {
  std::uint16_t packet_id = 0;
  std::vector<std::string_view> filters;
  Properties properties;
};

struct Unsuback {
  std::uint16_t packet_id = 0;
  std::vector<ReasonCode> reason_codes;  // 5.0 only; 3.1.1 UNSUBACK has none
  Properties properties;
};

struct Pingreq {};
struct Pingresp {};

struct Disconnect {
  ReasonCode reason_code = ReasonCode::success;
  Properties properties;
};

struct Auth {
  ReasonCode reason_code = ReasonCode::success;
  Properties properties;
};

using Packet = std::variant<Connect, Connack, Publish, PubAck, Subscribe, Suback, Unsubscribe,
                            Unsuback, Pingreq, Pingresp, Disconnect, Auth>;

PacketType packet_type(const Packet& packet) noexcept;

// Repeated-property helpers. The iterators assume bytes the decoder has already
// validated (or that the append_* helpers produced).
template <class F>  // F(std::string_view key, std::string_view value)
void for_each_user_property(std::string_view encoded, F&& f);
template <class F>  // F(std::uint32_t id)
void for_each_subscription_identifier(std::string_view encoded, F&& f);
void append_user_property(std::string& encoded, std::string_view key, std::string_view value);
void append_subscription_identifier(std::string& encoded, std::uint32_t id);

// ---- inline definitions ----
//
// Why the iterators skip foreign properties: on the wire, user properties and
// subscription identifiers may be interleaved with other properties. The decoder does not
// allocate, so it cannot gather them; instead `user_properties` (and
// `subscription_identifiers`) views the span from the first to the last property of that
// kind, other properties included. The iterators walk every property in the span and
// report only their own kind; the encoder copies only their own kind. Bytes built with
// the append_* helpers hold nothing else.
namespace detail {
inline std::uint16_t read_u16(const char* p) {
  return static_cast<std::uint16_t>((static_cast<std::uint8_t>(p[0]) << 8) | static_cast<std::uint8_t>(p[1]));
}

// The encoded length (identifier included) of the property starting at e[i], or 0 when
// the identifier is unknown or the property runs past the end of `e`.
inline std::size_t property_size(std::string_view e, std::size_t i) noexcept {
  if (i >= e.size()) return 0;
  const std::size_t left = e.size() - i - 1;  // bytes after the identifier
  const char* v = e.data() + i + 1;
  std::size_t n = 0;
  switch (static_cast<std::uint8_t>(e[i])) {
    case 0x01: case 0x17: case 0x19: case 0x24: case 0x25: case 0x28: case 0x29: case 0x2A:
      n = 1;
      break;
    case 0x13: case 0x21: case 0x22: case 0x23:
      n = 2;
      break;
    case 0x02: case 0x11: case 0x18: case 0x27:
      n = 4;
      break;
    case 0x0B:  // variable byte integer, at most 4 bytes
      for (;;) {
        if (n >= left || n >= 4) return 0;
        if ((static_cast<std::uint8_t>(v[n++]) & 0x80) == 0) break;
      }
      break;
    case 0x03: case 0x08: case 0x09: case 0x12: case 0x15: case 0x16: case 0x1A: case 0x1C: case 0x1F:
      if (left < 2) return 0;
      n = 2 + std::size_t{read_u16(v)};
      break;
    case 0x26:  // string pair
      if (left < 2) return 0;
      n = 2 + std::size_t{read_u16(v)};
      if (left < n + 2) return 0;
      n += 2 + std::size_t{read_u16(v + n)};
      break;
    default:
      return 0;
  }
  return n <= left ? n + 1 : 0;
}
}  // namespace detail

template <class F>
void for_each_user_property(std::string_view e, F&& f) {
  for (std::size_t i = 0; i < e.size();) {
    const std::size_t n = detail::property_size(e, i);
    if (n == 0) return;
    if (static_cast<std::uint8_t>(e[i]) == 0x26) {
      const std::size_t kl = detail::read_u16(e.data() + i + 1);
      const std::size_t vl = detail::read_u16(e.data() + i + 3 + kl);
      f(e.substr(i + 3, kl), e.substr(i + 5 + kl, vl));
    }
    i += n;
  }
}

template <class F>
void for_each_subscription_identifier(std::string_view e, F&& f) {
  for (std::size_t i = 0; i < e.size();) {
    const std::size_t n = detail::property_size(e, i);
    if (n == 0) return;
    if (static_cast<std::uint8_t>(e[i]) == 0x0B) {
      std::uint32_t value = 0;
      unsigned shift = 0;
      for (std::size_t k = i + 1; k < i + n; ++k) {
        value |= static_cast<std::uint32_t>(static_cast<std::uint8_t>(e[k]) & 0x7F) << shift;
        shift += 7;
      }
      f(value);
    }
    i += n;
  }
}

}  // namespace tern::mqtt
