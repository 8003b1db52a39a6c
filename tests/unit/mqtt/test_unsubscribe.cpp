// UNSUBSCRIBE (3.1.1 §3.10, 5.0 §3.10).
#include <gtest/gtest.h>

#include "mqtt/codec.hpp"
#include "mqtt/codec_test_support.hpp"

namespace tern::mqtt {
namespace {

using test::bytes;
using test::decode_as;
using test::decode_error;
using test::encode_packet;

const std::string kUnsubscribe311 = bytes({
    0xA2,                       // UNSUBSCRIBE, flags 0x2
    0x0A,                       // remaining length 10
    0x00, 0x0C,                 // packet id 12
    0x00, 0x03, 'a', '/', 'b',  // topic filter "a/b"
    0x00, 0x01, '#',            // topic filter "#"
});

TEST(Unsubscribe311, DecodesAndEncodes) {
  auto u = decode_as<Unsubscribe>(kUnsubscribe311, Version::v311);
  EXPECT_EQ(u.packet_id, 12);
  EXPECT_EQ(u.filters, (std::vector<std::string_view>{"a/b", "#"}));
  EXPECT_EQ(encode_packet(u, Version::v311), kUnsubscribe311);
}

const std::string kUnsubscribe5 = bytes({
    0xA2,                                    // UNSUBSCRIBE, flags 0x2
    0x0D,                                    // remaining length 13
    0x00, 0x0C,                              // packet id 12
    0x07,                                    // property length 7
    0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v',  //   user property k=v
    0x00, 0x01, 'x',                         // topic filter "x"
});

TEST(Unsubscribe5, DecodesAndEncodes) {
  auto u = decode_as<Unsubscribe>(kUnsubscribe5, Version::v5);
  EXPECT_EQ(u.packet_id, 12);
  EXPECT_EQ(u.filters, (std::vector<std::string_view>{"x"}));
  EXPECT_EQ(test::user_properties_of(u.properties.user_properties), (test::StringPairs{{"k", "v"}}));
  EXPECT_EQ(encode_packet(u, Version::v5), kUnsubscribe5);
}

TEST(Unsubscribe, ReservedFlagsAreMalformed) {
  std::string wire = kUnsubscribe311;
  wire[0] = '\xA0';
  EXPECT_EQ(decode_error(wire, Version::v311), ReasonCode::malformed_packet);
  wire[0] = '\xA3';
  EXPECT_EQ(decode_error(wire, Version::v311), ReasonCode::malformed_packet);
}

TEST(Unsubscribe, EmptyPayloadIsProtocolError) {
  EXPECT_EQ(decode_error(bytes({0xA2, 0x02, 0x00, 0x01}), Version::v311), ReasonCode::protocol_error);
  EXPECT_EQ(decode_error(bytes({0xA2, 0x03, 0x00, 0x01, 0x00}), Version::v5), ReasonCode::protocol_error);
}

TEST(Unsubscribe, PacketIdZeroIsProtocolError) {
  EXPECT_EQ(decode_error(bytes({0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, 't'}), Version::v311),
            ReasonCode::protocol_error);
}

TEST(Unsubscribe, InvalidFiltersAreMalformed) {
  for (std::string_view filter : {std::string_view("a+"), std::string_view("a/#/b"), std::string_view(""),
                                  std::string_view("$share/+/x"), std::string_view("\xFF")}) {
    std::string wire = bytes({0xA2, static_cast<int>(4 + filter.size()), 0x00, 0x01, 0x00,
                              static_cast<int>(filter.size())});
    wire += filter;
    EXPECT_EQ(decode_error(wire, Version::v311), ReasonCode::malformed_packet) << filter;
  }
}

TEST(Unsubscribe, TruncatedFilterIsMalformed) {
  EXPECT_EQ(decode_error(bytes({0xA2, 0x05, 0x00, 0x01, 0x00, 0x02, 'a'}), Version::v311),
            ReasonCode::malformed_packet);
}

TEST(Unsubscribe5, SubscriptionIdentifierIsNotAllowed) {
  const std::string wire = bytes({
      0xA2, 0x08,       // UNSUBSCRIBE, remaining length 8
      0x00, 0x01,       // packet id
      0x02,             // property length 2
      0x0B, 0x01,       //   subscription identifier: SUBSCRIBE and PUBLISH only
      0x00, 0x01, 'x',  // topic filter
  });
  EXPECT_EQ(decode_error(wire, Version::v5), ReasonCode::malformed_packet);
}

}  // namespace
}  // namespace tern::mqtt
