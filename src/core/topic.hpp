// Topic names and topic filters (MQTT 5.0 §4.7, 3.1.1 §4.7).
//
// Thread-safety: pure functions, callable from any thread.
#pragma once

#include <string_view>

namespace tern {

// Well-formed UTF-8 as MQTT requires (§1.5.4): no surrogates, no overlong forms,
// no code points above U+10FFFF and no U+0000.
bool is_valid_mqtt_utf8(std::string_view s) noexcept;

// A topic name for PUBLISH: non-empty, valid UTF-8, no '+' or '#', at most 65535 bytes.
bool is_valid_topic_name(std::string_view topic) noexcept;

// A topic filter for SUBSCRIBE: non-empty, valid UTF-8, '+' only as a whole level, '#'
// only as the whole last level. Shared subscriptions are not parsed here (see
// parse_shared_subscription).
bool is_valid_topic_filter(std::string_view filter) noexcept;

// Whether `filter` matches `topic`. Both are assumed valid. A filter beginning with a
// wildcard does not match topics beginning with '$' (§4.7.2).
bool topic_matches(std::string_view filter, std::string_view topic) noexcept;

// `$share/{group}/{filter}`: splits a shared subscription. Returns false when `filter`
// is not a shared subscription; sets `ok` false when it is one but malformed (empty
// group, group with '+' or '#', or no filter after the group).
struct SharedSubscription {
  std::string_view group;
  std::string_view filter;
};
bool parse_shared_subscription(std::string_view filter, SharedSubscription& out, bool& ok) noexcept;

}  // namespace tern
