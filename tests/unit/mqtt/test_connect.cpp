// CONNECT (3.1.1 §3.1, 5.0 §3.1).
#include <gtest/gtest.h>

#include "mqtt/codec.hpp"
#include "mqtt/codec_test_support.hpp"

namespace tern::mqtt {
namespace {

using test::bytes;
using test::decode_as;
using test::decode_error;
using test::encode_packet;

const std::string kMinimal311 = bytes({
    0x10,                          // CONNECT, flags 0
    0x0F,                          // remaining length 15
    0x00, 0x04, 'M', 'Q', 'T', 'T',  // protocol name
    0x04,                          // protocol level 4 (3.1.1)
    0x02,                          // connect flags: clean session
    0x00, 0x3C,                    // keep alive 60 s
    0x00, 0x03, 'a', 'b', 'c',     // client id "abc"
});

TEST(Connect311, MinimalDecodes) {
  auto c = decode_as<Connect>(kMinimal311, Version::v311);
  EXPECT_EQ(c.version, Version::v311);
  EXPECT_TRUE(c.clean_start);
  EXPECT_EQ(c.keep_alive, 60);
  EXPECT_EQ(c.client_id, "abc");
  EXPECT_FALSE(c.username);
  EXPECT_FALSE(c.password);
  EXPECT_FALSE(c.will);
}

TEST(Connect311, MinimalEncodes) {
  Connect c;
  c.version = Version::v311;
  c.keep_alive = 60;
  c.client_id = "abc";
  EXPECT_EQ(encode_packet(c, Version::v311), kMinimal311);
}

const std::string kFull311 = bytes({
    0x10,                            // CONNECT
    0x1F,                            // remaining length 31
    0x00, 0x04, 'M', 'Q', 'T', 'T',  // protocol name
    0x04,                            // level 4
    0xEE,                            // user name, password, will retain, will QoS 1, will, clean session
    0x00, 0x0A,                      // keep alive 10
    0x00, 0x02, 'c', '1',            // client id
    0x00, 0x03, 'w', '/', 't',       // will topic
    0x00, 0x03, 'b', 'y', 'e',       // will payload
    0x00, 0x01, 'u',                 // user name
    0x00, 0x02, 0x01, 0x02,          // password (binary)
});

TEST(Connect311, WillUserNameAndPasswordDecode) {
  auto c = decode_as<Connect>(kFull311, Version::v311);
  EXPECT_EQ(c.client_id, "c1");
  ASSERT_TRUE(c.will);
  EXPECT_EQ(c.will->topic, "w/t");
  EXPECT_EQ(c.will->payload, "bye");
  EXPECT_EQ(c.will->qos, QoS::at_least_once);
  EXPECT_TRUE(c.will->retain);
  ASSERT_TRUE(c.username);
  EXPECT_EQ(*c.username, "u");
  ASSERT_TRUE(c.password);
  EXPECT_EQ(*c.password, bytes({0x01, 0x02}));
  EXPECT_EQ(encode_packet(c, Version::v311), kFull311);
}

TEST(Connect311, PasswordWithoutUserNameIsProtocolError) {
  const std::string wire = bytes({
      0x10, 0x10,                      // CONNECT, remaining length 16
      0x00, 0x04, 'M', 'Q', 'T', 'T',  // protocol name
      0x04,                            // level 4
      0x42,                            // password, clean session; no user name
      0x00, 0x00,                      // keep alive
      0x00, 0x01, 'c',                 // client id
      0x00, 0x01, 'p',                 // password
  });
  EXPECT_EQ(decode_error(wire, Version::v311), ReasonCode::protocol_error);
}

TEST(Connect, VersionComesFromThePacketNotTheCaller) {
  auto c = decode_as<Connect>(kMinimal311, Version::v5);
  EXPECT_EQ(c.version, Version::v311);
}

std::string connect_with(std::uint8_t level, std::string_view name) {
  std::string wire = bytes({0x10, static_cast<int>(2 + name.size() + 1 + 1 + 2 + 3), 0x00,
                            static_cast<int>(name.size())});
  wire += name;
  wire += bytes({
      level,            // protocol level
      0x02,             // clean session
      0x00, 0x00,       // keep alive
      0x00, 0x01, 'c',  // client id
  });
  return wire;
}

TEST(Connect, ProtocolLevel3IsUnsupportedVersion) {
  EXPECT_EQ(decode_error(connect_with(3, "MQIsdp"), Version::v311), ReasonCode::unsupported_protocol_version);
  EXPECT_EQ(decode_error(connect_with(3, "MQTT"), Version::v311), ReasonCode::unsupported_protocol_version);
}

TEST(Connect, ProtocolLevel6IsUnsupportedVersion) {
  EXPECT_EQ(decode_error(connect_with(6, "MQTT"), Version::v5), ReasonCode::unsupported_protocol_version);
}

TEST(Connect, WrongProtocolNameIsMalformed) {
  EXPECT_EQ(decode_error(connect_with(4, "MQTX"), Version::v311), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(connect_with(5, "mqtt"), Version::v5), ReasonCode::malformed_packet);
}

TEST(Connect, LevelsFourAndFiveAreAccepted) {
  const std::string c4_wire = connect_with(4, "MQTT");
  auto c4 = decode_as<Connect>(c4_wire, Version::v311);
  EXPECT_EQ(c4.version, Version::v311);
  // A 5.0 CONNECT needs a property length; a level-5 packet without it is truncated.
  EXPECT_EQ(decode_error(connect_with(5, "MQTT"), Version::v5), ReasonCode::malformed_packet);
}

std::string connect311_flags(std::uint8_t flags) {
  return bytes({
      0x10, 0x0C,                      // CONNECT, remaining length 12
      0x00, 0x04, 'M', 'Q', 'T', 'T',  // protocol name
      0x04,                            // level 4
      flags,                           // connect flags under test
      0x00, 0x00,                      // keep alive
      0x00, 0x00,                      // empty client id
  });
}

TEST(Connect311, ReservedFlagBitIsMalformed) {
  EXPECT_EQ(decode_error(connect311_flags(0x03), Version::v311), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(connect311_flags(0x02), Version::v311), ReasonCode::success);
}

TEST(Connect311, WillQoSOrRetainWithoutWillFlagIsMalformed) {
  EXPECT_EQ(decode_error(connect311_flags(0x0A), Version::v311), ReasonCode::malformed_packet);  // will QoS 1
  EXPECT_EQ(decode_error(connect311_flags(0x12), Version::v311), ReasonCode::malformed_packet);  // will QoS 2
  EXPECT_EQ(decode_error(connect311_flags(0x22), Version::v311), ReasonCode::malformed_packet);  // will retain
}

TEST(Connect311, WillQoS3IsMalformed) {
  const std::string wire = bytes({
      0x10, 0x12,                      // CONNECT, remaining length 18
      0x00, 0x04, 'M', 'Q', 'T', 'T',  // protocol name
      0x04,                            // level 4
      0x1E,                            // will QoS 3, will, clean session
      0x00, 0x00,                      // keep alive
      0x00, 0x00,                      // client id ""
      0x00, 0x01, 't',                 // will topic
      0x00, 0x01, 'p',                 // will payload
  });
  EXPECT_EQ(decode_error(wire, Version::v311), ReasonCode::malformed_packet);
}

TEST(Connect311, ReservedFixedHeaderFlagsAreMalformed) {
  std::string wire = kMinimal311;
  wire[0] = 0x11;
  EXPECT_EQ(decode_error(wire, Version::v311), ReasonCode::malformed_packet);
}

TEST(Connect311, TruncatedAndTrailingBytesAreMalformed) {
  std::string truncated = kMinimal311.substr(0, kMinimal311.size() - 1);
  truncated[1] = 0x0E;  // remaining length matches what is there
  EXPECT_EQ(decode_error(truncated, Version::v311), ReasonCode::malformed_packet);
  std::string trailing = kMinimal311 + 'x';
  trailing[1] = 0x10;
  EXPECT_EQ(decode_error(trailing, Version::v311), ReasonCode::malformed_packet);
}

TEST(Connect311, ClientIdMustBeValidUtf8WithoutNul) {
  std::string overlong = kMinimal311;
  overlong[14] = '\xC0';  // "\xC0\x80c": an overlong encoding of U+0000
  overlong[15] = '\x80';
  EXPECT_EQ(decode_error(overlong, Version::v311), ReasonCode::malformed_packet);
  std::string nul = kMinimal311;
  nul[15] = '\0';
  EXPECT_EQ(decode_error(nul, Version::v311), ReasonCode::malformed_packet);
}

TEST(Connect311, WillTopicWithWildcardIsInvalid) {
  std::string wire = kFull311;
  wire[19] = '+';  // will topic "w+t"
  EXPECT_EQ(decode_error(wire, Version::v311), ReasonCode::topic_name_invalid);
}

const std::string kProps5 = bytes({
    0x10,                                    // CONNECT
    0x1E,                                    // remaining length 30
    0x00, 0x04, 'M', 'Q', 'T', 'T',          // protocol name
    0x05,                                    // level 5
    0x02,                                    // clean start
    0x00, 0x0A,                              // keep alive 10
    0x0F,                                    // property length 15
    0x11, 0x00, 0x00, 0x00, 0x78,            //   session expiry interval 120
    0x21, 0x00, 0x14,                        //   receive maximum 20
    0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v',  //   user property k=v
    0x00, 0x02, 'i', 'd',                    // client id
});

TEST(Connect5, PropertiesDecode) {
  auto c = decode_as<Connect>(kProps5, Version::v5);
  EXPECT_EQ(c.version, Version::v5);
  EXPECT_EQ(c.keep_alive, 10);
  EXPECT_EQ(c.client_id, "id");
  EXPECT_EQ(c.properties.session_expiry_interval, 120u);
  EXPECT_EQ(c.properties.receive_maximum, 20);
  EXPECT_EQ(test::user_properties_of(c.properties.user_properties), (test::StringPairs{{"k", "v"}}));
}

TEST(Connect5, PropertiesEncode) {
  std::string user;
  append_user_property(user, "k", "v");
  Connect c;
  c.keep_alive = 10;
  c.client_id = "id";
  c.properties.session_expiry_interval = 120;
  c.properties.receive_maximum = 20;
  c.properties.user_properties = user;
  EXPECT_EQ(encode_packet(c, Version::v5), kProps5);
}

const std::string kWill5 = bytes({
    0x10,                            // CONNECT
    0x29,                            // remaining length 41
    0x00, 0x04, 'M', 'Q', 'T', 'T',  // protocol name
    0x05,                            // level 5
    0xF6,                            // user name, password, will retain, will QoS 2, will, clean start
    0x00, 0x00,                      // keep alive 0
    0x05,                            // property length 5
    0x27, 0x00, 0x00, 0x10, 0x00,    //   maximum packet size 4096
    0x00, 0x00,                      // client id "" (the server assigns one)
    0x07,                            // will property length 7
    0x01, 0x01,                      //   payload format indicator: UTF-8
    0x18, 0x00, 0x00, 0x00, 0x05,    //   will delay interval 5
    0x00, 0x01, 't',                 // will topic
    0x00, 0x02, 'o', 'k',            // will payload
    0x00, 0x02, 'u', 's',            // user name
    0x00, 0x02, 'p', 'w',            // password
});

TEST(Connect5, WillPropertiesDecodeAndEncode) {
  auto c = decode_as<Connect>(kWill5, Version::v5);
  EXPECT_TRUE(c.client_id.empty());
  EXPECT_EQ(c.properties.maximum_packet_size, 4096u);
  ASSERT_TRUE(c.will);
  EXPECT_EQ(c.will->qos, QoS::exactly_once);
  EXPECT_TRUE(c.will->retain);
  EXPECT_EQ(c.will->properties.payload_format_indicator, 1);
  EXPECT_EQ(c.will->properties.will_delay_interval, 5u);
  EXPECT_EQ(c.will->topic, "t");
  EXPECT_EQ(c.will->payload, "ok");
  EXPECT_EQ(c.username, "us");
  EXPECT_EQ(c.password, "pw");
  EXPECT_EQ(encode_packet(c, Version::v5), kWill5);
  // The caller's version does not change how a CONNECT is written.
  EXPECT_EQ(encode_packet(c, Version::v311), kWill5);
}

TEST(Connect5, PasswordWithoutUserNameIsAllowed) {
  const std::string wire = bytes({
      0x10, 0x11,                      // CONNECT, remaining length 17
      0x00, 0x04, 'M', 'Q', 'T', 'T',  // protocol name
      0x05,                            // level 5
      0x42,                            // password, clean start
      0x00, 0x00,                      // keep alive
      0x00,                            // property length 0
      0x00, 0x01, 'c',                 // client id
      0x00, 0x01, 'p',                 // password
  });
  auto c = decode_as<Connect>(wire, Version::v5);
  EXPECT_FALSE(c.username);
  EXPECT_EQ(c.password, "p");
}

std::string connect5_with_properties(std::string_view props) {
  return test::with_properties(0x10, bytes({0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00}), props,
                               bytes({0x00, 0x01, 'c'}));
}

TEST(Connect5, ReceiveMaximumZeroIsProtocolError) {
  EXPECT_EQ(decode_error(connect5_with_properties(bytes({0x21, 0x00, 0x00})), Version::v5),
            ReasonCode::protocol_error);
}

TEST(Connect5, MaximumPacketSizeZeroIsProtocolError) {
  EXPECT_EQ(decode_error(connect5_with_properties(bytes({0x27, 0x00, 0x00, 0x00, 0x00})), Version::v5),
            ReasonCode::protocol_error);
}

TEST(Connect5, RepeatedPropertyIsProtocolError) {
  EXPECT_EQ(decode_error(connect5_with_properties(bytes({0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2})), Version::v5),
            ReasonCode::protocol_error);
}

TEST(Connect5, PropertyOfAnotherPacketIsMalformed) {
  EXPECT_EQ(decode_error(connect5_with_properties(bytes({0x23, 0x00, 0x01})), Version::v5),  // topic alias
            ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(connect5_with_properties(bytes({0x18, 0, 0, 0, 1})), Version::v5),  // will delay
            ReasonCode::malformed_packet);
}

TEST(Connect5, AuthenticationDataWithoutMethodIsProtocolError) {
  EXPECT_EQ(decode_error(connect5_with_properties(bytes({0x16, 0x00, 0x01, 0x00})), Version::v5),
            ReasonCode::protocol_error);
  auto ok = connect5_with_properties(bytes({0x15, 0x00, 0x01, 'm', 0x16, 0x00, 0x01, 0x00}));
  auto c = decode_as<Connect>(ok, Version::v5);
  EXPECT_EQ(c.properties.authentication_method, "m");
  EXPECT_EQ(c.properties.authentication_data, bytes({0x00}));
}

TEST(Connect5, RequestInformationFlagsMustBeZeroOrOne) {
  EXPECT_EQ(decode_error(connect5_with_properties(bytes({0x17, 0x02})), Version::v5), ReasonCode::protocol_error);
  EXPECT_EQ(decode_error(connect5_with_properties(bytes({0x19, 0x02})), Version::v5), ReasonCode::protocol_error);
  const std::string c_wire = connect5_with_properties(bytes({0x17, 0x00, 0x19, 0x01}));
  auto c = decode_as<Connect>(c_wire, Version::v5);
  EXPECT_EQ(c.properties.request_problem_information, 0);
  EXPECT_EQ(c.properties.request_response_information, 1);
}

TEST(Connect5, WillPropertyNotAllowedInWillIsMalformed) {
  // Session expiry belongs to CONNECT, not to the will.
  const std::string wire = bytes({
      0x10, 0x19,                      // CONNECT, remaining length 25
      0x00, 0x04, 'M', 'Q', 'T', 'T',  // protocol name
      0x05,                            // level 5
      0x06,                            // will, clean start
      0x00, 0x00,                      // keep alive
      0x00,                            // property length 0
      0x00, 0x01, 'c',                 // client id
      0x05, 0x11, 0x00, 0x00, 0x00, 0x01,  // will properties: session expiry (not allowed)
      0x00, 0x01, 't',                 // will topic
      0x00, 0x00,                      // will payload ""
  });
  EXPECT_EQ(decode_error(wire, Version::v5), ReasonCode::malformed_packet);
}

TEST(Connect5, RoundTrip) {
  std::string user;
  append_user_property(user, "trace", "00-ab");
  Connect c;
  c.clean_start = false;
  c.keep_alive = 65535;
  c.client_id = "device-1";
  c.username = "user";
  c.properties.session_expiry_interval = 0xFFFFFFFF;
  c.properties.topic_alias_maximum = 10;
  c.properties.request_problem_information = 0;
  c.properties.authentication_method = "SCRAM-SHA-1";
  c.properties.authentication_data = std::string_view("\x00\x01", 2);
  c.properties.user_properties = user;
  Will w;
  w.topic = "status/device-1";
  w.payload = std::string_view("\x00offline", 8);
  w.qos = QoS::at_least_once;
  w.properties.message_expiry_interval = 60;
  w.properties.content_type = "text/plain";
  w.properties.response_topic = "reply/1";
  w.properties.correlation_data = "42";
  c.will = w;
  const std::string wire = encode_packet(c, Version::v5);
  auto d = decode_as<Connect>(wire, Version::v5);
  EXPECT_FALSE(d.clean_start);
  EXPECT_EQ(d.keep_alive, 65535);
  EXPECT_EQ(d.client_id, "device-1");
  EXPECT_EQ(d.username, "user");
  EXPECT_FALSE(d.password);
  EXPECT_EQ(d.properties.session_expiry_interval, 0xFFFFFFFFu);
  EXPECT_EQ(d.properties.topic_alias_maximum, 10);
  EXPECT_EQ(d.properties.request_problem_information, 0);
  EXPECT_EQ(d.properties.authentication_method, "SCRAM-SHA-1");
  EXPECT_EQ(d.properties.authentication_data, std::string_view("\x00\x01", 2));
  EXPECT_EQ(test::user_properties_of(d.properties.user_properties), (test::StringPairs{{"trace", "00-ab"}}));
  ASSERT_TRUE(d.will);
  EXPECT_EQ(d.will->topic, "status/device-1");
  EXPECT_EQ(d.will->payload, std::string_view("\x00offline", 8));
  EXPECT_EQ(d.will->qos, QoS::at_least_once);
  EXPECT_FALSE(d.will->retain);
  EXPECT_EQ(d.will->properties.message_expiry_interval, 60u);
  EXPECT_EQ(d.will->properties.content_type, "text/plain");
  EXPECT_EQ(d.will->properties.response_topic, "reply/1");
  EXPECT_EQ(d.will->properties.correlation_data, "42");
  EXPECT_EQ(encode_packet(d, Version::v5), wire);
}

}  // namespace
}  // namespace tern::mqtt
