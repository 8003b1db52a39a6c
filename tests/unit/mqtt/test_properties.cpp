// 5.0 properties (§2.2.2): the table of which packet each property may appear in,
// repetition, and the repeated-property helpers.
#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "mqtt/codec.hpp"
#include "mqtt/codec_test_support.hpp"

namespace tern::mqtt {
namespace {

using test::bytes;
using test::decode_as;
using test::decode_error;
using test::encode_packet;
using test::with_properties;

// A 5.0 packet of each kind that carries a property block, built around `props`.
struct Carrier {
  const char* name;
  std::function<std::string(std::string_view)> build;
};

const std::vector<Carrier>& carriers() {
  static const std::vector<Carrier> all = {
      {"CONNECT",
       [](std::string_view p) {
         return with_properties(0x10, bytes({0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00}), p,
                                bytes({0x00, 0x01, 'c'}));
       }},
      {"will",
       [](std::string_view p) {
         // CONNECT with an empty property block; the block under test is the will's.
         std::string will_part = bytes({0x00, 0x01, 'c'});
         append_varint(will_part, static_cast<std::uint32_t>(p.size()));
         will_part.append(p);
         will_part += bytes({0x00, 0x01, 't', 0x00, 0x00});
         return with_properties(0x10, bytes({0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x06, 0x00, 0x00}), "",
                                will_part);
       }},
      {"CONNACK", [](std::string_view p) { return with_properties(0x20, bytes({0x00, 0x00}), p, ""); }},
      {"PUBLISH", [](std::string_view p) { return with_properties(0x30, bytes({0x00, 0x01, 't'}), p, "x"); }},
      {"PUBACK", [](std::string_view p) { return with_properties(0x40, bytes({0x00, 0x01, 0x00}), p, ""); }},
      {"PUBREC", [](std::string_view p) { return with_properties(0x50, bytes({0x00, 0x01, 0x00}), p, ""); }},
      {"PUBREL", [](std::string_view p) { return with_properties(0x62, bytes({0x00, 0x01, 0x00}), p, ""); }},
      {"PUBCOMP", [](std::string_view p) { return with_properties(0x70, bytes({0x00, 0x01, 0x00}), p, ""); }},
      {"SUBSCRIBE",
       [](std::string_view p) { return with_properties(0x82, bytes({0x00, 0x01}), p, bytes({0x00, 0x01, 't', 0x00})); }},
      {"SUBACK", [](std::string_view p) { return with_properties(0x90, bytes({0x00, 0x01}), p, bytes({0x00})); }},
      {"UNSUBSCRIBE",
       [](std::string_view p) { return with_properties(0xA2, bytes({0x00, 0x01}), p, bytes({0x00, 0x01, 't'})); }},
      {"UNSUBACK", [](std::string_view p) { return with_properties(0xB0, bytes({0x00, 0x01}), p, bytes({0x00})); }},
      {"DISCONNECT", [](std::string_view p) { return with_properties(0xE0, bytes({0x00}), p, ""); }},
      {"AUTH", [](std::string_view p) { return with_properties(0xF0, bytes({0x00}), p, ""); }},
  };
  return all;
}

struct PropertyRow {
  int id;
  std::string sample;                 // a valid encoding of the property
  std::set<std::string> allowed_in;  // the §2.2.2.2 table
};

TEST(Properties, EachPropertyIsAcceptedExactlyWhereTheSpecificationAllowsIt) {
  const std::set<std::string> pub_and_will = {"PUBLISH", "will"};
  const std::string auth_method = bytes({0x15, 0x00, 0x01, 'm'});
  const std::vector<PropertyRow> table = {
      {0x01, bytes({0x01, 0x00}), pub_and_will},
      {0x02, bytes({0x02, 0x00, 0x00, 0x00, 0x0A}), pub_and_will},
      {0x03, bytes({0x03, 0x00, 0x01, 'c'}), pub_and_will},
      {0x08, bytes({0x08, 0x00, 0x01, 'r'}), pub_and_will},
      {0x09, bytes({0x09, 0x00, 0x01, 0x00}), pub_and_will},
      {0x0B, bytes({0x0B, 0x07}), {"PUBLISH", "SUBSCRIBE"}},
      {0x11, bytes({0x11, 0x00, 0x00, 0x00, 0x0A}), {"CONNECT", "CONNACK", "DISCONNECT"}},
      {0x12, bytes({0x12, 0x00, 0x01, 'a'}), {"CONNACK"}},
      {0x13, bytes({0x13, 0x00, 0x0A}), {"CONNACK"}},
      {0x15, auth_method, {"CONNECT", "CONNACK", "AUTH"}},
      // Authentication data only makes sense with a method; both share the same packets.
      {0x16, auth_method + bytes({0x16, 0x00, 0x01, 0x00}), {"CONNECT", "CONNACK", "AUTH"}},
      {0x17, bytes({0x17, 0x01}), {"CONNECT"}},
      {0x18, bytes({0x18, 0x00, 0x00, 0x00, 0x0A}), {"will"}},
      {0x19, bytes({0x19, 0x01}), {"CONNECT"}},
      {0x1A, bytes({0x1A, 0x00, 0x01, 'i'}), {"CONNACK"}},
      {0x1C, bytes({0x1C, 0x00, 0x01, 's'}), {"CONNACK", "DISCONNECT"}},
      {0x1F, bytes({0x1F, 0x00, 0x01, 'r'}),
       {"CONNACK", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBACK", "UNSUBACK", "DISCONNECT", "AUTH"}},
      {0x21, bytes({0x21, 0x00, 0x0A}), {"CONNECT", "CONNACK"}},
      {0x22, bytes({0x22, 0x00, 0x0A}), {"CONNECT", "CONNACK"}},
      {0x23, bytes({0x23, 0x00, 0x0A}), {"PUBLISH"}},
      {0x24, bytes({0x24, 0x01}), {"CONNACK"}},
      {0x25, bytes({0x25, 0x01}), {"CONNACK"}},
      {0x26, bytes({0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v'}),
       {"CONNECT", "will", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK",
        "UNSUBSCRIBE", "UNSUBACK", "DISCONNECT", "AUTH"}},
      {0x27, bytes({0x27, 0x00, 0x00, 0x10, 0x00}), {"CONNECT", "CONNACK"}},
      {0x28, bytes({0x28, 0x01}), {"CONNACK"}},
      {0x29, bytes({0x29, 0x01}), {"CONNACK"}},
      {0x2A, bytes({0x2A, 0x01}), {"CONNACK"}},
  };
  for (const PropertyRow& row : table) {
    for (const Carrier& c : carriers()) {
      const std::string wire = c.build(row.sample);
      const ReasonCode got = decode_error(wire, Version::v5);
      if (row.allowed_in.count(c.name) != 0) {
        EXPECT_EQ(got, ReasonCode::success) << "property 0x" << std::hex << row.id << " in " << c.name;
      } else {
        EXPECT_EQ(got, ReasonCode::malformed_packet) << "property 0x" << std::hex << row.id << " in " << c.name;
      }
    }
  }
}

TEST(Properties, EmptyBlockIsAcceptedEverywhere) {
  for (const Carrier& c : carriers()) {
    EXPECT_EQ(decode_error(c.build(""), Version::v5), ReasonCode::success) << c.name;
  }
}

TEST(Properties, UnknownIdentifiersAreMalformed) {
  for (int id : {0x00, 0x04, 0x0A, 0x10, 0x14, 0x1B, 0x20, 0x2B, 0x7F, 0x80, 0xFF}) {
    EXPECT_EQ(decode_error(carriers()[2].build(bytes({id, 0x00})), Version::v5), ReasonCode::malformed_packet)
        << id;
  }
}

TEST(Properties, RepeatingASingleValuedPropertyIsProtocolError) {
  // Every CONNACK property but the user property, twice.
  const std::vector<std::string> samples = {
      bytes({0x11, 0x00, 0x00, 0x00, 0x0A}), bytes({0x12, 0x00, 0x01, 'a'}), bytes({0x13, 0x00, 0x0A}),
      bytes({0x15, 0x00, 0x01, 'm'}),        bytes({0x1A, 0x00, 0x01, 'i'}), bytes({0x1C, 0x00, 0x01, 's'}),
      bytes({0x1F, 0x00, 0x01, 'r'}),        bytes({0x21, 0x00, 0x0A}),      bytes({0x22, 0x00, 0x0A}),
      bytes({0x24, 0x01}),                   bytes({0x25, 0x01}),            bytes({0x27, 0x00, 0x00, 0x10, 0x00}),
      bytes({0x28, 0x01}),                   bytes({0x29, 0x01}),            bytes({0x2A, 0x01}),
  };
  const Carrier& connack = carriers()[2];
  for (const std::string& s : samples) {
    EXPECT_EQ(decode_error(connack.build(s), Version::v5), ReasonCode::success) << int(s[0]);
    EXPECT_EQ(decode_error(connack.build(s + s), Version::v5), ReasonCode::protocol_error) << int(s[0]);
  }
  // Repeated even when other properties sit between the two.
  EXPECT_EQ(decode_error(connack.build(bytes({0x24, 0x01, 0x25, 0x01, 0x24, 0x00})), Version::v5),
            ReasonCode::protocol_error);
  // The same for PUBLISH and will properties.
  const Carrier& publish = carriers()[3];
  for (const std::string& s : {bytes({0x01, 0x00}), bytes({0x02, 0x00, 0x00, 0x00, 0x01}), bytes({0x03, 0x00, 0x00}),
                               bytes({0x08, 0x00, 0x01, 'r'}), bytes({0x09, 0x00, 0x00}), bytes({0x23, 0x00, 0x01})}) {
    EXPECT_EQ(decode_error(publish.build(s + s), Version::v5), ReasonCode::protocol_error) << int(s[0]);
  }
  EXPECT_EQ(decode_error(carriers()[1].build(bytes({0x18, 0, 0, 0, 1, 0x18, 0, 0, 0, 2})), Version::v5),
            ReasonCode::protocol_error);
}

TEST(Properties, UserPropertiesRepeatAndKeepTheirOrder) {
  const std::string props = bytes({
      0x26, 0x00, 0x01, 'a', 0x00, 0x01, '1',  // a=1
      0x26, 0x00, 0x01, 'a', 0x00, 0x01, '2',  // a=2 (keys may repeat)
      0x26, 0x00, 0x00, 0x00, 0x00,            // ""="" (empty strings are allowed)
  });
  const std::string c_wire = carriers()[2].build(props);
  auto c = decode_as<Connack>(c_wire, Version::v5);
  EXPECT_EQ(test::user_properties_of(c.properties.user_properties),
            (test::StringPairs{{"a", "1"}, {"a", "2"}, {"", ""}}));
  EXPECT_EQ(c.properties.user_properties, props);
}

TEST(Properties, UserPropertyMustBeValidUtf8) {
  EXPECT_EQ(decode_error(carriers()[2].build(bytes({0x26, 0x00, 0x01, 0xFF, 0x00, 0x00})), Version::v5),
            ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(carriers()[2].build(bytes({0x26, 0x00, 0x00, 0x00, 0x01, 0x00})), Version::v5),
            ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(carriers()[2].build(bytes({0x26, 0x00, 0x01, 'k', 0x00})), Version::v5),
            ReasonCode::malformed_packet);
}

TEST(Properties, NonMinimalPropertyLengthIsMalformed) {
  const std::string wire = bytes({
      0x20, 0x04,  // CONNACK, remaining length 4
      0x00, 0x00,  // no session, success
      0x80, 0x00,  // property length 0 in two bytes
  });
  EXPECT_EQ(decode_error(wire, Version::v5), ReasonCode::malformed_packet);
}

TEST(Properties, UserPropertiesRoundTrip) {
  const test::StringPairs pairs = {
      {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
      {"tern-id", "7"},
      {"", "empty key"},
      {"unicode", "\xE2\x82\xAC \xF0\x9F\x98\x80"},  // U+20AC, U+1F600
      {std::string(300, 'k'), std::string(70000 / 2, 'v')},
  };
  std::string encoded;
  for (const auto& [k, v] : pairs) append_user_property(encoded, k, v);
  EXPECT_EQ(test::user_properties_of(encoded), pairs);

  Publish p;
  p.topic = "t";
  p.properties.user_properties = encoded;
  const std::string wire = encode_packet(p, Version::v5);
  auto d = decode_as<Publish>(wire, Version::v5);
  EXPECT_EQ(test::user_properties_of(d.properties.user_properties), pairs);
  EXPECT_EQ(d.properties.user_properties, encoded);
}

TEST(Properties, SubscriptionIdentifiersIterate) {
  const std::vector<std::uint32_t> ids = {1, 127, 128, 16383, 16384, 2097151, 2097152, 268435455};
  std::string encoded;
  for (std::uint32_t id : ids) append_subscription_identifier(encoded, id);
  EXPECT_EQ(encoded.substr(0, 4), bytes({0x0B, 0x01, 0x0B, 0x7F}));
  EXPECT_EQ(test::subscription_identifiers_of(encoded), ids);

  Publish p;
  p.topic = "t";
  p.properties.subscription_identifiers = encoded;
  const std::string wire = encode_packet(p, Version::v5);
  auto d = decode_as<Publish>(wire, Version::v5);
  EXPECT_EQ(test::subscription_identifiers_of(d.properties.subscription_identifiers), ids);
}

// User properties and subscription identifiers interleaved with other properties:
// the views span the other properties, the iterators skip them, and the encoder copies
// only the repeated kind so nothing is written twice.
const std::string kInterleaved = bytes({
    0x30,                                    // PUBLISH QoS 0
    0x1B,                                    // remaining length 27
    0x00, 0x01, 't',                         // topic "t"
    0x16,                                    // property length 22
    0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b',  //   user property a=b
    0x0B, 0x01,                              //   subscription identifier 1
    0x23, 0x00, 0x04,                        //   topic alias 4
    0x26, 0x00, 0x01, 'c', 0x00, 0x01, 'd',  //   user property c=d
    0x0B, 0x80, 0x01,                        //   subscription identifier 128
    'p',                                     // payload
});

TEST(Properties, InterleavedRepeatedPropertiesDecode) {
  auto p = decode_as<Publish>(kInterleaved, Version::v5);
  EXPECT_EQ(p.properties.topic_alias, 4);
  EXPECT_EQ(test::user_properties_of(p.properties.user_properties), (test::StringPairs{{"a", "b"}, {"c", "d"}}));
  EXPECT_EQ(test::subscription_identifiers_of(p.properties.subscription_identifiers),
            (std::vector<std::uint32_t>{1, 128}));
  EXPECT_EQ(p.properties.user_properties.size(), 19u);  // first to last user property
  EXPECT_EQ(p.payload, "p");
}

TEST(Properties, InterleavedRepeatedPropertiesReencodeOnce) {
  auto p = decode_as<Publish>(kInterleaved, Version::v5);
  const std::string wire = encode_packet(p, Version::v5);
  EXPECT_EQ(wire, bytes({
                      0x30,                                    // PUBLISH QoS 0
                      0x1B,                                    // remaining length 27
                      0x00, 0x01, 't',                         // topic "t"
                      0x16,                                    // property length 22
                      0x0B, 0x01,                              //   subscription identifier 1
                      0x0B, 0x80, 0x01,                        //   subscription identifier 128
                      0x23, 0x00, 0x04,                        //   topic alias 4
                      0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b',  //   user property a=b
                      0x26, 0x00, 0x01, 'c', 0x00, 0x01, 'd',  //   user property c=d
                      'p',                                     // payload
                  }));
  auto again = decode_as<Publish>(wire, Version::v5);
  EXPECT_EQ(again.properties.topic_alias, 4);
}

TEST(Properties, IteratorsStopAtGarbage) {
  int calls = 0;
  for_each_user_property(bytes({0x26, 0x00, 0x05, 'a'}), [&](std::string_view, std::string_view) { ++calls; });
  for_each_user_property(bytes({0x7F, 0x26}), [&](std::string_view, std::string_view) { ++calls; });
  for_each_subscription_identifier(bytes({0x0B, 0x80}), [&](std::uint32_t) { ++calls; });
  for_each_subscription_identifier(bytes({0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}), [&](std::uint32_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(Properties, NotWrittenIn311) {
  Subscribe s{1, {{"t", {}}}, {}};
  std::string ids;
  append_subscription_identifier(ids, 3);
  s.properties.subscription_identifiers = ids;
  EXPECT_EQ(encode_packet(s, Version::v311), bytes({0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x00}));
}

}  // namespace
}  // namespace tern::mqtt
