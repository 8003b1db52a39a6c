// Packet-model helpers that belong to no single direction of the codec.
#include <algorithm>
#include <string>
#include <variant>

#include "mqtt/codec.hpp"

namespace tern::mqtt {

PacketType packet_type(const Packet& packet) noexcept {
  struct Visitor {
    PacketType operator()(const Connect&) const noexcept { return PacketType::connect; }
    PacketType operator()(const Connack&) const noexcept { return PacketType::connack; }
    PacketType operator()(const Publish&) const noexcept { return PacketType::publish; }
    PacketType operator()(const PubAck& p) const noexcept { return p.type; }
    PacketType operator()(const Subscribe&) const noexcept { return PacketType::subscribe; }
    PacketType operator()(const Suback&) const noexcept { return PacketType::suback; }
    PacketType operator()(const Unsubscribe&) const noexcept { return PacketType::unsubscribe; }
    PacketType operator()(const Unsuback&) const noexcept { return PacketType::unsuback; }
    PacketType operator()(const Pingreq&) const noexcept { return PacketType::pingreq; }
    PacketType operator()(const Pingresp&) const noexcept { return PacketType::pingresp; }
    PacketType operator()(const Disconnect&) const noexcept { return PacketType::disconnect; }
    PacketType operator()(const Auth&) const noexcept { return PacketType::auth; }
  };
  return std::visit(Visitor{}, packet);
}

namespace {
void append_string(std::string& out, std::string_view s) {
  // Longer strings cannot be framed; cut them, as the encoder does.
  const std::size_t n = std::min<std::size_t>(s.size(), 65535);
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n & 0xFF));
  out.append(s.substr(0, n));
}
}  // namespace

void append_user_property(std::string& encoded, std::string_view key, std::string_view value) {
  encoded.push_back(static_cast<char>(PropertyId::user_property));
  append_string(encoded, key);
  append_string(encoded, value);
}

void append_subscription_identifier(std::string& encoded, std::uint32_t id) {
  encoded.push_back(static_cast<char>(PropertyId::subscription_identifier));
  append_varint(encoded, id);
}

}  // namespace tern::mqtt
