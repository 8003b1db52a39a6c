// Helpers shared by the codec tests: byte vectors from literals, typed decoding and
// encoding that also checks encoded_size.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "mqtt/codec.hpp"

namespace tern::mqtt {

// Readable names in assertion messages.
inline void PrintTo(ReasonCode rc, std::ostream* os) {
  *os << to_string(rc) << " (0x" << std::hex << static_cast<int>(rc) << std::dec << ")";
}

namespace test {

// Bytes from a list of byte values and character literals.
inline std::string bytes(std::initializer_list<int> values) {
  std::string out;
  out.reserve(values.size());
  for (int v : values) out.push_back(static_cast<char>(static_cast<std::uint8_t>(v)));
  return out;
}

inline std::string cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) out.append(p);
  return out;
}

// Decodes `wire` (exactly one packet) and returns it as a T; a failure or another
// packet type fails the test. Views in the result point into `wire`.
template <class T>
T decode_as(const std::string& wire, Version version) {
  auto result = decode_one(wire, version);
  if (!result.has_value()) {
    ADD_FAILURE() << "decode failed: " << to_string(result.error().code) << ": " << result.error().what;
    return T{};
  }
  const T* p = std::get_if<T>(&*result);
  if (p == nullptr) {
    ADD_FAILURE() << "decoded another packet type: " << static_cast<int>(packet_type(*result));
    return T{};
  }
  return *p;
}

// The views would dangle: keep the bytes in a named variable.
template <class T>
T decode_as(std::string&& wire, Version version) = delete;

// The error decoding `wire` gives, or success when it decodes (which the caller's
// expectation of an error code then reports). The vector's remaining length must frame
// it exactly, so that a miscounted vector cannot pass as "malformed" by accident.
inline ReasonCode decode_error(std::string_view wire, Version version) {
  auto frame = parse_frame(wire, 268435455);
  if (frame.has_value() && frame->size != wire.size()) {
    ADD_FAILURE() << "test vector: remaining length frames " << frame->size << " bytes of " << wire.size();
  }
  auto result = decode_one(wire, version);
  if (result.has_value()) return ReasonCode::success;
  return result.error().code;
}

// Encodes and checks that encoded_size predicted the byte count.
inline std::string encode_packet(const Packet& packet, Version version) {
  std::string out = "prefix";  // encode appends: what is already there must stay
  encode(packet, version, out);
  EXPECT_EQ(out.substr(0, 6), "prefix");
  EXPECT_EQ(out.size() - 6, encoded_size(packet, version));
  return out.substr(6);
}

using StringPairs = std::vector<std::pair<std::string, std::string>>;

inline StringPairs user_properties_of(std::string_view encoded) {
  StringPairs out;
  for_each_user_property(encoded, [&](std::string_view k, std::string_view v) { out.emplace_back(k, v); });
  return out;
}

inline std::vector<std::uint32_t> subscription_identifiers_of(std::string_view encoded) {
  std::vector<std::uint32_t> out;
  for_each_subscription_identifier(encoded, [&](std::uint32_t id) { out.push_back(id); });
  return out;
}

// A 5.0 packet around a property block, for table-driven property tests: the fixed
// header, the fields before the properties and the fields after them.
inline std::string with_properties(std::uint8_t first_byte, std::string_view before, std::string_view props,
                                   std::string_view after) {
  std::string body(before);
  append_varint(body, static_cast<std::uint32_t>(props.size()));
  body.append(props);
  body.append(after);
  std::string out(1, static_cast<char>(first_byte));
  append_varint(out, static_cast<std::uint32_t>(body.size()));
  out.append(body);
  return out;
}

}  // namespace test
}  // namespace tern::mqtt
