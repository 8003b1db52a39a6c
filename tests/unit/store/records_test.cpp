// The blob formats: what is encoded decodes to the same, and malformed bytes are refused.
#include "store/records.hpp"

#include <gtest/gtest.h>

namespace tern::store::records {
namespace {

TEST(StoreRecords, SubscriptionsRoundTrip) {
  std::vector<broker::StoredSubscription> subs = {
      {"a/+/c", {mqtt::QoS::exactly_once, true, false, mqtt::RetainHandling::do_not_send}, kMaxSubscriptionId},
      {"$share/g/#", {mqtt::QoS::at_most_once, false, true, mqtt::RetainHandling::send_if_new}, 0},
  };
  const std::string bytes = encode_subscriptions(subs);
  // format, then u16 length 5, "a/+/c", options 0b0010'0110, id 0x0FFFFFFF
  EXPECT_EQ(bytes.substr(0, 12), std::string("\x01\x00\x05" "a/+/c" "\x26\x0f\xff\xff\xff", 13).substr(0, 12));
  const auto back = decode_subscriptions(bytes);
  ASSERT_TRUE(back.has_value());
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0].filter, "a/+/c");
  EXPECT_EQ((*back)[0].options.qos, mqtt::QoS::exactly_once);
  EXPECT_TRUE((*back)[0].options.no_local);
  EXPECT_EQ((*back)[0].options.retain_handling, mqtt::RetainHandling::do_not_send);
  EXPECT_EQ((*back)[0].subscription_id, kMaxSubscriptionId);
  EXPECT_EQ((*back)[1].filter, "$share/g/#");
  EXPECT_TRUE((*back)[1].options.retain_as_published);
  EXPECT_TRUE(decode_subscriptions(encode_subscriptions({})).has_value());
}

TEST(StoreRecords, MalformedSubscriptionsAreRefused) {
  using namespace std::string_literals;
  EXPECT_FALSE(decode_subscriptions(""));
  EXPECT_FALSE(decode_subscriptions("\x02"s));                                  // unknown format
  EXPECT_FALSE(decode_subscriptions("\x01\x00"s));                              // cut length
  EXPECT_FALSE(decode_subscriptions("\x01\x00\x05" "a/b"s));                    // cut filter
  EXPECT_FALSE(decode_subscriptions("\x01\x00\x01" "a\x03\x00\x00\x00\x00"s));  // QoS 3
  EXPECT_FALSE(decode_subscriptions("\x01\x00\x01" "a\x30\x00\x00\x00\x00"s));  // retain handling 3
  EXPECT_FALSE(decode_subscriptions("\x01\x00\x01" "a\x40\x00\x00\x00\x00"s));  // reserved bit
  EXPECT_FALSE(decode_subscriptions("\x01\x00\x01" "a\x00\x10\x00\x00\x00"s));  // id too large
  EXPECT_FALSE(decode_subscriptions("\x01\x00\x01" "#\x00\x00\x00\x00"s));      // cut id
  EXPECT_FALSE(decode_subscriptions("\x01\x00\x03" "a#b\x00\x00\x00\x00\x00"s));  // bad filter
  EXPECT_FALSE(decode_subscriptions("\x01\x00\x08" "$share/g\x00\x00\x00\x00\x00"s));  // share without filter
  EXPECT_TRUE(decode_subscriptions("\x01\x00\x01" "#\x00\x00\x00\x00\x00"s));
}

TEST(StoreRecords, SubscriptionIdsRoundTripAndRefuseGarbage) {
  const std::vector<std::uint32_t> ids = {1, 300, kMaxSubscriptionId};
  EXPECT_EQ(decode_subscription_ids(encode_subscription_ids(ids)), ids);
  EXPECT_EQ(decode_subscription_ids(""), std::vector<std::uint32_t>{});
  EXPECT_FALSE(decode_subscription_ids(std::string("\x00\x00\x01", 3)));
  EXPECT_FALSE(decode_subscription_ids(std::string("\x00\x00\x00\x00", 4)));  // 0 is not an identifier
  EXPECT_FALSE(decode_subscription_ids(std::string("\x10\x00\x00\x00", 4)));
}

TEST(StoreRecords, UserPropertiesMustBeWellFormedUtf8Pairs) {
  std::string good;
  mqtt::append_user_property(good, "k", "v");
  mqtt::append_user_property(good, "", "");
  EXPECT_TRUE(valid_user_properties(good));
  EXPECT_TRUE(valid_user_properties(""));
  EXPECT_FALSE(valid_user_properties(good.substr(0, good.size() - 1)));
  EXPECT_FALSE(valid_user_properties(std::string("\x26\x00\x01\xff\x00\x00", 6)));  // invalid UTF-8 key
  EXPECT_FALSE(valid_user_properties(std::string("\x7f\x00", 2)));                  // unknown property
}

TEST(StoreRecords, QueueEntryBytesFollowTheDocumentedLayout) {
  broker::QueuedRecord r;
  r.qos = mqtt::QoS::at_least_once;
  r.retain = true;
  r.stage = broker::QueuedRecord::Stage::awaiting_puback;
  r.packet_id = 0x0102;
  r.subscription_ids = {7};
  auto m = std::make_shared<broker::Message>();
  m->topic = "a/b";
  m->payload = std::string(200, 'p');  // a two-byte length
  m->qos = mqtt::QoS::exactly_once;
  m->payload_format_indicator = 1;
  r.message = m;
  const std::string bytes = encode_queue_entry(r, 0x0102030405060708);
  const std::string head("\x01"        // format
                         "\x01\x01\x01"  // qos, retain, stage
                         "\x01\x02"      // packet id
                         "\x43"          // message, payload format, expiry
                         "\x01\x00\x00\x00\x07"  // one subscription id: 7
                         "\x02\x00"      // message qos 2, not retained
                         "\x03" "a/b"
                         "\xc8\x01",     // payload length 200 as a varint
                         20);
  EXPECT_EQ(bytes.substr(0, head.size()), head);
  EXPECT_EQ(bytes.substr(head.size(), 200), std::string(200, 'p'));
  EXPECT_EQ(bytes.substr(head.size() + 200), std::string("\x01\x01\x02\x03\x04\x05\x06\x07\x08", 9));
}

TEST(StoreRecords, QueueEntriesRoundTrip) {
  using Stage = broker::QueuedRecord::Stage;
  broker::QueuedRecord full;
  full.qos = mqtt::QoS::exactly_once;
  full.stage = Stage::awaiting_pubrec;
  full.packet_id = 65535;
  full.subscription_ids = {1, kMaxSubscriptionId};
  auto m = std::make_shared<broker::Message>();
  m->topic = "plant/line-1";
  m->payload = std::string("\x00\xff", 2);
  m->qos = mqtt::QoS::at_least_once;
  m->retain = true;
  m->content_type = "text/plain";
  m->response_topic = "replies";
  m->correlation_data = std::string("\x00x", 2);
  mqtt::append_user_property(m->user_properties, "k", "v");
  full.message = m;
  std::string problem;
  auto back = decode_queue_entry(encode_queue_entry(full, -5), problem);
  ASSERT_TRUE(back.has_value()) << problem;
  EXPECT_EQ(back->record.qos, full.qos);
  EXPECT_EQ(back->record.stage, full.stage);
  EXPECT_EQ(back->record.packet_id, 65535);
  EXPECT_FALSE(back->record.retain);
  EXPECT_EQ(back->record.subscription_ids, full.subscription_ids);
  EXPECT_EQ(back->expires_at_ms, -5);
  ASSERT_NE(back->record.message, nullptr);
  const broker::Message& got = *back->record.message;
  EXPECT_EQ(got.topic, m->topic);
  EXPECT_EQ(got.payload, m->payload);
  EXPECT_EQ(got.qos, m->qos);
  EXPECT_TRUE(got.retain);
  EXPECT_FALSE(got.payload_format_indicator.has_value());
  EXPECT_EQ(got.content_type, m->content_type);
  EXPECT_EQ(got.response_topic, m->response_topic);
  EXPECT_EQ(got.correlation_data, m->correlation_data);
  EXPECT_EQ(got.user_properties, m->user_properties);

  broker::QueuedRecord pubcomp;  // only the packet id matters
  pubcomp.qos = mqtt::QoS::exactly_once;
  pubcomp.stage = Stage::awaiting_pubcomp;
  pubcomp.packet_id = 9;
  back = decode_queue_entry(encode_queue_entry(pubcomp, std::nullopt), problem);
  ASSERT_TRUE(back.has_value()) << problem;
  EXPECT_EQ(back->record.message, nullptr);
  EXPECT_FALSE(back->expires_at_ms.has_value());
}

TEST(StoreRecords, MalformedQueueEntriesAreRefusedWithAReason) {
  broker::QueuedRecord r;
  auto m = std::make_shared<broker::Message>();
  m->topic = "t";
  m->payload = "x";
  r.message = m;
  const std::string good = encode_queue_entry(r, std::nullopt);
  std::string problem;
  ASSERT_TRUE(decode_queue_entry(good, problem).has_value()) << problem;
  auto refused = [&](std::string bytes, std::string_view why) {
    problem.clear();
    EXPECT_FALSE(decode_queue_entry(bytes, problem).has_value());
    EXPECT_EQ(problem, why);
  };
  // Every proper prefix is truncated.
  for (std::size_t n = 1; n < good.size(); ++n) {
    problem.clear();
    EXPECT_FALSE(decode_queue_entry(good.substr(0, n), problem).has_value()) << n;
    EXPECT_FALSE(problem.empty());
  }
  refused("", "unknown queue entry format");
  refused(std::string(1, '\0'), "unknown queue entry format");
  refused(good + "x", "queue entry is malformed");
  auto with = [&](std::size_t at, char c) {
    std::string b = good;
    b[at] = c;
    return b;
  };
  refused(with(1, 3), "qos out of range");
  refused(with(2, 2), "retain out of range");
  refused(with(3, 4), "stage out of range");
  refused(with(3, 1), "stage, qos and packet id disagree");  // awaiting PUBACK with packet id 0
  refused(with(6, '\x80'), "unknown fields in queue entry");
  refused(with(6, 0), "no message");
  refused(with(8, 3), "message qos out of range");
  refused(with(11, '#'), "topic is not a valid topic name");
  refused(with(11, '\xff'), "topic is not a valid topic name");
  refused(with(7, 100), "subscription ids are malformed");  // more ids than bytes
}

}  // namespace
}  // namespace tern::store::records
