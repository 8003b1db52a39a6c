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

}  // namespace
}  // namespace tern::store::records
