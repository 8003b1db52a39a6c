// PINGREQ and PINGRESP (3.1.1 §3.12-3.13, 5.0 §3.12-3.13).
#include <gtest/gtest.h>

#include "mqtt/codec.hpp"
#include "mqtt/codec_test_support.hpp"

namespace tern::mqtt {
namespace {

using test::bytes;
using test::decode_as;
using test::decode_error;
using test::encode_packet;

TEST(Ping, RequestAndResponseInBothVersions) {
  const std::string req = bytes({
      0xC0,  // PINGREQ, flags 0
      0x00,  // remaining length 0
  });
  const std::string resp = bytes({
      0xD0,  // PINGRESP, flags 0
      0x00,  // remaining length 0
  });
  for (Version v : {Version::v311, Version::v5}) {
    decode_as<Pingreq>(req, v);
    decode_as<Pingresp>(resp, v);
    EXPECT_EQ(encode_packet(Pingreq{}, v), req);
    EXPECT_EQ(encode_packet(Pingresp{}, v), resp);
  }
}

TEST(Ping, BodyIsMalformed) {
  EXPECT_EQ(decode_error(bytes({0xC0, 0x01, 0x00}), Version::v5), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(bytes({0xD0, 0x01, 0x00}), Version::v311), ReasonCode::malformed_packet);
}

TEST(Ping, ReservedFlagsAreMalformed) {
  EXPECT_EQ(decode_error(bytes({0xC1, 0x00}), Version::v5), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(bytes({0xD8, 0x00}), Version::v311), ReasonCode::malformed_packet);
}

}  // namespace
}  // namespace tern::mqtt
