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
//   queue entry:      one blob per queued or in-flight message (see below)
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

// Queue entry. Everything of a QueuedRecord but its key (client id, seq) in one blob, so
// that a queue row is its key and a single value: the fewest bytes per row on disk, and
// one parameter to bind on the writer's hot path. Lengths are LEB128 varints (7 bits a
// byte, least significant first, at most 5 bytes):
//   u8 format (1), u8 qos, u8 retain, u8 stage, u16 packet id, u8 presence bits
//   (0x01 message, 0x02 payload format, 0x04 content type, 0x08 response topic,
//   0x10 correlation data, 0x20 user properties, 0x40 expiry), varint subscription id
//   count, u32 per identifier;
//   when a message is present: u8 message qos, u8 message retain, varint topic length,
//   topic, varint payload length, payload, then the present optional fields in bit
//   order (u8 payload format; varint length and bytes for the strings, correlation data
//   and user properties; i64 expiry in wall-clock Unix milliseconds).
// A message's origin client id is not kept: only routing (no local) needs it, and a
// queued message has been routed.
inline constexpr std::uint8_t kQueueEntryFormat = 1;

// `expires_at_ms`: the message's expiry on the wall clock, when it has one.
std::string encode_queue_entry(const broker::QueuedRecord& record, std::optional<std::int64_t> expires_at_ms);

struct QueueEntry {
  broker::QueuedRecord record;  // client_id and seq are left empty: they are the row's key
  std::optional<std::int64_t> expires_at_ms;  // of record.message, wall clock
};
// Checks what the broker relies on: values in range, the stage, QoS and packet id telling
// one consistent story, a message unless only the packet id matters (awaiting PUBCOMP),
// UTF-8 strings, a valid topic name, well-formed user properties. On failure `problem`
// says why.
std::optional<QueueEntry> decode_queue_entry(std::string_view bytes, std::string& problem);

}  // namespace tern::store::records
