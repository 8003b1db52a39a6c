// SUBSCRIBE (3.1.1 §3.8, 5.0 §3.8).
#include <gtest/gtest.h>

#include "mqtt/codec.hpp"
#include "mqtt/codec_test_support.hpp"

namespace tern::mqtt {
namespace {

using test::bytes;
using test::decode_as;
using test::decode_error;
using test::encode_packet;

const std::string kSubscribe311 = bytes({
    0x82,                       // SUBSCRIBE, flags 0x2
    0x0E,                       // remaining length 14
    0x00, 0x0A,                 // packet id 10
    0x00, 0x03, 'a', '/', 'b',  // topic filter "a/b"
    0x01,                       //   requested QoS 1
    0x00, 0x03, 'c', '/', '#',  // topic filter "c/#"
    0x02,                       //   requested QoS 2
});

TEST(Subscribe311, Decodes) {
  auto s = decode_as<Subscribe>(kSubscribe311, Version::v311);
  EXPECT_EQ(s.packet_id, 10);
  ASSERT_EQ(s.topics.size(), 2u);
  EXPECT_EQ(s.topics[0].filter, "a/b");
  EXPECT_EQ(s.topics[0].options.qos, QoS::at_least_once);
  EXPECT_EQ(s.topics[1].filter, "c/#");
  EXPECT_EQ(s.topics[1].options.qos, QoS::exactly_once);
  EXPECT_EQ(encode_packet(s, Version::v311), kSubscribe311);
}

TEST(Subscribe311, OptionBitsOtherThanQoSAreMalformed) {
  std::string wire = kSubscribe311;
  wire[9] = 0x05;  // QoS 1 + the 5.0 "no local" bit, reserved in 3.1.1
  EXPECT_EQ(decode_error(wire, Version::v311), ReasonCode::malformed_packet);
  wire[9] = 0x03;  // QoS 3
  EXPECT_EQ(decode_error(wire, Version::v311), ReasonCode::malformed_packet);
}

TEST(Subscribe311, OnlyQoSIsEncoded) {
  Subscribe s{1, {{"t", {QoS::at_least_once, true, true, RetainHandling::do_not_send}}}, {}};
  EXPECT_EQ(encode_packet(s, Version::v311), bytes({0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x01}));
}

const std::string kSubscribe5 = bytes({
    0x82,                                                   // SUBSCRIBE, flags 0x2
    0x19,                                                   // remaining length 25
    0x00, 0x0B,                                             // packet id 11
    0x03,                                                   // property length 3
    0x0B, 0x80, 0x01,                                       //   subscription identifier 128
    0x00, 0x03, 'a', '/', '+',                              // topic filter "a/+"
    0x2D,                                                   //   QoS 1, no local, retain as published, retain handling 2
    0x00, 0x0A, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'x',  // "$share/g/x"
    0x00,                                                   //   QoS 0, retain handling 0
});

TEST(Subscribe5, Decodes) {
  auto s = decode_as<Subscribe>(kSubscribe5, Version::v5);
  EXPECT_EQ(s.packet_id, 11);
  EXPECT_EQ(test::subscription_identifiers_of(s.properties.subscription_identifiers),
            (std::vector<std::uint32_t>{128}));
  ASSERT_EQ(s.topics.size(), 2u);
  EXPECT_EQ(s.topics[0].filter, "a/+");
  EXPECT_EQ(s.topics[0].options.qos, QoS::at_least_once);
  EXPECT_TRUE(s.topics[0].options.no_local);
  EXPECT_TRUE(s.topics[0].options.retain_as_published);
  EXPECT_EQ(s.topics[0].options.retain_handling, RetainHandling::do_not_send);
  EXPECT_EQ(s.topics[1].filter, "$share/g/x");
  EXPECT_EQ(s.topics[1].options.qos, QoS::at_most_once);
  EXPECT_FALSE(s.topics[1].options.no_local);
  EXPECT_EQ(s.topics[1].options.retain_handling, RetainHandling::send_on_subscribe);
}

TEST(Subscribe5, Encodes) {
  std::string ids;
  append_subscription_identifier(ids, 128);
  Subscribe s;
  s.packet_id = 11;
  s.properties.subscription_identifiers = ids;
  s.topics.push_back({"a/+", {QoS::at_least_once, true, true, RetainHandling::do_not_send}});
  s.topics.push_back({"$share/g/x", {}});
  EXPECT_EQ(encode_packet(s, Version::v5), kSubscribe5);
}

TEST(Subscribe, ReservedFixedHeaderFlagsAreMalformed) {
  for (char first : {'\x80', '\x83', '\x8A'}) {
    std::string wire = kSubscribe311;
    wire[0] = first;
    EXPECT_EQ(decode_error(wire, Version::v311), ReasonCode::malformed_packet);
  }
}

TEST(Subscribe, EmptyPayloadIsProtocolError) {
  EXPECT_EQ(decode_error(bytes({0x82, 0x02, 0x00, 0x01}), Version::v311), ReasonCode::protocol_error);
  EXPECT_EQ(decode_error(bytes({0x82, 0x03, 0x00, 0x01, 0x00}), Version::v5), ReasonCode::protocol_error);
}

TEST(Subscribe, PacketIdZeroIsProtocolError) {
  EXPECT_EQ(decode_error(bytes({0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 't', 0x00}), Version::v311),
            ReasonCode::protocol_error);
}

TEST(Subscribe, MissingOptionsByteIsMalformed) {
  EXPECT_EQ(decode_error(bytes({0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 't'}), Version::v311),
            ReasonCode::malformed_packet);
}

std::string subscribe5_options(int options) {
  return bytes({
      0x82, 0x07,        // SUBSCRIBE, remaining length 7
      0x00, 0x01,        // packet id 1
      0x00,              // property length 0
      0x00, 0x01, 't',   // topic filter "t"
      options,           // subscription options under test
  });
}

TEST(Subscribe5, SubscriptionOptions) {
  EXPECT_EQ(decode_error(subscribe5_options(0x40), Version::v5), ReasonCode::malformed_packet);   // reserved bit 6
  EXPECT_EQ(decode_error(subscribe5_options(0x80), Version::v5), ReasonCode::malformed_packet);   // reserved bit 7
  EXPECT_EQ(decode_error(subscribe5_options(0x03), Version::v5), ReasonCode::protocol_error);     // QoS 3
  EXPECT_EQ(decode_error(subscribe5_options(0x30), Version::v5), ReasonCode::protocol_error);     // retain handling 3
  const std::string s_wire = subscribe5_options(0x1E);
  auto s = decode_as<Subscribe>(s_wire, Version::v5);  // QoS 2, NL, RAP, RH 1
  ASSERT_EQ(s.topics.size(), 1u);
  EXPECT_EQ(s.topics[0].options.qos, QoS::exactly_once);
  EXPECT_EQ(s.topics[0].options.retain_handling, RetainHandling::send_if_new);
}

std::string subscribe311_filter(std::string_view filter) {
  std::string wire = bytes({0x82, static_cast<int>(5 + filter.size()), 0x00, 0x01, 0x00,
                            static_cast<int>(filter.size())});
  wire += filter;
  wire += '\x01';  // QoS 1
  return wire;
}

TEST(Subscribe, InvalidTopicFiltersAreMalformed) {
  for (std::string_view filter : {"", "a/b#", "a/#/b", "a+", "+a/b", "a/++", "$share/g", "$share//x",
                                  "$share/g+/x", "$share/g#/x", "$share/g/", "$share/g/a#"}) {
    EXPECT_EQ(decode_error(subscribe311_filter(filter), Version::v311), ReasonCode::malformed_packet) << filter;
  }
}

TEST(Subscribe, ValidTopicFilters) {
  for (std::string_view filter : {"#", "+", "+/+", "a/+/c", "a/#", "/", "$SYS/#", "$share/g/#", "$share/g/a/+"}) {
    const std::string s_wire = subscribe311_filter(filter);
    auto s = decode_as<Subscribe>(s_wire, Version::v311);
    ASSERT_EQ(s.topics.size(), 1u) << filter;
    EXPECT_EQ(s.topics[0].filter, filter);
  }
}

TEST(Subscribe, FilterWithInvalidUtf8IsMalformed) {
  EXPECT_EQ(decode_error(subscribe311_filter("a/\xC0\xAF"), Version::v311), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(subscribe311_filter(std::string_view("a\0b", 3)), Version::v311),
            ReasonCode::malformed_packet);
}

TEST(Subscribe5, NoLocalOnSharedSubscriptionIsProtocolError) {
  std::string wire = kSubscribe5;
  wire.back() = 0x04;  // "$share/g/x" with no local
  EXPECT_EQ(decode_error(wire, Version::v5), ReasonCode::protocol_error);
}

std::string subscribe5_with_properties(std::initializer_list<int> props) {
  return test::with_properties(0x82, bytes({0x00, 0x01}), bytes(props), bytes({0x00, 0x01, 't', 0x00}));
}

TEST(Subscribe5, SubscriptionIdentifierRules) {
  EXPECT_EQ(decode_error(subscribe5_with_properties({0x0B, 0x00}), Version::v5), ReasonCode::protocol_error);
  EXPECT_EQ(decode_error(subscribe5_with_properties({0x0B, 0x01, 0x0B, 0x02}), Version::v5),
            ReasonCode::protocol_error);  // only one in SUBSCRIBE
  // Largest value: 268435455.
  const std::string s_wire = subscribe5_with_properties({0x0B, 0xFF, 0xFF, 0xFF, 0x7F});
  auto s = decode_as<Subscribe>(s_wire, Version::v5);
  EXPECT_EQ(test::subscription_identifiers_of(s.properties.subscription_identifiers),
            (std::vector<std::uint32_t>{268435455}));
  // Five bytes cannot be a variable byte integer.
  EXPECT_EQ(decode_error(subscribe5_with_properties({0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}), Version::v5),
            ReasonCode::malformed_packet);
}

TEST(Subscribe5, PropertyOfAnotherPacketIsMalformed) {
  EXPECT_EQ(decode_error(subscribe5_with_properties({0x23, 0x00, 0x01}), Version::v5),
            ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(subscribe5_with_properties({0x1F, 0x00, 0x00}), Version::v5),
            ReasonCode::malformed_packet);
}

TEST(Subscribe5, RoundTripManyFilters) {
  std::string user;
  append_user_property(user, "a", "1");
  Subscribe s;
  s.packet_id = 0x8001;
  s.properties.user_properties = user;
  const std::vector<std::string> filters = {"x/y", "x/+/z", "#", "$share/workers/jobs/#"};
  for (std::size_t i = 0; i < filters.size(); ++i) {
    s.topics.push_back({filters[i],
                        {static_cast<QoS>(i % 3), false, i % 2 == 1, static_cast<RetainHandling>(i % 3)}});
  }
  const std::string wire = encode_packet(s, Version::v5);
  auto d = decode_as<Subscribe>(wire, Version::v5);
  EXPECT_EQ(d.packet_id, 0x8001);
  ASSERT_EQ(d.topics.size(), filters.size());
  for (std::size_t i = 0; i < filters.size(); ++i) {
    EXPECT_EQ(d.topics[i].filter, filters[i]);
    EXPECT_EQ(d.topics[i].options.qos, s.topics[i].options.qos);
    EXPECT_EQ(d.topics[i].options.retain_as_published, s.topics[i].options.retain_as_published);
    EXPECT_EQ(d.topics[i].options.retain_handling, s.topics[i].options.retain_handling);
  }
  EXPECT_EQ(test::user_properties_of(d.properties.user_properties), (test::StringPairs{{"a", "1"}}));
}

}  // namespace
}  // namespace tern::mqtt
