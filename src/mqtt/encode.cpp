// Encoding, 3.1.1 and 5.0. Each packet's body is written by one template run twice: once
// over a SizeCounter for the remaining length (and encoded_size), once over the output.
//
// A CONNECT is encoded in its own `version` (the protocol level is part of the packet),
// whatever version the caller passes; every other packet follows the caller's version.
// In 5.0 the short forms are used whenever they say the same thing: PUBACK, PUBREC,
// PUBREL and PUBCOMP drop the reason code when it is success without properties and the
// property length when there are no properties; DISCONNECT likewise; AUTH drops both
// only for success without properties.
#include <string>
#include <type_traits>
#include <variant>

#include "mqtt/codec.hpp"
#include "mqtt/wire.hpp"

namespace tern::mqtt {
namespace {

using wire::SizeCounter;
using wire::StringAppender;
using wire::write_properties;

std::uint8_t u8(ReasonCode rc) noexcept { return static_cast<std::uint8_t>(rc); }
std::uint8_t u8(QoS q) noexcept { return static_cast<std::uint8_t>(q); }
std::uint8_t type_bits(PacketType t) noexcept { return static_cast<std::uint8_t>(static_cast<unsigned>(t) << 4); }

std::uint8_t first_byte(const Connect&) noexcept { return type_bits(PacketType::connect); }
std::uint8_t first_byte(const Connack&) noexcept { return type_bits(PacketType::connack); }
std::uint8_t first_byte(const Publish& p) noexcept {
  return static_cast<std::uint8_t>(type_bits(PacketType::publish) | (p.dup ? 0x08 : 0) | (u8(p.qos) << 1) |
                                   (p.retain ? 0x01 : 0));
}
std::uint8_t first_byte(const PubAck& p) noexcept {
  return static_cast<std::uint8_t>(type_bits(p.type) | (p.type == PacketType::pubrel ? 0x02 : 0));
}
std::uint8_t first_byte(const Subscribe&) noexcept { return type_bits(PacketType::subscribe) | 0x02; }
std::uint8_t first_byte(const Suback&) noexcept { return type_bits(PacketType::suback); }
std::uint8_t first_byte(const Unsubscribe&) noexcept { return type_bits(PacketType::unsubscribe) | 0x02; }
std::uint8_t first_byte(const Unsuback&) noexcept { return type_bits(PacketType::unsuback); }
std::uint8_t first_byte(const Pingreq&) noexcept { return type_bits(PacketType::pingreq); }
std::uint8_t first_byte(const Pingresp&) noexcept { return type_bits(PacketType::pingresp); }
std::uint8_t first_byte(const Disconnect&) noexcept { return type_bits(PacketType::disconnect); }
std::uint8_t first_byte(const Auth&) noexcept { return type_bits(PacketType::auth); }

template <class Sink>
void write_body(Sink& s, const Connect& c, Version) {
  const bool v5 = c.version == Version::v5;
  s.string("MQTT");
  s.u8(static_cast<std::uint8_t>(c.version));
  std::uint8_t flags = c.clean_start ? 0x02 : 0x00;
  if (c.will) {
    flags = static_cast<std::uint8_t>(flags | 0x04 | (u8(c.will->qos) << 3) | (c.will->retain ? 0x20 : 0));
  }
  if (c.password) flags |= 0x40;
  if (c.username) flags |= 0x80;
  s.u8(flags);
  s.u16(c.keep_alive);
  if (v5) write_properties(s, c.properties);
  s.string(c.client_id);
  if (c.will) {
    if (v5) write_properties(s, c.will->properties);
    s.string(c.will->topic);
    s.string(c.will->payload);
  }
  if (c.username) s.string(*c.username);
  if (c.password) s.string(*c.password);
}

template <class Sink>
void write_body(Sink& s, const Connack& c, Version v) {
  s.u8(c.session_present ? 0x01 : 0x00);
  if (v == Version::v311) {
    s.u8(static_cast<std::uint8_t>(to_connect_return_code_311(c.reason_code)));
    return;
  }
  s.u8(u8(c.reason_code));
  write_properties(s, c.properties);
}

template <class Sink>
void write_body(Sink& s, const Publish& p, Version v) {
  s.string(p.topic);
  if (p.qos != QoS::at_most_once) s.u16(p.packet_id);
  if (v == Version::v5) write_properties(s, p.properties);
  s.raw(p.payload);
}

template <class Sink>
void write_body(Sink& s, const PubAck& p, Version v) {
  s.u16(p.packet_id);
  if (v == Version::v311) return;
  const bool props = wire::has_properties(p.properties);
  if (p.reason_code == ReasonCode::success && !props) return;
  s.u8(u8(p.reason_code));
  if (props) write_properties(s, p.properties);
}

template <class Sink>
void write_body(Sink& s, const Subscribe& p, Version v) {
  s.u16(p.packet_id);
  if (v == Version::v5) write_properties(s, p.properties);
  for (const TopicSubscription& t : p.topics) {
    s.string(t.filter);
    std::uint8_t options = u8(t.options.qos);
    if (v == Version::v5) {
      options = static_cast<std::uint8_t>(options | (t.options.no_local ? 0x04 : 0) |
                                          (t.options.retain_as_published ? 0x08 : 0) |
                                          (static_cast<std::uint8_t>(t.options.retain_handling) << 4));
    }
    s.u8(options);
  }
}

template <class Sink>
void write_body(Sink& s, const Suback& p, Version v) {
  s.u16(p.packet_id);
  if (v == Version::v5) write_properties(s, p.properties);
  for (ReasonCode rc : p.reason_codes) s.u8(u8(rc));
}

template <class Sink>
void write_body(Sink& s, const Unsubscribe& p, Version v) {
  s.u16(p.packet_id);
  if (v == Version::v5) write_properties(s, p.properties);
  for (std::string_view f : p.filters) s.string(f);
}

template <class Sink>
void write_body(Sink& s, const Unsuback& p, Version v) {
  s.u16(p.packet_id);
  if (v == Version::v311) return;
  write_properties(s, p.properties);
  for (ReasonCode rc : p.reason_codes) s.u8(u8(rc));
}

template <class Sink>
void write_body(Sink&, const Pingreq&, Version) {}
template <class Sink>
void write_body(Sink&, const Pingresp&, Version) {}

template <class Sink>
void write_body(Sink& s, const Disconnect& p, Version v) {
  if (v == Version::v311) return;
  const bool props = wire::has_properties(p.properties);
  if (p.reason_code == ReasonCode::success && !props) return;
  s.u8(u8(p.reason_code));
  if (props) write_properties(s, p.properties);
}

// AUTH exists only in 5.0; it is written in the 5.0 form whatever the version.
template <class Sink>
void write_body(Sink& s, const Auth& p, Version) {
  if (p.reason_code == ReasonCode::success && !wire::has_properties(p.properties)) return;
  s.u8(u8(p.reason_code));
  write_properties(s, p.properties);
}

template <class P>
std::size_t body_size(const P& p, Version v) {
  SizeCounter counter;
  write_body(counter, p, v);
  return counter.size;
}

}  // namespace

void append_varint(std::string& out, std::uint32_t value) {
  do {
    auto b = static_cast<std::uint8_t>(value & 0x7F);
    value >>= 7;
    if (value != 0) b |= 0x80;
    out.push_back(static_cast<char>(b));
  } while (value != 0);
}

std::size_t varint_size(std::uint32_t value) noexcept {
  std::size_t n = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++n;
  }
  return n;
}

void encode(const Packet& packet, Version version, std::string& out) {
  std::visit(
      [&](const auto& p) {
        const auto body = static_cast<std::uint32_t>(body_size(p, version));
        out.reserve(out.size() + 1 + varint_size(body) + body);
        out.push_back(static_cast<char>(first_byte(p)));
        append_varint(out, body);
        StringAppender appender(out);
        write_body(appender, p, version);
      },
      packet);
}

std::size_t encoded_size(const Packet& packet, Version version) {
  return std::visit(
      [&](const auto& p) {
        const std::size_t body = body_size(p, version);
        return 1 + varint_size(static_cast<std::uint32_t>(body)) + body;
      },
      packet);
}

}  // namespace tern::mqtt
