// AUTH (5.0 §3.15; no such packet in 3.1.1).
#include <gtest/gtest.h>

#include "mqtt/codec.hpp"
#include "mqtt/codec_test_support.hpp"

namespace tern::mqtt {
namespace {

using test::bytes;
using test::decode_as;
using test::decode_error;
using test::encode_packet;

const std::string kAuth5 = bytes({
    0xF0,                                    // AUTH, flags 0
    0x0F,                                    // remaining length 15
    0x18,                                    // continue authentication
    0x0D,                                    // property length 13
    0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M',  //   authentication method "SCRAM"
    0x16, 0x00, 0x02, 0x01, 0x02,            //   authentication data
});

TEST(Auth5, DecodesAndEncodes) {
  auto a = decode_as<Auth>(kAuth5, Version::v5);
  EXPECT_EQ(a.reason_code, ReasonCode::continue_authentication);
  EXPECT_EQ(a.properties.authentication_method, "SCRAM");
  EXPECT_EQ(a.properties.authentication_data, bytes({0x01, 0x02}));
  EXPECT_EQ(encode_packet(a, Version::v5), kAuth5);
}

TEST(Auth5, LengthZeroIsSuccess) {
  const std::string a_wire = bytes({0xF0, 0x00});
  auto a = decode_as<Auth>(a_wire, Version::v5);
  EXPECT_EQ(a.reason_code, ReasonCode::success);
  EXPECT_EQ(encode_packet(a, Version::v5), bytes({0xF0, 0x00}));
}

TEST(Auth5, ReasonCodeWithoutPropertiesKeepsThePropertyLength) {
  EXPECT_EQ(encode_packet(Auth{ReasonCode::reauthenticate, {}}, Version::v5),
            bytes({
                0xF0,  // AUTH
                0x02,  // remaining length 2
                0x19,  // re-authenticate
                0x00,  // property length 0
            }));
}

TEST(Auth311, DoesNotExist) {
  EXPECT_EQ(decode_error(bytes({0xF0, 0x00}), Version::v311), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(kAuth5, Version::v311), ReasonCode::malformed_packet);
}

TEST(Auth5, ReservedFlagsAreMalformed) {
  EXPECT_EQ(decode_error(bytes({0xF1, 0x00}), Version::v5), ReasonCode::malformed_packet);
}

TEST(Auth5, OnlyThreeReasonCodes) {
  EXPECT_EQ(decode_error(bytes({0xF0, 0x02, 0x87, 0x00}), Version::v5), ReasonCode::protocol_error);
  EXPECT_EQ(decode_error(bytes({0xF0, 0x02, 0x04, 0x00}), Version::v5), ReasonCode::protocol_error);
}

TEST(Auth5, DataWithoutMethodIsProtocolError) {
  const std::string wire = bytes({
      0xF0, 0x07,                    // AUTH, remaining length 7
      0x18,                          // continue authentication
      0x05,                          // property length 5
      0x16, 0x00, 0x02, 0x01, 0x02,  //   authentication data, no method
  });
  EXPECT_EQ(decode_error(wire, Version::v5), ReasonCode::protocol_error);
}

TEST(Auth5, RepeatedMethodIsProtocolError) {
  const std::string wire = bytes({
      0xF0, 0x0A,             // AUTH, remaining length 10
      0x18,                   // continue authentication
      0x08,                   // property length 8
      0x15, 0x00, 0x01, 'a',  //   authentication method "a"
      0x15, 0x00, 0x01, 'b',  //   authentication method "b"
  });
  EXPECT_EQ(decode_error(wire, Version::v5), ReasonCode::protocol_error);
}

TEST(Auth5, PropertyOfAnotherPacketIsMalformed) {
  EXPECT_EQ(decode_error(bytes({0xF0, 0x07, 0x18, 0x05, 0x11, 0x00, 0x00, 0x00, 0x01}), Version::v5),
            ReasonCode::malformed_packet);  // session expiry interval
}

}  // namespace
}  // namespace tern::mqtt
