// DISCONNECT (3.1.1 §3.14, 5.0 §3.14).
#include <gtest/gtest.h>

#include "mqtt/codec.hpp"
#include "mqtt/codec_test_support.hpp"

namespace tern::mqtt {
namespace {

using test::bytes;
using test::decode_as;
using test::decode_error;
using test::encode_packet;

TEST(Disconnect311, EmptyBody) {
  const std::string wire = bytes({
      0xE0,  // DISCONNECT, flags 0
      0x00,  // remaining length 0
  });
  auto d = decode_as<Disconnect>(wire, Version::v311);
  EXPECT_EQ(d.reason_code, ReasonCode::success);
  EXPECT_EQ(encode_packet(d, Version::v311), wire);
  // A reason code has no place in 3.1.1.
  EXPECT_EQ(encode_packet(Disconnect{ReasonCode::server_shutting_down, {}}, Version::v311), wire);
}

TEST(Disconnect311, BodyIsMalformed) {
  EXPECT_EQ(decode_error(bytes({0xE0, 0x01, 0x00}), Version::v311), ReasonCode::malformed_packet);
}

TEST(Disconnect, ReservedFlagsAreMalformed) {
  EXPECT_EQ(decode_error(bytes({0xE1, 0x00}), Version::v311), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(bytes({0xE2, 0x00}), Version::v5), ReasonCode::malformed_packet);
}

TEST(Disconnect5, LengthZeroIsNormalDisconnection) {
  const std::string d_wire = bytes({0xE0, 0x00});
  auto d = decode_as<Disconnect>(d_wire, Version::v5);
  EXPECT_EQ(d.reason_code, ReasonCode::success);
  EXPECT_EQ(encode_packet(d, Version::v5), bytes({0xE0, 0x00}));
}

TEST(Disconnect5, LengthOneIsAReasonCodeWithoutProperties) {
  const std::string wire = bytes({
      0xE0,  // DISCONNECT
      0x01,  // remaining length 1
      0x04,  // disconnect with will message
  });
  auto d = decode_as<Disconnect>(wire, Version::v5);
  EXPECT_EQ(d.reason_code, ReasonCode::disconnect_with_will);
  EXPECT_EQ(encode_packet(d, Version::v5), wire);
}

const std::string kDisconnect5 = bytes({
    0xE0,                             // DISCONNECT
    0x11,                             // remaining length 17
    0x9C,                             // use another server
    0x0F,                             // property length 15
    0x11, 0x00, 0x00, 0x00, 0x00,     //   session expiry interval 0
    0x1C, 0x00, 0x01, 'h',            //   server reference "h"
    0x1F, 0x00, 0x03, 'b', 'y', 'e',  //   reason string "bye"
});

TEST(Disconnect5, Properties) {
  auto d = decode_as<Disconnect>(kDisconnect5, Version::v5);
  EXPECT_EQ(d.reason_code, ReasonCode::use_another_server);
  EXPECT_EQ(d.properties.session_expiry_interval, 0u);
  EXPECT_EQ(d.properties.server_reference, "h");
  EXPECT_EQ(d.properties.reason_string, "bye");
  EXPECT_EQ(encode_packet(d, Version::v5), kDisconnect5);
}

TEST(Disconnect5, ReasonCodeNotDefinedForDisconnectIsProtocolError) {
  EXPECT_EQ(decode_error(bytes({0xE0, 0x01, 0x02}), Version::v5), ReasonCode::protocol_error);  // granted QoS 2
  EXPECT_EQ(decode_error(bytes({0xE0, 0x01, 0x84}), Version::v5), ReasonCode::protocol_error);  // CONNACK only
}

TEST(Disconnect5, PropertyOfAnotherPacketIsMalformed) {
  EXPECT_EQ(decode_error(bytes({0xE0, 0x05, 0x00, 0x03, 0x21, 0x00, 0x01}), Version::v5),  // receive maximum
            ReasonCode::malformed_packet);
}

TEST(Disconnect5, TruncatedPropertiesAreMalformed) {
  EXPECT_EQ(decode_error(bytes({0xE0, 0x03, 0x00, 0x05, 0x11}), Version::v5), ReasonCode::malformed_packet);
}

}  // namespace
}  // namespace tern::mqtt
