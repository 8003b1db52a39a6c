// The MQTT wire codec: pure functions, no I/O, no exceptions.
//
// Framing and decoding are separate steps so that a reader can find packet boundaries
// in a buffer holding many packets, check the size limit before the body has arrived,
// and decode each packet in place.
//
// Thread-safety: pure functions, callable from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/expected.hpp"
#include "mqtt/packets.hpp"

namespace tern::mqtt {

// Why a packet could not be decoded. `code` is what a 5.0 server sends in its
// DISCONNECT (or CONNACK): malformed_packet, protocol_error, packet_too_large,
// unsupported_protocol_version, topic_name_invalid, ... `what` is a static string for logs.
struct CodecError {
  ReasonCode code = ReasonCode::malformed_packet;
  const char* what = "";
};

// One framed packet inside a buffer.
struct Frame {
  std::uint8_t first_byte = 0;  // packet type (high nibble) and flags (low nibble)
  std::string_view body;        // the variable header and payload (remaining length bytes)
  std::size_t size = 0;         // fixed header + body: how many bytes the frame takes
  PacketType type() const noexcept { return static_cast<PacketType>(first_byte >> 4); }
  std::uint8_t flags() const noexcept { return first_byte & 0x0F; }
};

// Looks for one complete packet at the start of `buffer`.
// - a value with a Frame: a complete packet is there;
// - a value with size 0: more bytes are needed (`buffer` holds a prefix of a packet);
// - an error: malformed (remaining length over 4 bytes, packet type 0) or, when the
//   whole packet (fixed header included) would exceed `max_packet_size`, packet_too_large.
//   Oversize is reported as soon as the fixed header is complete.
Expected<Frame, CodecError> parse_frame(std::string_view buffer, std::uint32_t max_packet_size) noexcept;

// Decodes a framed packet. `version` is the connection's protocol version; for CONNECT
// it is ignored (the version comes from the packet). Checks everything the
// specification calls malformed or a protocol error that can be seen in the packet
// alone: reserved flags, QoS 3, invalid UTF-8 or U+0000, wildcards in a PUBLISH topic,
// invalid topic filters, packet id 0, properties not allowed in that packet or repeated,
// an empty SUBSCRIBE, ... Decoding PUBLISH allocates nothing.
// Protocol name/level problems in CONNECT give unsupported_protocol_version (level 3 or
// unknown) or malformed_packet (wrong protocol name).
Expected<Packet, CodecError> decode(const Frame& frame, Version version);

// Convenience for tests: parse_frame + decode on a buffer holding exactly one packet.
Expected<Packet, CodecError> decode_one(std::string_view bytes, Version version,
                                        std::uint32_t max_packet_size = 268435455);

// Appends the encoded packet to `out`. Properties are written only for 5.0. The caller
// passes valid packets; encode does not validate beyond what it needs to stay in bounds.
void encode(const Packet& packet, Version version, std::string& out);

// The number of bytes encode would append.
std::size_t encoded_size(const Packet& packet, Version version);

// Variable byte integer helpers (§1.5.5).
void append_varint(std::string& out, std::uint32_t value);
std::size_t varint_size(std::uint32_t value) noexcept;

}  // namespace tern::mqtt
