// PUBLISH (3.1.1 §3.3, 5.0 §3.3).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "mqtt/codec.hpp"
#include "mqtt/codec_test_support.hpp"

// Counts heap allocations while a test asks for it, to check that decoding PUBLISH
// allocates nothing. Replacing the global operator new is the only way to observe this
// from outside the codec; it counts and otherwise behaves as the default.
namespace {
std::atomic<bool> g_counting{false};
std::atomic<int> g_allocations{0};
}  // namespace

[[gnu::noinline]] void* operator new(std::size_t size) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace tern::mqtt {
namespace {

using test::bytes;
using test::decode_as;
using test::decode_error;
using test::encode_packet;

const std::string kQos0 = bytes({
    0x30,                          // PUBLISH, DUP 0, QoS 0, RETAIN 0
    0x0A,                          // remaining length 10
    0x00, 0x03, 'a', '/', 'b',     // topic "a/b"
    'h', 'e', 'l', 'l', 'o',       // payload
});

TEST(Publish311, QoS0Decodes) {
  auto p = decode_as<Publish>(kQos0, Version::v311);
  EXPECT_EQ(p.topic, "a/b");
  EXPECT_EQ(p.payload, "hello");
  EXPECT_EQ(p.qos, QoS::at_most_once);
  EXPECT_FALSE(p.retain);
  EXPECT_FALSE(p.dup);
  EXPECT_EQ(p.packet_id, 0);
  // Views into the buffer, not copies.
  EXPECT_EQ(p.topic.data(), kQos0.data() + 4);
  EXPECT_EQ(p.payload.data(), kQos0.data() + 7);
}

TEST(Publish311, QoS0Encodes) {
  Publish p;
  p.topic = "a/b";
  p.payload = "hello";
  EXPECT_EQ(encode_packet(p, Version::v311), kQos0);
}

TEST(Publish311, QoS1RetainDup) {
  const std::string wire = bytes({
      0x3B,              // PUBLISH, DUP 1, QoS 1, RETAIN 1
      0x06,              // remaining length 6
      0x00, 0x01, 't',   // topic "t"
      0x12, 0x34,        // packet id 0x1234
      'x',               // payload
  });
  auto p = decode_as<Publish>(wire, Version::v311);
  EXPECT_TRUE(p.dup);
  EXPECT_TRUE(p.retain);
  EXPECT_EQ(p.qos, QoS::at_least_once);
  EXPECT_EQ(p.packet_id, 0x1234);
  EXPECT_EQ(p.payload, "x");
  EXPECT_EQ(encode_packet(p, Version::v311), wire);
}

TEST(Publish311, QoS2EmptyPayload) {
  const std::string wire = bytes({
      0x34,              // PUBLISH, QoS 2
      0x05,              // remaining length 5
      0x00, 0x01, 't',   // topic "t"
      0x00, 0x01,        // packet id 1
  });
  auto p = decode_as<Publish>(wire, Version::v311);
  EXPECT_EQ(p.qos, QoS::exactly_once);
  EXPECT_TRUE(p.payload.empty());
  EXPECT_EQ(encode_packet(p, Version::v311), wire);
}

TEST(Publish, QoS3IsMalformed) {
  const std::string wire = bytes({0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01});  // QoS bits 11
  EXPECT_EQ(decode_error(wire, Version::v311), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(wire, Version::v5), ReasonCode::malformed_packet);
}

TEST(Publish, DupOnQoS0IsMalformed) {
  const std::string v311 = bytes({0x38, 0x03, 0x00, 0x01, 't'});              // DUP 1, QoS 0
  const std::string v5 = bytes({0x38, 0x04, 0x00, 0x01, 't', 0x00});         // same, property length 0
  EXPECT_EQ(decode_error(v5, Version::v5), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(v311, Version::v311), ReasonCode::malformed_packet);
}

TEST(Publish, TopicWithInvalidUtf8IsMalformed) {
  const std::string wire = bytes({
      0x30, 0x04,              // PUBLISH QoS 0, remaining length 4
      0x00, 0x02, 0xC3, 0x28,  // topic: a two-byte lead followed by a non-continuation byte
  });
  EXPECT_EQ(decode_error(wire, Version::v311), ReasonCode::malformed_packet);
  const std::string surrogate = bytes({
      0x30, 0x05,                    // PUBLISH QoS 0, remaining length 5
      0x00, 0x03, 0xED, 0xA0, 0x80,  // topic: U+D800, a surrogate
  });
  EXPECT_EQ(decode_error(surrogate, Version::v311), ReasonCode::malformed_packet);
}

TEST(Publish, TopicWithNulIsMalformed) {
  const std::string wire = bytes({
      0x30, 0x05,                 // PUBLISH QoS 0, remaining length 5
      0x00, 0x03, 'a', 0x00, 'b',  // topic "a\0b"
  });
  EXPECT_EQ(decode_error(wire, Version::v311), ReasonCode::malformed_packet);
}

TEST(Publish, WildcardsInTopicAreInvalid) {
  for (const std::string& topic : {std::string("a/+"), std::string("#"), std::string("a/#"), std::string("+")}) {
    std::string wire = bytes({0x30, static_cast<int>(2 + topic.size()), 0x00, static_cast<int>(topic.size())});
    wire += topic;
    EXPECT_EQ(decode_error(wire, Version::v311), ReasonCode::topic_name_invalid) << topic;
  }
}

TEST(Publish, PacketIdZeroIsProtocolError) {
  const std::string wire = bytes({
      0x32, 0x05,        // PUBLISH QoS 1, remaining length 5
      0x00, 0x01, 't',   // topic
      0x00, 0x00,        // packet id 0
  });
  EXPECT_EQ(decode_error(wire, Version::v311), ReasonCode::protocol_error);
}

TEST(Publish, TruncatedTopicOrPacketIdIsMalformed) {
  EXPECT_EQ(decode_error(bytes({0x30, 0x03, 0x00, 0x05, 'a'}), Version::v311), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(bytes({0x32, 0x04, 0x00, 0x01, 't', 0x01}), Version::v311), ReasonCode::malformed_packet);
  EXPECT_EQ(decode_error(bytes({0x30, 0x01, 0x00}), Version::v311), ReasonCode::malformed_packet);
}

TEST(Publish311, EmptyTopicIsProtocolError) {
  EXPECT_EQ(decode_error(bytes({0x30, 0x02, 0x00, 0x00}), Version::v311), ReasonCode::protocol_error);
}

const std::string kProps5 = bytes({
    0x32,                                    // PUBLISH, QoS 1
    0x2F,                                    // remaining length 47
    0x00, 0x03, 'a', '/', 'b',               // topic "a/b"
    0x00, 0x07,                              // packet id 7
    0x25,                                    // property length 37
    0x01, 0x01,                              //   payload format indicator: UTF-8
    0x02, 0x00, 0x00, 0x00, 0x3C,            //   message expiry interval 60
    0x03, 0x00, 0x04, 't', 'e', 'x', 't',    //   content type "text"
    0x08, 0x00, 0x03, 'r', '/', 't',         //   response topic "r/t"
    0x09, 0x00, 0x02, 0xDE, 0xAD,            //   correlation data
    0x0B, 0x05,                              //   subscription identifier 5
    0x23, 0x00, 0x05,                        //   topic alias 5
    0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b',  //   user property a=b
    'h', 'i',                                // payload
});

TEST(Publish5, PropertiesDecode) {
  auto p = decode_as<Publish>(kProps5, Version::v5);
  EXPECT_EQ(p.topic, "a/b");
  EXPECT_EQ(p.packet_id, 7);
  EXPECT_EQ(p.payload, "hi");
  const Properties& pr = p.properties;
  EXPECT_EQ(pr.payload_format_indicator, 1);
  EXPECT_EQ(pr.message_expiry_interval, 60u);
  EXPECT_EQ(pr.content_type, "text");
  EXPECT_EQ(pr.response_topic, "r/t");
  EXPECT_EQ(pr.correlation_data, bytes({0xDE, 0xAD}));
  EXPECT_EQ(pr.topic_alias, 5);
  EXPECT_EQ(test::subscription_identifiers_of(pr.subscription_identifiers), (std::vector<std::uint32_t>{5}));
  EXPECT_EQ(test::user_properties_of(pr.user_properties), (test::StringPairs{{"a", "b"}}));
}

TEST(Publish5, PropertiesEncode) {
  std::string user;
  append_user_property(user, "a", "b");
  std::string ids;
  append_subscription_identifier(ids, 5);
  const std::string correlation = bytes({0xDE, 0xAD});
  Publish p;
  p.topic = "a/b";
  p.qos = QoS::at_least_once;
  p.packet_id = 7;
  p.payload = "hi";
  p.properties.payload_format_indicator = 1;
  p.properties.message_expiry_interval = 60;
  p.properties.content_type = "text";
  p.properties.response_topic = "r/t";
  p.properties.correlation_data = correlation;
  p.properties.subscription_identifiers = ids;
  p.properties.topic_alias = 5;
  p.properties.user_properties = user;
  EXPECT_EQ(encode_packet(p, Version::v5), kProps5);
}

TEST(Publish5, DecodingAllocatesNothing) {
  g_allocations = 0;
  g_counting = true;
  auto r = decode_one(kProps5, Version::v5);
  g_counting = false;
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(g_allocations.load(), 0);
}

TEST(Publish5, EmptyTopicNeedsATopicAlias) {
  const std::string with_alias = bytes({
      0x30, 0x06,        // PUBLISH QoS 0, remaining length 6
      0x00, 0x00,        // topic "" (the alias stands for it)
      0x03,              // property length 3
      0x23, 0x00, 0x02,  //   topic alias 2
  });
  auto p = decode_as<Publish>(with_alias, Version::v5);
  EXPECT_TRUE(p.topic.empty());
  EXPECT_EQ(p.properties.topic_alias, 2);
  EXPECT_EQ(decode_error(bytes({0x30, 0x03, 0x00, 0x00, 0x00}), Version::v5), ReasonCode::protocol_error);
}

TEST(Publish5, TopicAliasZeroIsTopicAliasInvalid) {
  const std::string wire = bytes({
      0x30, 0x07,        // PUBLISH QoS 0, remaining length 7
      0x00, 0x01, 't',   // topic "t"
      0x03,              // property length 3
      0x23, 0x00, 0x00,  //   topic alias 0
  });
  EXPECT_EQ(decode_error(wire, Version::v5), ReasonCode::topic_alias_invalid);
}

std::string publish5_with_properties(std::initializer_list<int> props) {
  return test::with_properties(0x30, bytes({0x00, 0x01, 't'}), bytes(props), "payload");
}

TEST(Publish5, PropertyErrors) {
  // Two content types.
  EXPECT_EQ(decode_error(publish5_with_properties({0x03, 0x00, 0x01, 'a', 0x03, 0x00, 0x01, 'b'}), Version::v5),
            ReasonCode::protocol_error);
  // Session expiry interval is not a PUBLISH property.
  EXPECT_EQ(decode_error(publish5_with_properties({0x11, 0x00, 0x00, 0x00, 0x01}), Version::v5),
            ReasonCode::malformed_packet);
  // 0x7F is no property at all.
  EXPECT_EQ(decode_error(publish5_with_properties({0x7F, 0x00}), Version::v5), ReasonCode::malformed_packet);
  // Subscription identifier 0.
  EXPECT_EQ(decode_error(publish5_with_properties({0x0B, 0x00}), Version::v5), ReasonCode::protocol_error);
  // Payload format indicator 2.
  EXPECT_EQ(decode_error(publish5_with_properties({0x01, 0x02}), Version::v5), ReasonCode::protocol_error);
  // Response topic with a wildcard.
  EXPECT_EQ(decode_error(publish5_with_properties({0x08, 0x00, 0x01, '#'}), Version::v5),
            ReasonCode::protocol_error);
  // Content type that is not UTF-8.
  EXPECT_EQ(decode_error(publish5_with_properties({0x03, 0x00, 0x01, 0xFF}), Version::v5),
            ReasonCode::malformed_packet);
  // A value cut short by the end of the property block.
  EXPECT_EQ(decode_error(publish5_with_properties({0x02, 0x00, 0x00}), Version::v5), ReasonCode::malformed_packet);
}

TEST(Publish5, PropertyLengthBeyondThePacketIsMalformed) {
  const std::string wire = bytes({
      0x30, 0x05,       // PUBLISH QoS 0, remaining length 5
      0x00, 0x01, 't',  // topic
      0x09,             // property length 9: more than is left
      0x01,
  });
  EXPECT_EQ(decode_error(wire, Version::v5), ReasonCode::malformed_packet);
}

TEST(Publish5, RepeatedSubscriptionIdentifiersAreAllowed) {
  const std::string p_wire = publish5_with_properties({0x0B, 0x01, 0x0B, 0x80, 0x01});
  auto p = decode_as<Publish>(p_wire, Version::v5);
  EXPECT_EQ(test::subscription_identifiers_of(p.properties.subscription_identifiers),
            (std::vector<std::uint32_t>{1, 128}));
}

TEST(Publish5, RoundTripQoS2) {
  std::string user;
  append_user_property(user, "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  append_user_property(user, "tern-id", "42");
  const std::string payload(300, '\x7F');
  Publish p;
  p.topic = "sensors/vibration/pump-3";
  p.payload = payload;
  p.qos = QoS::exactly_once;
  p.retain = true;
  p.packet_id = 65535;
  p.properties.message_expiry_interval = 0;
  p.properties.user_properties = user;
  const std::string wire = encode_packet(p, Version::v5);
  auto d = decode_as<Publish>(wire, Version::v5);
  EXPECT_EQ(d.topic, p.topic);
  EXPECT_EQ(d.payload, payload);
  EXPECT_EQ(d.qos, QoS::exactly_once);
  EXPECT_TRUE(d.retain);
  EXPECT_FALSE(d.dup);
  EXPECT_EQ(d.packet_id, 65535);
  EXPECT_EQ(d.properties.message_expiry_interval, 0u);
  EXPECT_EQ(d.properties.user_properties, user);
  EXPECT_EQ(encode_packet(d, Version::v5), wire);
}

TEST(Publish, PropertiesAreNotWrittenIn311) {
  Publish p;
  p.topic = "t";
  p.properties.content_type = "x";
  EXPECT_EQ(encode_packet(p, Version::v311), bytes({0x30, 0x03, 0x00, 0x01, 't'}));
}

}  // namespace
}  // namespace tern::mqtt
