// Framing (§2.1, §1.5.5): fixed header, remaining length, size limit; and the
// encoded_size contract for every packet kind.
#include <gtest/gtest.h>

#include <string>

#include "mqtt/codec.hpp"
#include "mqtt/codec_test_support.hpp"

namespace tern::mqtt {
namespace {

using test::bytes;
using test::decode_error;
using test::encode_packet;

constexpr std::uint32_t kNoLimit = 268435455;

TEST(Frame, EmptyBufferNeedsMoreBytes) {
  auto f = parse_frame("", kNoLimit);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->size, 0u);
}

TEST(Frame, CompletePacketIsFramed) {
  const std::string wire = bytes({
      0xC0,  // PINGREQ, flags 0
      0x00,  // remaining length 0
  });
  auto f = parse_frame(wire, kNoLimit);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->size, 2u);
  EXPECT_EQ(f->type(), PacketType::pingreq);
  EXPECT_EQ(f->flags(), 0);
  EXPECT_TRUE(f->body.empty());
}

TEST(Frame, FlagsAndBodyAreExposed) {
  const std::string wire = bytes({
      0x62,        // PUBREL, flags 0x2
      0x02,        // remaining length 2
      0x12, 0x34,  // packet id
  });
  auto f = parse_frame(wire, kNoLimit);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->type(), PacketType::pubrel);
  EXPECT_EQ(f->flags(), 0x2);
  EXPECT_EQ(f->body, bytes({0x12, 0x34}));
  EXPECT_EQ(f->body.data(), wire.data() + 2);  // a view into the buffer, not a copy
}

TEST(Frame, PartialFixedHeaderNeedsMoreBytes) {
  for (const std::string& prefix : {bytes({0x30}), bytes({0x30, 0x80}), bytes({0x30, 0x80, 0x80}),
                                    bytes({0x30, 0xFF, 0xFF, 0xFF})}) {
    auto f = parse_frame(prefix, kNoLimit);
    ASSERT_TRUE(f.has_value()) << prefix.size();
    EXPECT_EQ(f->size, 0u);
  }
}

TEST(Frame, PartialBodyNeedsMoreBytes) {
  const std::string wire = bytes({
      0x30,                 // PUBLISH QoS 0
      0x05,                 // remaining length 5
      0x00, 0x01, 't', 'p'  // one byte short
  });
  auto f = parse_frame(wire, kNoLimit);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->size, 0u);
}

TEST(Frame, RemainingLengthOverFourBytesIsMalformed) {
  const std::string wire = bytes({
      0x30,                          // PUBLISH
      0xFF, 0xFF, 0xFF, 0xFF, 0x01,  // five length bytes: the fourth still continues
  });
  auto f = parse_frame(wire, kNoLimit);
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().code, ReasonCode::malformed_packet);
  // Known as soon as the fourth byte says "more": no need to wait for the fifth.
  auto g = parse_frame(wire.substr(0, 5), kNoLimit);
  ASSERT_FALSE(g.has_value());
  EXPECT_EQ(g.error().code, ReasonCode::malformed_packet);
}

TEST(Frame, NonMinimalRemainingLengthIsMalformed) {
  const std::string wire = bytes({
      0xC0,        // PINGREQ
      0x80, 0x00,  // 0 written in two bytes
  });
  auto f = parse_frame(wire, kNoLimit);
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().code, ReasonCode::malformed_packet);
}

TEST(Frame, PacketTypeZeroIsMalformed) {
  for (const std::string& wire : {bytes({0x00}), bytes({0x00, 0x00}), bytes({0x0F, 0x00})}) {
    auto f = parse_frame(wire, kNoLimit);
    ASSERT_FALSE(f.has_value());
    EXPECT_EQ(f.error().code, ReasonCode::malformed_packet);
  }
}

TEST(Frame, OversizeIsReportedFromTheFixedHeaderAlone) {
  const std::string header = bytes({
      0x30,              // PUBLISH
      0xFF, 0xFF, 0x7F,  // remaining length 2097151, no body yet
  });
  auto f = parse_frame(header, 1024);
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().code, ReasonCode::packet_too_large);
  // The largest remaining length against the largest limit: 1 + 4 + 268435455 bytes.
  auto g = parse_frame(bytes({0x30, 0xFF, 0xFF, 0xFF, 0x7F}), kNoLimit);
  ASSERT_FALSE(g.has_value());
  EXPECT_EQ(g.error().code, ReasonCode::packet_too_large);
}

TEST(Frame, LimitCountsTheFixedHeader) {
  const std::string wire = bytes({
      0x30,              // PUBLISH QoS 0 (3.1.1: no property length)
      0x04,              // remaining length 4
      0x00, 0x01, 't',   // topic "t"
      'x',               // payload
  });
  ASSERT_EQ(wire.size(), 6u);
  auto exact = parse_frame(wire, 6);
  ASSERT_TRUE(exact.has_value());
  EXPECT_EQ(exact->size, 6u);
  auto over = parse_frame(wire, 5);
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(over.error().code, ReasonCode::packet_too_large);
  EXPECT_EQ(decode_error(wire, Version::v311), ReasonCode::success);
  auto small = decode_one(wire, Version::v311, 5);
  ASSERT_FALSE(small.has_value());
  EXPECT_EQ(small.error().code, ReasonCode::packet_too_large);
}

TEST(Frame, ManyPacketsInOneBuffer) {
  const std::string wire = bytes({
      0xC0, 0x00,              // PINGREQ
      0x40, 0x02, 0x00, 0x07,  // PUBACK id 7
      0xE0,                    // DISCONNECT, incomplete
  });
  std::string_view rest = wire;
  auto a = parse_frame(rest, kNoLimit);
  ASSERT_TRUE(a.has_value());
  ASSERT_EQ(a->size, 2u);
  rest.remove_prefix(a->size);
  auto b = parse_frame(rest, kNoLimit);
  ASSERT_TRUE(b.has_value());
  ASSERT_EQ(b->size, 4u);
  EXPECT_EQ(b->type(), PacketType::puback);
  auto ack = decode(*b, Version::v311);
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(std::get<PubAck>(*ack).packet_id, 7);
  rest.remove_prefix(b->size);
  auto c = parse_frame(rest, kNoLimit);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->size, 0u);
}

TEST(Frame, DecodeOneRejectsTruncatedAndTrailingBytes) {
  for (const std::string& wire : {bytes({0x40, 0x02, 0x00}), bytes({0xC0, 0x00, 0x00}), std::string()}) {
    auto r = decode_one(wire, Version::v5);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ReasonCode::malformed_packet);
  }
}

struct VarintCase {
  std::uint32_t value;
  std::string wire;
};

TEST(Varint, BoundariesEncodeAsTheSpecificationTables) {
  // §1.5.5: the one- to four-byte ranges and their first and last values.
  const VarintCase cases[] = {
      {0, bytes({0x00})},
      {127, bytes({0x7F})},
      {128, bytes({0x80, 0x01})},
      {16383, bytes({0xFF, 0x7F})},
      {16384, bytes({0x80, 0x80, 0x01})},
      {2097151, bytes({0xFF, 0xFF, 0x7F})},
      {2097152, bytes({0x80, 0x80, 0x80, 0x01})},
      {268435455, bytes({0xFF, 0xFF, 0xFF, 0x7F})},
  };
  for (const VarintCase& c : cases) {
    std::string out;
    append_varint(out, c.value);
    EXPECT_EQ(out, c.wire) << c.value;
    EXPECT_EQ(varint_size(c.value), c.wire.size()) << c.value;
  }
}

TEST(Varint, BoundariesAsRemainingLength) {
  for (std::uint32_t length : {0u, 127u, 128u, 16383u, 16384u, 2097151u, 2097152u}) {
    std::string wire(1, '\x30');  // PUBLISH QoS 0; only framing is tested here
    append_varint(wire, length);
    const std::size_t header = wire.size();
    wire.append(length, 'x');
    auto f = parse_frame(wire, kNoLimit);
    ASSERT_TRUE(f.has_value()) << length;
    EXPECT_EQ(f->size, header + length) << length;
    EXPECT_EQ(f->body.size(), length);
    // One byte short: not yet a frame.
    auto g = parse_frame(std::string_view(wire).substr(0, wire.size() - 1), kNoLimit);
    ASSERT_TRUE(g.has_value());
    if (length > 0) {
      EXPECT_EQ(g->size, 0u) << length;
    }
  }
  // The maximum: the header alone is complete and announces 268435455 bytes.
  auto max = parse_frame(bytes({0x30, 0xFF, 0xFF, 0xFF, 0x7F}), 268435460);
  ASSERT_TRUE(max.has_value());
  EXPECT_EQ(max->size, 0u);
}

TEST(PacketType, EveryAlternativeReportsItsType) {
  EXPECT_EQ(packet_type(Connect{}), PacketType::connect);
  EXPECT_EQ(packet_type(Connack{}), PacketType::connack);
  EXPECT_EQ(packet_type(Publish{}), PacketType::publish);
  EXPECT_EQ(packet_type(PubAck{PacketType::pubrec, 1, {}, {}}), PacketType::pubrec);
  EXPECT_EQ(packet_type(Subscribe{}), PacketType::subscribe);
  EXPECT_EQ(packet_type(Suback{}), PacketType::suback);
  EXPECT_EQ(packet_type(Unsubscribe{}), PacketType::unsubscribe);
  EXPECT_EQ(packet_type(Unsuback{}), PacketType::unsuback);
  EXPECT_EQ(packet_type(Pingreq{}), PacketType::pingreq);
  EXPECT_EQ(packet_type(Pingresp{}), PacketType::pingresp);
  EXPECT_EQ(packet_type(Disconnect{}), PacketType::disconnect);
  EXPECT_EQ(packet_type(Auth{}), PacketType::auth);
}

// encoded_size must equal the bytes encode appends, for every packet kind, both versions,
// with and without properties, and across the remaining-length size steps.
TEST(EncodedSize, MatchesTheBytesAppended) {
  std::string user;
  append_user_property(user, "k", "v");
  std::string ids;
  append_subscription_identifier(ids, 300);
  Properties props;
  props.reason_string = "why";
  props.user_properties = user;
  Properties publish_props;
  publish_props.message_expiry_interval = 5;
  publish_props.subscription_identifiers = ids;
  publish_props.user_properties = user;
  const std::string big(20000, 'p');

  Connect connect;
  connect.client_id = "client";
  connect.username = "u";
  connect.password = "p";
  connect.will = Will{"w/t", "bye", QoS::exactly_once, true, {}};
  connect.properties.session_expiry_interval = 30;
  Connect connect311 = connect;
  connect311.version = Version::v311;

  std::vector<Packet> packets = {
      connect,
      connect311,
      Connack{true, ReasonCode::success, props},
      Connack{false, ReasonCode::not_authorized, {}},
      Publish{"a/b", "x", QoS::at_most_once, false, false, 0, {}},
      Publish{"a/b", big, QoS::at_least_once, true, true, 9, publish_props},
      Publish{"a", std::string_view(big).substr(0, 100), QoS::exactly_once, false, false, 1, {}},
      PubAck{PacketType::puback, 1, ReasonCode::success, {}},
      PubAck{PacketType::pubrec, 2, ReasonCode::no_matching_subscribers, {}},
      PubAck{PacketType::pubrel, 3, ReasonCode::success, props},
      PubAck{PacketType::pubcomp, 4, ReasonCode::packet_identifier_not_found, props},
      Subscribe{5, {{"a/#", {QoS::at_least_once, true, true, RetainHandling::do_not_send}}}, {}},
      Suback{6, {ReasonCode::granted_qos1, ReasonCode::unspecified_error}, props},
      Unsubscribe{7, {"a/+", "b"}, props},
      Unsuback{8, {ReasonCode::success}, props},
      Pingreq{},
      Pingresp{},
      Disconnect{},
      Disconnect{ReasonCode::server_shutting_down, {}},
      Disconnect{ReasonCode::success, props},
      Auth{},
      Auth{ReasonCode::continue_authentication, props},
  };
  for (Version version : {Version::v311, Version::v5}) {
    for (const Packet& p : packets) {
      std::string out;
      encode(p, version, out);
      EXPECT_EQ(out.size(), encoded_size(p, version)) << static_cast<int>(packet_type(p));
      auto f = parse_frame(out, kNoLimit);
      ASSERT_TRUE(f.has_value());
      EXPECT_EQ(f->size, out.size()) << "remaining length must cover exactly the body";
    }
  }
}

}  // namespace
}  // namespace tern::mqtt
