// SUBACK (3.1.1 §3.9, 5.0 §3.9).
#include <gtest/gtest.h>

#include "mqtt/codec.hpp"
#include "mqtt/codec_test_support.hpp"

namespace tern::mqtt {
namespace {

using test::bytes;
using test::decode_as;
using test::decode_error;
using test::encode_packet;

TEST(Suback311, DecodesAndEncodes) {
  const std::string wire = bytes({
      0x90,              // SUBACK, flags 0
      0x06,              // remaining length 6
      0x00, 0x0A,        // packet id 10
      0x00,              // granted QoS 0
      0x01,              // granted QoS 1
      0x02,              // granted QoS 2
      0x80,              // failure
  });
  auto s = decode_as<Suback>(wire, Version::v311);
  EXPECT_EQ(s.packet_id, 10);
  EXPECT_EQ(s.reason_codes, (std::vector<ReasonCode>{ReasonCode::success, ReasonCode::granted_qos1,
                                                     ReasonCode::granted_qos2, ReasonCode::unspecified_error}));
  EXPECT_EQ(encode_packet(s, Version::v311), wire);
}

TEST(Suback311, OnlyFourReturnCodesExist) {
  EXPECT_EQ(decode_error(bytes({0x90, 0x03, 0x00, 0x01, 0x03}), Version::v311), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(bytes({0x90, 0x03, 0x00, 0x01, 0x87}), Version::v311), ReasonCode::malformed_packet);
}

TEST(Suback, EmptyPayloadIsProtocolError) {
  EXPECT_EQ(decode_error(bytes({0x90, 0x02, 0x00, 0x01}), Version::v311), ReasonCode::protocol_error);
  EXPECT_EQ(decode_error(bytes({0x90, 0x03, 0x00, 0x01, 0x00}), Version::v5), ReasonCode::protocol_error);
}

TEST(Suback, ReservedFlagsAreMalformed) {
  EXPECT_EQ(decode_error(bytes({0x92, 0x03, 0x00, 0x01, 0x00}), Version::v311), ReasonCode::malformed_packet);
}

TEST(Suback, PacketIdZeroIsProtocolError) {
  EXPECT_EQ(decode_error(bytes({0x90, 0x03, 0x00, 0x00, 0x00}), Version::v311), ReasonCode::protocol_error);
}

const std::string kSuback5 = bytes({
    0x90,                         // SUBACK
    0x0C,                         // remaining length 12
    0x00, 0x0A,                   // packet id 10
    0x05,                         // property length 5
    0x1F, 0x00, 0x02, 'n', 'o',   //   reason string "no"
    0x00,                         // granted QoS 0
    0x02,                         // granted QoS 2
    0x87,                         // not authorized
    0xA2,                         // wildcard subscriptions not supported
});

TEST(Suback5, DecodesAndEncodes) {
  auto s = decode_as<Suback>(kSuback5, Version::v5);
  EXPECT_EQ(s.packet_id, 10);
  EXPECT_EQ(s.properties.reason_string, "no");
  EXPECT_EQ(s.reason_codes,
            (std::vector<ReasonCode>{ReasonCode::success, ReasonCode::granted_qos2, ReasonCode::not_authorized,
                                     ReasonCode::wildcard_subscriptions_not_supported}));
  EXPECT_EQ(encode_packet(s, Version::v5), kSuback5);
}

TEST(Suback5, ReasonCodeNotDefinedForSubackIsProtocolError) {
  EXPECT_EQ(decode_error(bytes({0x90, 0x04, 0x00, 0x01, 0x00, 0x04}), Version::v5), ReasonCode::protocol_error);
  EXPECT_EQ(decode_error(bytes({0x90, 0x04, 0x00, 0x01, 0x00, 0x11}), Version::v5), ReasonCode::protocol_error);
}

TEST(Suback5, PropertyOfAnotherPacketIsMalformed) {
  const std::string wire = bytes({
      0x90, 0x06,   // SUBACK, remaining length 6
      0x00, 0x01,   // packet id
      0x02,         // property length 2
      0x0B, 0x01,   //   subscription identifier: not a SUBACK property
      0x00,         // granted QoS 0
  });
  EXPECT_EQ(decode_error(wire, Version::v5), ReasonCode::malformed_packet);
}

TEST(Suback5, MissingPropertyLengthIsMalformed) {
  // 0x01 read as a property length leaves no room for it.
  EXPECT_EQ(decode_error(bytes({0x90, 0x03, 0x00, 0x01, 0x01}), Version::v5), ReasonCode::malformed_packet);
}

}  // namespace
}  // namespace tern::mqtt
