// Framing and decoding, 3.1.1 and 5.0.
//
// Classification of errors: what cannot be parsed, reserved bits that are set, invalid
// UTF-8 and truncated or trailing bytes are Malformed Packet; data that parses but breaks
// a rule of the protocol (packet id 0, an empty SUBSCRIBE, a reason code that the packet
// type does not define, will and password flags that contradict each other in 3.1.1) is
// a Protocol Error. Topic names with wildcards are Topic Name invalid. Invalid topic
// filters are Malformed Packet, as the specification's topic filter rules require.
//
// Checks that need the session (topic alias above the negotiated maximum, subscription
// identifiers in a PUBLISH sent by a client, the client identifier's content, an empty
// client identifier without clean session in 3.1.1) are left to the protocol layer.
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <string_view>
#include <utility>

#include "core/topic.hpp"
#include "mqtt/codec.hpp"
#include "mqtt/wire.hpp"

namespace tern::mqtt {
namespace {

using wire::malformed;
using wire::MaybeError;
using wire::PropertyContext;
using wire::protocol_error;
using wire::Reader;

using Result = Expected<Packet, CodecError>;

auto fail(CodecError e) { return tern::make_unexpected(e); }

bool one_of(std::uint8_t v, std::initializer_list<std::uint8_t> allowed) noexcept {
  for (std::uint8_t a : allowed) {
    if (a == v) return true;
  }
  return false;
}

// Reason codes each 5.0 packet type defines (§2.4 and the packet sections).
bool valid_reason(PacketType type, std::uint8_t rc) noexcept {
  switch (type) {
    case PacketType::connack:
      return one_of(rc, {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C,
                         0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F});
    case PacketType::puback:
    case PacketType::pubrec:
      return one_of(rc, {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99});
    case PacketType::pubrel:
    case PacketType::pubcomp:
      return one_of(rc, {0x00, 0x92});
    case PacketType::suback:
      return one_of(rc, {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2});
    case PacketType::unsuback:
      return one_of(rc, {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91});
    case PacketType::disconnect:
      return one_of(rc, {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93,
                         0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1,
                         0xA2});
    case PacketType::auth:
      return one_of(rc, {0x00, 0x18, 0x19});
    default:
      return false;
  }
}

MaybeError read_reason(Reader& r, PacketType type, ReasonCode& out) noexcept {
  std::uint8_t rc = 0;
  if (!r.read_u8(rc)) return malformed("truncated reason code");
  if (!valid_reason(type, rc)) return protocol_error("reason code not defined for this packet");
  out = static_cast<ReasonCode>(rc);
  return std::nullopt;
}

MaybeError read_utf8(Reader& r, std::string_view& out, const char* truncated) noexcept {
  if (!r.read_binary(out)) return malformed(truncated);
  if (!is_valid_mqtt_utf8(out)) return malformed("string is not valid UTF-8");
  return std::nullopt;
}

MaybeError read_packet_id(Reader& r, std::uint16_t& id) noexcept {
  if (!r.read_u16(id)) return malformed("truncated packet identifier");
  if (id == 0) return protocol_error("packet identifier 0");
  return std::nullopt;
}

MaybeError expect_flags(const Frame& f, std::uint8_t flags) noexcept {
  if (f.flags() != flags) return malformed("reserved fixed header flags");
  return std::nullopt;
}

MaybeError expect_end(const Reader& r) noexcept {
  if (!r.empty()) return malformed("unexpected bytes at the end of the packet");
  return std::nullopt;
}

MaybeError check_auth_pair(const Properties& p) noexcept {
  if (p.authentication_data && !p.authentication_method) {
    return protocol_error("authentication data without authentication method");
  }
  return std::nullopt;
}

// A topic name from PUBLISH or a will. The usual case, a valid name, costs one scan.
MaybeError check_topic_name(std::string_view topic) noexcept {
  if (is_valid_topic_name(topic)) return std::nullopt;
  if (!is_valid_mqtt_utf8(topic)) return malformed("topic is not valid UTF-8");
  return CodecError{ReasonCode::topic_name_invalid, "topic name is empty or has wildcards"};
}

MaybeError check_topic_filter(std::string_view filter) noexcept {
  SharedSubscription shared;
  bool ok = true;
  if (parse_shared_subscription(filter, shared, ok)) {
    if (!ok) return malformed("malformed shared subscription");
    if (!is_valid_topic_filter(shared.filter)) return malformed("invalid topic filter in shared subscription");
    return std::nullopt;
  }
  if (!is_valid_topic_filter(filter)) return malformed("invalid topic filter");
  return std::nullopt;
}

Result decode_connect(const Frame& f) {
  if (auto e = expect_flags(f, 0)) return fail(*e);
  Reader r(f.body);
  std::string_view name;
  std::uint8_t level = 0;
  if (!r.read_binary(name) || !r.read_u8(level)) return fail(malformed("truncated protocol name or level"));
  Connect c;
  if (name == "MQTT") {
    if (level == 4) {
      c.version = Version::v311;
    } else if (level == 5) {
      c.version = Version::v5;
    } else {
      return fail({ReasonCode::unsupported_protocol_version, "unsupported protocol level"});
    }
  } else if (name == "MQIsdp") {
    return fail({ReasonCode::unsupported_protocol_version, "MQTT 3.1 is not supported"});
  } else {
    return fail(malformed("wrong protocol name"));
  }
  const bool v5 = c.version == Version::v5;

  std::uint8_t flags = 0;
  if (!r.read_u8(flags) || !r.read_u16(c.keep_alive)) return fail(malformed("truncated CONNECT header"));
  if ((flags & 0x01) != 0) return fail(malformed("reserved CONNECT flag set"));
  const bool has_username = (flags & 0x80) != 0;
  const bool has_password = (flags & 0x40) != 0;
  const bool will_retain = (flags & 0x20) != 0;
  const auto will_qos = static_cast<std::uint8_t>((flags >> 3) & 0x03);
  const bool has_will = (flags & 0x04) != 0;
  c.clean_start = (flags & 0x02) != 0;
  if (will_qos == 3) return fail(malformed("will QoS 3"));
  if (!has_will && (will_qos != 0 || will_retain)) return fail(malformed("will QoS or retain without will flag"));
  if (!v5 && has_password && !has_username) return fail(protocol_error("password without user name"));

  if (v5) {
    if (auto e = wire::decode_properties(r, PropertyContext::connect, c.properties)) return fail(*e);
    if (auto e = check_auth_pair(c.properties)) return fail(*e);
  }
  if (auto e = read_utf8(r, c.client_id, "truncated client identifier")) return fail(*e);
  if (has_will) {
    Will w;
    w.qos = static_cast<QoS>(will_qos);
    w.retain = will_retain;
    if (v5) {
      if (auto e = wire::decode_properties(r, PropertyContext::will, w.properties)) return fail(*e);
    }
    if (!r.read_binary(w.topic)) return fail(malformed("truncated will topic"));
    if (auto e = check_topic_name(w.topic)) return fail(*e);
    if (!r.read_binary(w.payload)) return fail(malformed("truncated will payload"));
    c.will = w;
  }
  if (has_username) {
    std::string_view username;
    if (auto e = read_utf8(r, username, "truncated user name")) return fail(*e);
    c.username = username;
  }
  if (has_password) {
    std::string_view password;
    if (!r.read_binary(password)) return fail(malformed("truncated password"));
    c.password = password;
  }
  if (auto e = expect_end(r)) return fail(*e);
  return Result(std::move(c));
}

Result decode_connack(const Frame& f, Version version) {
  if (auto e = expect_flags(f, 0)) return fail(*e);
  Reader r(f.body);
  std::uint8_t ack_flags = 0;
  if (!r.read_u8(ack_flags)) return fail(malformed("truncated CONNACK"));
  if ((ack_flags & 0xFE) != 0) return fail(malformed("reserved CONNACK flags set"));
  Connack c;
  c.session_present = (ack_flags & 0x01) != 0;
  if (version == Version::v311) {
    std::uint8_t rc = 0;
    if (!r.read_u8(rc)) return fail(malformed("truncated CONNACK"));
    static constexpr ReasonCode from_311[] = {
        ReasonCode::success,
        ReasonCode::unsupported_protocol_version,
        ReasonCode::client_identifier_not_valid,
        ReasonCode::server_unavailable,
        ReasonCode::bad_user_name_or_password,
        ReasonCode::not_authorized,
    };
    if (rc >= std::size(from_311)) return fail(malformed("unknown CONNACK return code"));
    c.reason_code = from_311[rc];
  } else {
    if (auto e = read_reason(r, PacketType::connack, c.reason_code)) return fail(*e);
    if (auto e = wire::decode_properties(r, PropertyContext::connack, c.properties)) return fail(*e);
    if (auto e = check_auth_pair(c.properties)) return fail(*e);
  }
  if (auto e = expect_end(r)) return fail(*e);
  if (c.session_present && c.reason_code != ReasonCode::success) {
    return fail(protocol_error("session present on a refused connection"));
  }
  return Result(std::move(c));
}

Result decode_publish(const Frame& f, Version version) {
  Publish p;
  const std::uint8_t flags = f.flags();
  p.dup = (flags & 0x08) != 0;
  const auto qos = static_cast<std::uint8_t>((flags >> 1) & 0x03);
  p.retain = (flags & 0x01) != 0;
  if (qos == 3) return fail(malformed("PUBLISH with QoS 3"));
  // The DUP rule is a MUST in both versions ([MQTT-3.3.1-2]).
  if (qos == 0 && p.dup) return fail(malformed("DUP set on a QoS 0 PUBLISH"));
  p.qos = static_cast<QoS>(qos);

  Reader r(f.body);
  if (!r.read_binary(p.topic)) return fail(malformed("truncated topic name"));
  if (qos != 0) {
    if (auto e = read_packet_id(r, p.packet_id)) return fail(*e);
  }
  if (version == Version::v5) {
    if (auto e = wire::decode_properties(r, PropertyContext::publish, p.properties)) return fail(*e);
  }
  if (p.topic.empty()) {
    // 5.0 lets a topic alias stand for the name; the session resolves it.
    if (version != Version::v5 || !p.properties.topic_alias) return fail(protocol_error("empty topic name"));
  } else if (auto e = check_topic_name(p.topic)) {
    return fail(*e);
  }
  p.payload = r.read_rest();
  return Result(std::move(p));
}

Result decode_puback_family(const Frame& f, Version version) {
  const PacketType type = f.type();
  if (auto e = expect_flags(f, type == PacketType::pubrel ? 0x02 : 0x00)) return fail(*e);
  Reader r(f.body);
  PubAck a;
  a.type = type;
  if (auto e = read_packet_id(r, a.packet_id)) return fail(*e);
  // 5.0 short forms: remaining length 2 means success without properties, 3 means a
  // reason code without properties.
  if (version == Version::v5 && !r.empty()) {
    if (auto e = read_reason(r, type, a.reason_code)) return fail(*e);
    if (!r.empty()) {
      const auto context = static_cast<PropertyContext>(static_cast<unsigned>(PropertyContext::puback) +
                                                        (static_cast<unsigned>(type) - static_cast<unsigned>(PacketType::puback)));
      if (auto e = wire::decode_properties(r, context, a.properties)) return fail(*e);
    }
  }
  if (auto e = expect_end(r)) return fail(*e);
  return Result(std::move(a));
}

Result decode_subscribe(const Frame& f, Version version) {
  if (auto e = expect_flags(f, 0x02)) return fail(*e);
  Reader r(f.body);
  Subscribe s;
  if (auto e = read_packet_id(r, s.packet_id)) return fail(*e);
  const bool v5 = version == Version::v5;
  if (v5) {
    if (auto e = wire::decode_properties(r, PropertyContext::subscribe, s.properties)) return fail(*e);
  }
  if (r.empty()) return fail(protocol_error("SUBSCRIBE without topic filters"));
  while (!r.empty()) {
    TopicSubscription t;
    std::uint8_t options = 0;
    if (!r.read_binary(t.filter) || !r.read_u8(options)) return fail(malformed("truncated topic filter"));
    const auto qos = static_cast<std::uint8_t>(options & 0x03);
    if (v5) {
      if ((options & 0xC0) != 0) return fail(malformed("reserved subscription option bits set"));
      if (qos == 3) return fail(protocol_error("subscription QoS 3"));
      const auto retain_handling = static_cast<std::uint8_t>((options >> 4) & 0x03);
      if (retain_handling == 3) return fail(protocol_error("retain handling 3"));
      t.options.no_local = (options & 0x04) != 0;
      t.options.retain_as_published = (options & 0x08) != 0;
      t.options.retain_handling = static_cast<RetainHandling>(retain_handling);
    } else if ((options & 0xFC) != 0 || qos == 3) {
      return fail(malformed("reserved subscription option bits set or QoS 3"));
    }
    t.options.qos = static_cast<QoS>(qos);
    if (!is_valid_mqtt_utf8(t.filter)) return fail(malformed("topic filter is not valid UTF-8"));
    if (auto e = check_topic_filter(t.filter)) return fail(*e);
    if (v5 && t.options.no_local && t.filter.starts_with("$share/")) {
      return fail(protocol_error("no local on a shared subscription"));
    }
    s.topics.push_back(t);
  }
  return Result(std::move(s));
}

MaybeError read_reason_list(Reader& r, PacketType type, Version version, std::vector<ReasonCode>& out) {
  if (r.empty()) return protocol_error("acknowledgement without reason codes");
  out.reserve(r.remaining());
  while (!r.empty()) {
    std::uint8_t rc = 0;
    r.read_u8(rc);
    if (version == Version::v311) {
      if (!one_of(rc, {0x00, 0x01, 0x02, 0x80})) return malformed("invalid SUBACK return code");
    } else if (!valid_reason(type, rc)) {
      return protocol_error("reason code not defined for this packet");
    }
    out.push_back(static_cast<ReasonCode>(rc));
  }
  return std::nullopt;
}

Result decode_suback(const Frame& f, Version version) {
  if (auto e = expect_flags(f, 0)) return fail(*e);
  Reader r(f.body);
  Suback s;
  if (auto e = read_packet_id(r, s.packet_id)) return fail(*e);
  if (version == Version::v5) {
    if (auto e = wire::decode_properties(r, PropertyContext::suback, s.properties)) return fail(*e);
  }
  if (auto e = read_reason_list(r, PacketType::suback, version, s.reason_codes)) return fail(*e);
  return Result(std::move(s));
}

Result decode_unsubscribe(const Frame& f, Version version) {
  if (auto e = expect_flags(f, 0x02)) return fail(*e);
  Reader r(f.body);
  Unsubscribe u;
  if (auto e = read_packet_id(r, u.packet_id)) return fail(*e);
  if (version == Version::v5) {
    if (auto e = wire::decode_properties(r, PropertyContext::unsubscribe, u.properties)) return fail(*e);
  }
  if (r.empty()) return fail(protocol_error("UNSUBSCRIBE without topic filters"));
  while (!r.empty()) {
    std::string_view filter;
    if (auto e = read_utf8(r, filter, "truncated topic filter")) return fail(*e);
    if (auto e = check_topic_filter(filter)) return fail(*e);
    u.filters.push_back(filter);
  }
  return Result(std::move(u));
}

Result decode_unsuback(const Frame& f, Version version) {
  if (auto e = expect_flags(f, 0)) return fail(*e);
  Reader r(f.body);
  Unsuback u;
  if (auto e = read_packet_id(r, u.packet_id)) return fail(*e);
  if (version == Version::v5) {
    if (auto e = wire::decode_properties(r, PropertyContext::unsuback, u.properties)) return fail(*e);
    if (auto e = read_reason_list(r, PacketType::unsuback, version, u.reason_codes)) return fail(*e);
  }
  if (auto e = expect_end(r)) return fail(*e);
  return Result(std::move(u));
}

Result decode_ping(const Frame& f) {
  if (auto e = expect_flags(f, 0)) return fail(*e);
  if (!f.body.empty()) return fail(malformed("PINGREQ/PINGRESP with a body"));
  if (f.type() == PacketType::pingreq) return Result(Pingreq{});
  return Result(Pingresp{});
}

// DISCONNECT and AUTH: in 5.0 an empty body means success without properties, one byte
// a reason code without properties.
template <class P>
Result decode_reason_and_properties(const Frame& f, PropertyContext context) {
  if (auto e = expect_flags(f, 0)) return fail(*e);
  Reader r(f.body);
  P p;
  if (!r.empty()) {
    if (auto e = read_reason(r, f.type(), p.reason_code)) return fail(*e);
    if (!r.empty()) {
      if (auto e = wire::decode_properties(r, context, p.properties)) return fail(*e);
    }
  }
  if (auto e = expect_end(r)) return fail(*e);
  if (auto e = check_auth_pair(p.properties)) return fail(*e);
  return Result(std::move(p));
}

}  // namespace

Expected<Frame, CodecError> parse_frame(std::string_view buffer, std::uint32_t max_packet_size) noexcept {
  if (buffer.empty()) return Frame{};
  const auto first = static_cast<std::uint8_t>(buffer[0]);
  if ((first >> 4) == 0) return fail(malformed("packet type 0"));
  std::uint32_t remaining = 0;
  std::size_t used = 0;
  switch (wire::decode_varint(buffer.substr(1), remaining, used)) {
    case wire::VarintStatus::incomplete: return Frame{};
    case wire::VarintStatus::malformed: return fail(malformed("bad remaining length"));
    case wire::VarintStatus::ok: break;
  }
  const std::size_t total = 1 + used + std::size_t{remaining};
  if (total > max_packet_size) return fail({ReasonCode::packet_too_large, "packet exceeds the maximum size"});
  if (buffer.size() < total) return Frame{};
  Frame frame;
  frame.first_byte = first;
  frame.body = buffer.substr(1 + used, remaining);
  frame.size = total;
  return frame;
}

Expected<Packet, CodecError> decode(const Frame& frame, Version version) {
  const bool v5 = version == Version::v5;
  switch (frame.type()) {
    case PacketType::connect: return decode_connect(frame);
    case PacketType::connack: return decode_connack(frame, version);
    case PacketType::publish: return decode_publish(frame, version);
    case PacketType::puback:
    case PacketType::pubrec:
    case PacketType::pubrel:
    case PacketType::pubcomp: return decode_puback_family(frame, version);
    case PacketType::subscribe: return decode_subscribe(frame, version);
    case PacketType::suback: return decode_suback(frame, version);
    case PacketType::unsubscribe: return decode_unsubscribe(frame, version);
    case PacketType::unsuback: return decode_unsuback(frame, version);
    case PacketType::pingreq:
    case PacketType::pingresp: return decode_ping(frame);
    case PacketType::disconnect:
      if (!v5) {
        if (auto e = expect_flags(frame, 0)) return fail(*e);
        if (!frame.body.empty()) return fail(malformed("3.1.1 DISCONNECT with a body"));
        return Result(Disconnect{});
      }
      return decode_reason_and_properties<Disconnect>(frame, PropertyContext::disconnect);
    case PacketType::auth:
      if (!v5) return fail(malformed("AUTH in MQTT 3.1.1"));
      return decode_reason_and_properties<Auth>(frame, PropertyContext::auth);
  }
  return fail(malformed("packet type 0"));
}

Expected<Packet, CodecError> decode_one(std::string_view bytes, Version version, std::uint32_t max_packet_size) {
  auto frame = parse_frame(bytes, max_packet_size);
  if (!frame) return fail(frame.error());
  if (frame->size == 0) return fail(malformed("truncated packet"));
  if (frame->size != bytes.size()) return fail(malformed("bytes after the packet"));
  return decode(*frame, version);
}

}  // namespace tern::mqtt
