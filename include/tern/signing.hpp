// Event signatures (`tern-sig`, DESIGN §2) for services: a Service signs what it publishes
// and refuses consumed events whose signature is missing, from an unknown producer or
// wrong. The construction is the broker's (docs/security.md, "Event signatures"):
//
//   tern-sig = lowercase hex( HMAC-SHA256( key, topic || 0x00 || payload || 0x00 || tern-id ) )
//
// keyed per producer; the producer is named by the `tern-producer` user property.
//
// Thread-safety: pure functions and plain option structs.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tern/message.hpp"

namespace tern {

inline constexpr std::string_view kTernSigProperty = "tern-sig";
inline constexpr std::string_view kTernProducerProperty = "tern-producer";

// Keys shorter than this are refused, as ternd refuses them in its keys file.
inline constexpr std::size_t kMinSigningKeyBytes = 16;

// Producer id -> raw key bytes.
using SigningKeyMap = std::map<std::string, std::string, std::less<>>;

struct SigningOptions {
  // Raw key bytes (at least kMinSigningKeyBytes). Empty: events are published unsigned.
  std::string key;
  // The `tern-producer` of every event; empty: the MQTT client id (a Service without
  // client.client_id makes a random one up, so set one of the two). It must be the name
  // under which ternd's and the consumers' keys files hold `key`.
  std::string producer_id;
};

struct VerificationOptions {
  // Topic filters on which consumed events must carry a valid signature ("#": every
  // topic the service subscribes to, request replies included). Empty: nothing is checked.
  std::vector<std::string> required_on;
  // Producer id -> raw key bytes.
  SigningKeyMap keys;
  // A file of `producer-id:hexkey` lines, the format of ternd's `signatures.keys_file`
  // (read by the same parser), read by Service::start(). A producer may not appear both
  // here and in `keys`.
  std::string keys_file;
};

// Consumed events refused by signature verification, by reason. Refused events are
// acknowledged and dropped: not handled, not dead-lettered (docs/sdk.md, "Signatures").
struct SignatureRefusals {
  std::uint64_t unsigned_events = 0;   // no tern-sig or no tern-id
  std::uint64_t unknown_producer = 0;  // no tern-producer, or no key for it
  std::uint64_t bad_signature = 0;     // the signature does not match
};

enum class SignatureCheck : std::uint8_t { valid, unsigned_event, unknown_producer, bad_signature };

// Hexadecimal (either case) to raw key bytes; nullopt when not hexadecimal or shorter than
// kMinSigningKeyBytes.
std::optional<std::string> signing_key_from_hex(std::string_view hex);

// The tern-sig of an event (64 lowercase hex digits).
std::string event_signature(std::string_view key, std::string_view topic, std::string_view payload,
                            std::string_view event_id);

// Sets `tern-producer` and `tern-sig` on `message`, which must have a `tern-id` (false
// and unchanged otherwise). Service::publish does this itself when SigningOptions::key is set.
bool sign_event(Message& message, std::string_view producer, std::string_view key);

// Checks `message` against the key `key_for(producer)` returns (null: no key), in
// constant time.
SignatureCheck check_event_signature(const Message& message,
                                     const std::function<const std::string*(std::string_view producer)>& key_for);

}  // namespace tern
