// UNSUBACK (3.1.1 §3.11, 5.0 §3.11).
#include <gtest/gtest.h>

#include "mqtt/codec.hpp"
#include "mqtt/codec_test_support.hpp"

namespace tern::mqtt {
namespace {

using test::bytes;
using test::decode_as;
using test::decode_error;
using test::encode_packet;

TEST(Unsuback311, HasOnlyAPacketId) {
  const std::string wire = bytes({
      0xB0,        // UNSUBACK, flags 0
      0x02,        // remaining length 2
      0x00, 0x0C,  // packet id 12
  });
  auto u = decode_as<Unsuback>(wire, Version::v311);
  EXPECT_EQ(u.packet_id, 12);
  EXPECT_TRUE(u.reason_codes.empty());
  EXPECT_EQ(encode_packet(u, Version::v311), wire);
  // Reason codes given by the caller are not part of a 3.1.1 UNSUBACK.
  EXPECT_EQ(encode_packet(Unsuback{12, {ReasonCode::success}, {}}, Version::v311), wire);
}

TEST(Unsuback311, PayloadIsMalformed) {
  EXPECT_EQ(decode_error(bytes({0xB0, 0x03, 0x00, 0x0C, 0x00}), Version::v311), ReasonCode::malformed_packet);
}

TEST(Unsuback, ReservedFlagsAreMalformed) {
  EXPECT_EQ(decode_error(bytes({0xB2, 0x02, 0x00, 0x0C}), Version::v311), ReasonCode::malformed_packet);
}

TEST(Unsuback, PacketIdZeroIsProtocolError) {
  EXPECT_EQ(decode_error(bytes({0xB0, 0x02, 0x00, 0x00}), Version::v311), ReasonCode::protocol_error);
}

const std::string kUnsuback5 = bytes({
    0xB0,                             // UNSUBACK
    0x0C,                             // remaining length 12
    0x00, 0x0C,                       // packet id 12
    0x06,                             // property length 6
    0x1F, 0x00, 0x03, 'w', 'h', 'y',  //   reason string "why"
    0x00,                             // success
    0x11,                             // no subscription existed
    0x8F,                             // topic filter invalid
});

TEST(Unsuback5, DecodesAndEncodes) {
  auto u = decode_as<Unsuback>(kUnsuback5, Version::v5);
  EXPECT_EQ(u.packet_id, 12);
  EXPECT_EQ(u.properties.reason_string, "why");
  EXPECT_EQ(u.reason_codes, (std::vector<ReasonCode>{ReasonCode::success, ReasonCode::no_subscription_existed,
                                                     ReasonCode::topic_filter_invalid}));
  EXPECT_EQ(encode_packet(u, Version::v5), kUnsuback5);
}

TEST(Unsuback5, NoReasonCodesIsProtocolError) {
  EXPECT_EQ(decode_error(bytes({0xB0, 0x03, 0x00, 0x0C, 0x00}), Version::v5), ReasonCode::protocol_error);
}

TEST(Unsuback5, MissingPropertyLengthIsMalformed) {
  EXPECT_EQ(decode_error(bytes({0xB0, 0x02, 0x00, 0x0C}), Version::v5), ReasonCode::malformed_packet);
}

TEST(Unsuback5, ReasonCodeNotDefinedForUnsubackIsProtocolError) {
  // Granted QoS 1 belongs to SUBACK.
  EXPECT_EQ(decode_error(bytes({0xB0, 0x04, 0x00, 0x0C, 0x00, 0x01}), Version::v5), ReasonCode::protocol_error);
}

}  // namespace
}  // namespace tern::mqtt
