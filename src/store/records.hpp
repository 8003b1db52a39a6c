// The byte formats of the store's blob columns, and the checks a row read back from disk
// must pass before the broker sees it.
//
// A database file is input like any other: a bit flip, a foreign writer or a bug in an
// older version can put anything in a column. Decoders here check every length and value
// and return nullopt instead of trusting the bytes, so a bad row is skipped, never
// crashes the broker. They are pure functions (a fuzz target can call them directly).
//
// Formats (all integers big-endian):
//   subscriptions:    u8 format (1), then per subscription: u16 filter length, filter,
//                     u8 options (the MQTT 5 SUBSCRIBE options byte: bits 0-1 QoS,
//                     2 no local, 3 retain as published, 4-5 retain handling),
//                     u32 subscription identifier (0: none)
//   subscription ids: u32 per identifier
//   user properties:  the MQTT 5 property bytes, as in mqtt::Properties::user_properties
//
// Thread-safety: pure functions, callable from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/store.hpp"

namespace tern::store::records {

inline constexpr std::uint8_t kSubscriptionsFormat = 1;
inline constexpr std::uint32_t kMaxSubscriptionId = 268'435'455;

std::string encode_subscriptions(const std::vector<broker::StoredSubscription>& subscriptions);
std::optional<std::vector<broker::StoredSubscription>> decode_subscriptions(std::string_view bytes);

std::string encode_subscription_ids(const std::vector<std::uint32_t>& ids);
std::optional<std::vector<std::uint32_t>> decode_subscription_ids(std::string_view bytes);

// Whether `bytes` is a well-formed run of MQTT 5 properties whose user properties hold
// valid UTF-8 strings: what the broker's encoder may copy to the wire as it is.
bool valid_user_properties(std::string_view bytes);

// A subscription filter as the broker stores it: a topic filter, or
// "$share/{group}/{filter}".
bool valid_stored_filter(std::string_view filter);

}  // namespace tern::store::records
