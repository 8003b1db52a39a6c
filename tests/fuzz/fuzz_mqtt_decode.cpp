// Fuzz target for the MQTT codec: framing and decoding of arbitrary bytes in both
// protocol versions. Every packet that decodes must encode to exactly encoded_size
// bytes, decode again, and encode again to the same bytes: the encoder's output is
// canonical, so a second trip must not change it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "mqtt/codec.hpp"

namespace {

using namespace tern::mqtt;

void require(bool condition) {
  if (!condition) std::abort();
}

void walk_properties(const Properties& p) {
  std::size_t total = 0;
  for_each_user_property(p.user_properties, [&](std::string_view k, std::string_view v) {
    total += k.size() + v.size();
  });
  for_each_subscription_identifier(p.subscription_identifiers, [&](std::uint32_t id) {
    require(id >= 1 && id <= 268435455);
    ++total;
  });
  require(total <= p.user_properties.size() + p.subscription_identifiers.size());
}

void walk(const Packet& packet) {
  std::visit(
      [](const auto& p) {
        if constexpr (requires { p.properties; }) walk_properties(p.properties);
        if constexpr (requires { p.will; }) {
          if (p.will) walk_properties(p.will->properties);
        }
      },
      packet);
}

void round_trip(const Packet& packet, Version version) {
  std::string first;
  encode(packet, version, first);
  require(first.size() == encoded_size(packet, version));
  auto again = decode_one(first, version);
  require(again.has_value());
  require(packet_type(*again) == packet_type(packet));
  std::string second;
  encode(*again, version, second);
  require(second == first);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  for (Version version : {Version::v311, Version::v5}) {
    std::string_view rest = input;
    while (!rest.empty()) {
      auto frame = parse_frame(rest, 1u << 20);
      if (!frame.has_value()) {
        require(!to_string(frame.error().code).empty());
        break;
      }
      if (frame->size == 0) break;
      require(frame->size <= rest.size());
      auto packet = decode(*frame, version);
      if (packet.has_value()) {
        walk(*packet);
        round_trip(*packet, version);
      } else {
        require(is_error(packet.error().code));
      }
      rest.remove_prefix(frame->size);
    }
  }
  return 0;
}
