// The 5.0 property block decoder (§2.2.2).
//
// Error classes follow the specification: an identifier that is unknown or not valid for
// the packet type, a value of the wrong type or a truncated value make a Malformed Packet
// (§2.2.2.2); a repeated property (other than user properties, and subscription
// identifiers in PUBLISH) and a value outside its allowed range are Protocol Errors.
// Topic Alias 0 gets its own code, Topic Alias invalid (0x94), which is what the
// specification sends for an alias the receiver cannot accept; whether a non-zero alias
// exceeds the negotiated maximum is for the session layer, which knows the maximum.
#include <cstdint>

#include "core/topic.hpp"
#include "mqtt/wire.hpp"

namespace tern::mqtt::wire {
namespace {

constexpr std::uint16_t bit(PropertyContext c) noexcept { return static_cast<std::uint16_t>(1u << static_cast<unsigned>(c)); }

constexpr std::uint16_t kConnect = bit(PropertyContext::connect);
constexpr std::uint16_t kConnack = bit(PropertyContext::connack);
constexpr std::uint16_t kPublish = bit(PropertyContext::publish);
constexpr std::uint16_t kWill = bit(PropertyContext::will);
constexpr std::uint16_t kPubackFamily = bit(PropertyContext::puback) | bit(PropertyContext::pubrec) |
                                        bit(PropertyContext::pubrel) | bit(PropertyContext::pubcomp);
constexpr std::uint16_t kSubscribe = bit(PropertyContext::subscribe);
constexpr std::uint16_t kSuback = bit(PropertyContext::suback);
constexpr std::uint16_t kUnsuback = bit(PropertyContext::unsuback);
constexpr std::uint16_t kDisconnect = bit(PropertyContext::disconnect);
constexpr std::uint16_t kAuth = bit(PropertyContext::auth);
constexpr std::uint16_t kAll = 0x3FFF;

// The packets each property identifier may appear in (§2.2.2.2); 0 means unknown.
constexpr std::uint16_t allowed_contexts(std::uint8_t id) noexcept {
  switch (static_cast<PropertyId>(id)) {
    case PropertyId::payload_format_indicator:
    case PropertyId::message_expiry_interval:
    case PropertyId::content_type:
    case PropertyId::response_topic:
    case PropertyId::correlation_data: return kPublish | kWill;
    case PropertyId::subscription_identifier: return kPublish | kSubscribe;
    case PropertyId::session_expiry_interval: return kConnect | kConnack | kDisconnect;
    case PropertyId::assigned_client_identifier:
    case PropertyId::server_keep_alive:
    case PropertyId::response_information:
    case PropertyId::maximum_qos:
    case PropertyId::retain_available:
    case PropertyId::wildcard_subscription_available:
    case PropertyId::subscription_identifier_available:
    case PropertyId::shared_subscription_available: return kConnack;
    case PropertyId::authentication_method:
    case PropertyId::authentication_data: return kConnect | kConnack | kAuth;
    case PropertyId::request_problem_information:
    case PropertyId::request_response_information: return kConnect;
    case PropertyId::will_delay_interval: return kWill;
    case PropertyId::server_reference: return kConnack | kDisconnect;
    case PropertyId::reason_string: return kConnack | kPubackFamily | kSuback | kUnsuback | kDisconnect | kAuth;
    case PropertyId::receive_maximum:
    case PropertyId::topic_alias_maximum:
    case PropertyId::maximum_packet_size: return kConnect | kConnack;
    case PropertyId::topic_alias: return kPublish;
    case PropertyId::user_property: return kAll;
  }
  return 0;
}

class PropertyReader {
 public:
  PropertyReader(std::string_view block, PropertyContext context, Properties& out) noexcept
      : block_(block), r_(block), context_(context), out_(out) {}

  MaybeError run() noexcept {
    std::size_t user_first = npos, user_end = 0, subid_first = npos, subid_end = 0;
    while (!r_.empty()) {
      const std::size_t start = r_.position();
      std::uint8_t id = 0;
      r_.read_u8(id);
      if ((allowed_contexts(id) & bit(context_)) == 0) {
        return malformed(allowed_contexts(id) == 0 ? "unknown property identifier"
                                                   : "property not allowed in this packet");
      }
      const std::uint64_t mask = std::uint64_t{1} << id;  // identifiers are below 64
      const bool may_repeat = id == static_cast<std::uint8_t>(PropertyId::user_property) ||
                              (id == static_cast<std::uint8_t>(PropertyId::subscription_identifier) &&
                               context_ == PropertyContext::publish);
      if ((seen_ & mask) != 0 && !may_repeat) return protocol_error("property repeated");
      seen_ |= mask;
      if (auto e = read_value(static_cast<PropertyId>(id))) return e;
      if (id == static_cast<std::uint8_t>(PropertyId::user_property)) {
        if (user_first == npos) user_first = start;
        user_end = r_.position();
      } else if (id == static_cast<std::uint8_t>(PropertyId::subscription_identifier)) {
        if (subid_first == npos) subid_first = start;
        subid_end = r_.position();
      }
    }
    if (user_first != npos) out_.user_properties = block_.substr(user_first, user_end - user_first);
    if (subid_first != npos) out_.subscription_identifiers = block_.substr(subid_first, subid_end - subid_first);
    return std::nullopt;
  }

 private:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  MaybeError byte(std::optional<std::uint8_t>& field, bool zero_or_one) noexcept {
    std::uint8_t v = 0;
    if (!r_.read_u8(v)) return malformed("truncated property");
    if (zero_or_one && v > 1) return protocol_error("property value must be 0 or 1");
    field = v;
    return std::nullopt;
  }
  MaybeError two(std::optional<std::uint16_t>& field, bool nonzero) noexcept {
    std::uint16_t v = 0;
    if (!r_.read_u16(v)) return malformed("truncated property");
    if (nonzero && v == 0) return protocol_error("property value must not be 0");
    field = v;
    return std::nullopt;
  }
  MaybeError four(std::optional<std::uint32_t>& field, bool nonzero) noexcept {
    std::uint32_t v = 0;
    if (!r_.read_u32(v)) return malformed("truncated property");
    if (nonzero && v == 0) return protocol_error("property value must not be 0");
    field = v;
    return std::nullopt;
  }
  MaybeError binary(std::optional<std::string_view>& field) noexcept {
    std::string_view v;
    if (!r_.read_binary(v)) return malformed("truncated property");
    field = v;
    return std::nullopt;
  }
  MaybeError utf8(std::optional<std::string_view>& field) noexcept {
    if (auto e = binary(field)) return e;
    if (!is_valid_mqtt_utf8(*field)) return malformed("property string is not valid UTF-8");
    return std::nullopt;
  }

  MaybeError read_value(PropertyId id) noexcept {
    Properties& p = out_;
    switch (id) {
      case PropertyId::payload_format_indicator: return byte(p.payload_format_indicator, true);
      case PropertyId::message_expiry_interval: return four(p.message_expiry_interval, false);
      case PropertyId::content_type: return utf8(p.content_type);
      case PropertyId::response_topic:
        if (auto e = utf8(p.response_topic)) return e;
        if (!is_valid_topic_name(*p.response_topic)) return protocol_error("response topic is not a topic name");
        return std::nullopt;
      case PropertyId::correlation_data: return binary(p.correlation_data);
      case PropertyId::subscription_identifier: {
        std::uint32_t v = 0;
        if (!r_.read_varint(v)) return malformed("bad subscription identifier");
        if (v == 0) return protocol_error("subscription identifier 0");
        return std::nullopt;
      }
      case PropertyId::session_expiry_interval: return four(p.session_expiry_interval, false);
      case PropertyId::assigned_client_identifier: return utf8(p.assigned_client_identifier);
      case PropertyId::server_keep_alive: return two(p.server_keep_alive, false);
      case PropertyId::authentication_method: return utf8(p.authentication_method);
      case PropertyId::authentication_data: return binary(p.authentication_data);
      case PropertyId::request_problem_information: return byte(p.request_problem_information, true);
      case PropertyId::will_delay_interval: return four(p.will_delay_interval, false);
      case PropertyId::request_response_information: return byte(p.request_response_information, true);
      case PropertyId::response_information: return utf8(p.response_information);
      case PropertyId::server_reference: return utf8(p.server_reference);
      case PropertyId::reason_string: return utf8(p.reason_string);
      case PropertyId::receive_maximum: return two(p.receive_maximum, true);
      case PropertyId::topic_alias_maximum: return two(p.topic_alias_maximum, false);
      case PropertyId::topic_alias: {
        std::uint16_t v = 0;
        if (!r_.read_u16(v)) return malformed("truncated property");
        if (v == 0) return CodecError{ReasonCode::topic_alias_invalid, "topic alias 0"};
        p.topic_alias = v;
        return std::nullopt;
      }
      case PropertyId::maximum_qos: return byte(p.maximum_qos, true);
      case PropertyId::retain_available: return byte(p.retain_available, true);
      case PropertyId::user_property: {
        std::string_view key, value;
        if (!r_.read_binary(key) || !r_.read_binary(value)) return malformed("truncated user property");
        if (!is_valid_mqtt_utf8(key) || !is_valid_mqtt_utf8(value)) return malformed("user property is not valid UTF-8");
        return std::nullopt;
      }
      case PropertyId::maximum_packet_size: return four(p.maximum_packet_size, true);
      case PropertyId::wildcard_subscription_available: return byte(p.wildcard_subscription_available, true);
      case PropertyId::subscription_identifier_available: return byte(p.subscription_identifier_available, true);
      case PropertyId::shared_subscription_available: return byte(p.shared_subscription_available, true);
    }
    return malformed("unknown property identifier");
  }

  std::string_view block_;
  Reader r_;
  PropertyContext context_;
  Properties& out_;
  std::uint64_t seen_ = 0;
};

}  // namespace

MaybeError decode_properties(Reader& r, PropertyContext context, Properties& out) noexcept {
  std::uint32_t length = 0;
  if (!r.read_varint(length)) return malformed("bad property length");
  std::string_view block;
  if (!r.read_bytes(length, block)) return malformed("property length exceeds the packet");
  return PropertyReader(block, context, out).run();
}

}  // namespace tern::mqtt::wire
