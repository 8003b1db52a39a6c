// CONNACK (3.1.1 §3.2, 5.0 §3.2) and the reason-code helpers.
#include <gtest/gtest.h>

#include "mqtt/codec.hpp"
#include "mqtt/codec_test_support.hpp"

namespace tern::mqtt {
namespace {

using test::bytes;
using test::decode_as;
using test::decode_error;
using test::encode_packet;

TEST(Connack311, AcceptedWithSessionPresent) {
  const std::string wire = bytes({
      0x20,  // CONNACK, flags 0
      0x02,  // remaining length 2
      0x01,  // acknowledge flags: session present
      0x00,  // return code 0: accepted
  });
  auto c = decode_as<Connack>(wire, Version::v311);
  EXPECT_TRUE(c.session_present);
  EXPECT_EQ(c.reason_code, ReasonCode::success);
  EXPECT_EQ(encode_packet(c, Version::v311), wire);
}

TEST(Connack311, ReturnCodesMapToTheClosestReasonCodes) {
  const std::pair<int, ReasonCode> cases[] = {
      {1, ReasonCode::unsupported_protocol_version},
      {2, ReasonCode::client_identifier_not_valid},
      {3, ReasonCode::server_unavailable},
      {4, ReasonCode::bad_user_name_or_password},
      {5, ReasonCode::not_authorized},
  };
  for (const auto& [code, reason] : cases) {
    const std::string wire = bytes({
        0x20,  // CONNACK
        0x02,  // remaining length 2
        0x00,  // no session
        code,  // return code
    });
    auto c = decode_as<Connack>(wire, Version::v311);
    EXPECT_EQ(c.reason_code, reason) << code;
    EXPECT_EQ(encode_packet(c, Version::v311), wire) << code;
  }
}

TEST(Connack311, ReservedReturnCodeIsMalformed) {
  EXPECT_EQ(decode_error(bytes({0x20, 0x02, 0x00, 0x06}), Version::v311), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(bytes({0x20, 0x02, 0x00, 0x80}), Version::v311), ReasonCode::malformed_packet);
}

TEST(Connack311, ReservedAcknowledgeFlagsAreMalformed) {
  EXPECT_EQ(decode_error(bytes({0x20, 0x02, 0x02, 0x00}), Version::v311), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(bytes({0x21, 0x02, 0x00, 0x00}), Version::v311), ReasonCode::malformed_packet);
}

TEST(Connack311, SessionPresentOnRefusalIsProtocolError) {
  EXPECT_EQ(decode_error(bytes({0x20, 0x02, 0x01, 0x05}), Version::v311), ReasonCode::protocol_error);
}

TEST(Connack311, WrongLengthIsMalformed) {
  EXPECT_EQ(decode_error(bytes({0x20, 0x01, 0x00}), Version::v311), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(bytes({0x20, 0x03, 0x00, 0x00, 0x00}), Version::v311), ReasonCode::malformed_packet);
}

TEST(Connack311, EncodingMaps50ReasonCodes) {
  EXPECT_EQ(encode_packet(Connack{false, ReasonCode::banned, {}}, Version::v311),
            bytes({0x20, 0x02, 0x00, 0x05}));  // not authorized
  EXPECT_EQ(encode_packet(Connack{false, ReasonCode::server_busy, {}}, Version::v311),
            bytes({0x20, 0x02, 0x00, 0x03}));  // server unavailable
  Connack with_props{false, ReasonCode::success, {}};
  with_props.properties.reason_string = "ignored in 3.1.1";
  EXPECT_EQ(encode_packet(with_props, Version::v311), bytes({0x20, 0x02, 0x00, 0x00}));
}

const std::string kConnack5 = bytes({
    0x20,                          // CONNACK
    0x20,                          // remaining length 32
    0x00,                          // no session present
    0x00,                          // reason code: success
    0x1D,                          // property length 29
    0x12, 0x00, 0x02, 'i', 'd',    //   assigned client identifier "id"
    0x13, 0x00, 0x1E,              //   server keep alive 30
    0x21, 0x00, 0x0A,              //   receive maximum 10
    0x22, 0x00, 0x05,              //   topic alias maximum 5
    0x24, 0x01,                    //   maximum QoS 1
    0x25, 0x00,                    //   retain not available
    0x27, 0x00, 0x00, 0x04, 0x00,  //   maximum packet size 1024
    0x28, 0x01,                    //   wildcard subscriptions available
    0x29, 0x00,                    //   subscription identifiers not available
    0x2A, 0x01,                    //   shared subscriptions available
});

TEST(Connack5, CapabilitiesDecode) {
  auto c = decode_as<Connack>(kConnack5, Version::v5);
  EXPECT_FALSE(c.session_present);
  EXPECT_EQ(c.reason_code, ReasonCode::success);
  const Properties& p = c.properties;
  EXPECT_EQ(p.assigned_client_identifier, "id");
  EXPECT_EQ(p.server_keep_alive, 30);
  EXPECT_EQ(p.receive_maximum, 10);
  EXPECT_EQ(p.topic_alias_maximum, 5);
  EXPECT_EQ(p.maximum_qos, 1);
  EXPECT_EQ(p.retain_available, 0);
  EXPECT_EQ(p.maximum_packet_size, 1024u);
  EXPECT_EQ(p.wildcard_subscription_available, 1);
  EXPECT_EQ(p.subscription_identifier_available, 0);
  EXPECT_EQ(p.shared_subscription_available, 1);
  EXPECT_FALSE(p.session_expiry_interval);
}

TEST(Connack5, CapabilitiesEncode) {
  Connack c;
  c.properties.assigned_client_identifier = "id";
  c.properties.server_keep_alive = 30;
  c.properties.receive_maximum = 10;
  c.properties.topic_alias_maximum = 5;
  c.properties.maximum_qos = 1;
  c.properties.retain_available = 0;
  c.properties.maximum_packet_size = 1024;
  c.properties.wildcard_subscription_available = 1;
  c.properties.subscription_identifier_available = 0;
  c.properties.shared_subscription_available = 1;
  EXPECT_EQ(encode_packet(c, Version::v5), kConnack5);
}

TEST(Connack5, RefusalWithReasonString) {
  const std::string wire = bytes({
      0x20,                         // CONNACK
      0x09,                         // remaining length 9
      0x00,                         // no session
      0x87,                         // reason code: not authorized
      0x06,                         // property length 6
      0x1F, 0x00, 0x03, 'a', 'c', 'l',  //   reason string "acl"
  });
  auto c = decode_as<Connack>(wire, Version::v5);
  EXPECT_EQ(c.reason_code, ReasonCode::not_authorized);
  EXPECT_EQ(c.properties.reason_string, "acl");
  EXPECT_EQ(encode_packet(c, Version::v5), wire);
}

TEST(Connack5, MissingPropertyLengthIsMalformed) {
  EXPECT_EQ(decode_error(bytes({0x20, 0x02, 0x00, 0x00}), Version::v5), ReasonCode::malformed_packet);
}

TEST(Connack5, ReasonCodeNotDefinedForConnackIsProtocolError) {
  // 0x04 (disconnect with will) belongs to DISCONNECT.
  EXPECT_EQ(decode_error(bytes({0x20, 0x03, 0x00, 0x04, 0x00}), Version::v5), ReasonCode::protocol_error);
}

TEST(Connack5, OutOfRangeCapabilitiesAreProtocolErrors) {
  auto connack = [](std::initializer_list<int> props) {
    return test::with_properties(0x20, bytes({0x00, 0x00}), bytes(props), "");
  };
  EXPECT_EQ(decode_error(connack({0x24, 0x02}), Version::v5), ReasonCode::protocol_error);  // maximum QoS 2
  EXPECT_EQ(decode_error(connack({0x25, 0x02}), Version::v5), ReasonCode::protocol_error);  // retain available 2
  EXPECT_EQ(decode_error(connack({0x28, 0x02}), Version::v5), ReasonCode::protocol_error);
  EXPECT_EQ(decode_error(connack({0x29, 0x02}), Version::v5), ReasonCode::protocol_error);
  EXPECT_EQ(decode_error(connack({0x2A, 0x02}), Version::v5), ReasonCode::protocol_error);
  EXPECT_EQ(decode_error(connack({0x21, 0x00, 0x00}), Version::v5), ReasonCode::protocol_error);  // receive max 0
  EXPECT_EQ(decode_error(connack({0x27, 0, 0, 0, 0}), Version::v5), ReasonCode::protocol_error);  // max size 0
}

TEST(Connack5, ConnectOnlyPropertyIsMalformed) {
  const std::string wire = bytes({
      0x20, 0x05,  // CONNACK, remaining length 5
      0x00, 0x00,  // no session, success
      0x02,        // property length 2
      0x17, 0x01,  //   request problem information: CONNECT only
  });
  EXPECT_EQ(decode_error(wire, Version::v5), ReasonCode::malformed_packet);
}

TEST(Connack5, SessionPresentOnRefusalIsProtocolError) {
  EXPECT_EQ(decode_error(bytes({0x20, 0x03, 0x01, 0x80, 0x00}), Version::v5), ReasonCode::protocol_error);
}

TEST(ReasonCodes, ConnectReturnCode311Mapping) {
  EXPECT_EQ(to_connect_return_code_311(ReasonCode::success), ConnectReturnCode311::accepted);
  EXPECT_EQ(to_connect_return_code_311(ReasonCode::unsupported_protocol_version),
            ConnectReturnCode311::unacceptable_protocol_version);
  EXPECT_EQ(to_connect_return_code_311(ReasonCode::client_identifier_not_valid),
            ConnectReturnCode311::identifier_rejected);
  EXPECT_EQ(to_connect_return_code_311(ReasonCode::server_unavailable), ConnectReturnCode311::server_unavailable);
  EXPECT_EQ(to_connect_return_code_311(ReasonCode::server_busy), ConnectReturnCode311::server_unavailable);
  EXPECT_EQ(to_connect_return_code_311(ReasonCode::bad_user_name_or_password),
            ConnectReturnCode311::bad_user_name_or_password);
  EXPECT_EQ(to_connect_return_code_311(ReasonCode::not_authorized), ConnectReturnCode311::not_authorized);
  EXPECT_EQ(to_connect_return_code_311(ReasonCode::banned), ConnectReturnCode311::not_authorized);
  EXPECT_EQ(to_connect_return_code_311(ReasonCode::malformed_packet), ConnectReturnCode311::server_unavailable);
}

TEST(ReasonCodes, NamesAndErrorClass) {
  EXPECT_EQ(to_string(ReasonCode::malformed_packet), "malformed_packet");
  EXPECT_EQ(to_string(ReasonCode::wildcard_subscriptions_not_supported), "wildcard_subscriptions_not_supported");
  EXPECT_EQ(to_string(ReasonCode::success), "success");
  EXPECT_EQ(to_string(static_cast<ReasonCode>(0x7F)), "unknown");
  EXPECT_TRUE(is_error(ReasonCode::unspecified_error));
  EXPECT_FALSE(is_error(ReasonCode::granted_qos2));
}

}  // namespace
}  // namespace tern::mqtt
