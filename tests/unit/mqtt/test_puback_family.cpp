// PUBACK, PUBREC, PUBREL, PUBCOMP (3.1.1 §3.4-3.7, 5.0 §3.4-3.7).
#include <gtest/gtest.h>

#include "mqtt/codec.hpp"
#include "mqtt/codec_test_support.hpp"

namespace tern::mqtt {
namespace {

using test::bytes;
using test::decode_as;
using test::decode_error;
using test::encode_packet;

struct Kind {
  PacketType type;
  int first_byte;
};
constexpr Kind kKinds[] = {
    {PacketType::puback, 0x40},   // PUBACK, flags 0
    {PacketType::pubrec, 0x50},   // PUBREC, flags 0
    {PacketType::pubrel, 0x62},   // PUBREL, flags 0x2
    {PacketType::pubcomp, 0x70},  // PUBCOMP, flags 0
};

TEST(PubAckFamily311, DecodeAndEncode) {
  for (const Kind& k : kKinds) {
    const std::string wire = bytes({
        k.first_byte,  // packet type and flags
        0x02,          // remaining length 2
        0x00, 0x05,    // packet id 5
    });
    auto a = decode_as<PubAck>(wire, Version::v311);
    EXPECT_EQ(a.type, k.type);
    EXPECT_EQ(a.packet_id, 5);
    EXPECT_EQ(a.reason_code, ReasonCode::success);
    EXPECT_EQ(encode_packet(a, Version::v311), wire);
  }
}

TEST(PubAckFamily311, ExtraBytesAreMalformed) {
  EXPECT_EQ(decode_error(bytes({0x40, 0x03, 0x00, 0x05, 0x00}), Version::v311), ReasonCode::malformed_packet);
}

TEST(PubAckFamily311, ReasonCodeIsNotWritten) {
  EXPECT_EQ(encode_packet(PubAck{PacketType::puback, 5, ReasonCode::unspecified_error, {}}, Version::v311),
            bytes({0x40, 0x02, 0x00, 0x05}));
}

TEST(PubAckFamily, ReservedFlagsAreMalformed) {
  // PUBREL must carry flags 0x2, the others 0.
  EXPECT_EQ(decode_error(bytes({0x60, 0x02, 0x00, 0x01}), Version::v311), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(bytes({0x60, 0x02, 0x00, 0x01}), Version::v5), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(bytes({0x63, 0x02, 0x00, 0x01}), Version::v5), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(bytes({0x42, 0x02, 0x00, 0x01}), Version::v5), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(bytes({0x51, 0x02, 0x00, 0x01}), Version::v311), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(bytes({0x78, 0x02, 0x00, 0x01}), Version::v311), ReasonCode::malformed_packet);
}

TEST(PubAckFamily, PacketIdZeroIsProtocolError) {
  EXPECT_EQ(decode_error(bytes({0x40, 0x02, 0x00, 0x00}), Version::v311), ReasonCode::protocol_error);
  EXPECT_EQ(decode_error(bytes({0x62, 0x02, 0x00, 0x00}), Version::v5), ReasonCode::protocol_error);
}

TEST(PubAckFamily, TruncatedPacketIdIsMalformed) {
  EXPECT_EQ(decode_error(bytes({0x40, 0x01, 0x00}), Version::v5), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(bytes({0x40, 0x00}), Version::v311), ReasonCode::malformed_packet);
}

TEST(PubAckFamily5, LengthTwoMeansSuccess) {
  for (const Kind& k : kKinds) {
    const std::string wire = bytes({k.first_byte, 0x02, 0x00, 0x09});
    auto a = decode_as<PubAck>(wire, Version::v5);
    EXPECT_EQ(a.type, k.type);
    EXPECT_EQ(a.packet_id, 9);
    EXPECT_EQ(a.reason_code, ReasonCode::success);
    EXPECT_EQ(encode_packet(a, Version::v5), wire);  // the short form is what is written
  }
}

TEST(PubAckFamily5, LengthThreeIsAReasonCodeWithoutProperties) {
  const std::string wire = bytes({
      0x40,        // PUBACK
      0x03,        // remaining length 3
      0x00, 0x05,  // packet id 5
      0x10,        // reason code: no matching subscribers
  });
  auto a = decode_as<PubAck>(wire, Version::v5);
  EXPECT_EQ(a.reason_code, ReasonCode::no_matching_subscribers);
  EXPECT_EQ(encode_packet(a, Version::v5), wire);
  // Success spelled out still decodes, and is re-encoded in the shortest form.
  const std::string s_wire = bytes({0x50, 0x03, 0x00, 0x05, 0x00});
  auto s = decode_as<PubAck>(s_wire, Version::v5);
  EXPECT_EQ(s.reason_code, ReasonCode::success);
  EXPECT_EQ(encode_packet(s, Version::v5), bytes({0x50, 0x02, 0x00, 0x05}));
}

TEST(PubAckFamily5, EmptyPropertyBlock) {
  const std::string wire = bytes({
      0x70,        // PUBCOMP
      0x04,        // remaining length 4
      0x00, 0x05,  // packet id 5
      0x92,        // reason code: packet identifier not found
      0x00,        // property length 0
  });
  auto a = decode_as<PubAck>(wire, Version::v5);
  EXPECT_EQ(a.type, PacketType::pubcomp);
  EXPECT_EQ(a.reason_code, ReasonCode::packet_identifier_not_found);
}

TEST(PubAckFamily5, ReasonStringAndUserProperty) {
  const std::string wire = bytes({
      0x50,                                    // PUBREC
      0x11,                                    // remaining length 17
      0x00, 0x05,                              // packet id 5
      0x87,                                    // reason code: not authorized
      0x0D,                                    // property length 13
      0x1F, 0x00, 0x03, 'a', 'c', 'l',         //   reason string "acl"
      0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v',  //   user property k=v
  });
  auto a = decode_as<PubAck>(wire, Version::v5);
  EXPECT_EQ(a.type, PacketType::pubrec);
  EXPECT_EQ(a.reason_code, ReasonCode::not_authorized);
  EXPECT_EQ(a.properties.reason_string, "acl");
  EXPECT_EQ(test::user_properties_of(a.properties.user_properties), (test::StringPairs{{"k", "v"}}));
  EXPECT_EQ(encode_packet(a, Version::v5), wire);
}

TEST(PubAckFamily5, SuccessWithPropertiesKeepsTheReasonCode) {
  PubAck a{PacketType::pubrel, 3, ReasonCode::success, {}};
  a.properties.reason_string = "r";
  EXPECT_EQ(encode_packet(a, Version::v5), bytes({
                                               0x62,                   // PUBREL
                                               0x08,                   // remaining length 8
                                               0x00, 0x03,             // packet id 3
                                               0x00,                   // reason code: success
                                               0x04,                   // property length 4
                                               0x1F, 0x00, 0x01, 'r',  //   reason string "r"
                                           }));
}

TEST(PubAckFamily5, ReasonCodeOfAnotherPacketIsProtocolError) {
  // 0x10 (no matching subscribers) is for PUBACK/PUBREC only; 0x92 for PUBREL/PUBCOMP only.
  EXPECT_EQ(decode_error(bytes({0x62, 0x03, 0x00, 0x01, 0x10}), Version::v5), ReasonCode::protocol_error);
  EXPECT_EQ(decode_error(bytes({0x40, 0x03, 0x00, 0x01, 0x92}), Version::v5), ReasonCode::protocol_error);
  EXPECT_EQ(decode_error(bytes({0x40, 0x03, 0x00, 0x01, 0x02}), Version::v5), ReasonCode::protocol_error);
  const std::string ok_wire = bytes({0x62, 0x03, 0x00, 0x01, 0x92});
  auto ok = decode_as<PubAck>(ok_wire, Version::v5);
  EXPECT_EQ(ok.reason_code, ReasonCode::packet_identifier_not_found);
}

TEST(PubAckFamily5, PropertyOfAnotherPacketIsMalformed) {
  const std::string wire = bytes({
      0x40,              // PUBACK
      0x07,              // remaining length 7
      0x00, 0x01,        // packet id
      0x00,              // success
      0x03,              // property length 3
      0x23, 0x00, 0x01,  //   topic alias: PUBLISH only
  });
  EXPECT_EQ(decode_error(wire, Version::v5), ReasonCode::malformed_packet);
}

TEST(PubAckFamily5, RepeatedReasonStringIsProtocolError) {
  const std::string wire = bytes({
      0x40,                   // PUBACK
      0x0C,                   // remaining length 12
      0x00, 0x01,             // packet id
      0x80,                   // unspecified error
      0x08,                   // property length 8
      0x1F, 0x00, 0x01, 'a',  //   reason string "a"
      0x1F, 0x00, 0x01, 'b',  //   reason string "b"
  });
  EXPECT_EQ(decode_error(wire, Version::v5), ReasonCode::protocol_error);
}

TEST(PubAckFamily5, BytesAfterThePropertiesAreMalformed) {
  EXPECT_EQ(decode_error(bytes({0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00}), Version::v5),
            ReasonCode::malformed_packet);
}

}  // namespace
}  // namespace tern::mqtt
