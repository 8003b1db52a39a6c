// The request of a stream read (`$tern/streams/{name}/read`): a JSON object
// {"from": OFFSET, "from_time": MS_SINCE_EPOCH | "2026-11-28T01:00:00Z", "max": COUNT},
// every member optional; an empty payload reads from the start.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/expected.hpp"

namespace tern::broker {

struct StreamReadRequest {
  std::uint64_t from_offset = 0;
  std::int64_t from_time_ms = 0;
  std::uint64_t max_count = 0;  // 0: the broker's limit
};

// Errors name the member and what was wrong with it.
Expected<StreamReadRequest, std::string> parse_stream_read_request(std::string_view payload);

// "2026-11-28T01:02:03Z" or "2026-11-28T01:02:03.456Z" to milliseconds since the epoch.
Expected<std::int64_t, std::string> parse_utc_timestamp(std::string_view text);

}  // namespace tern::broker
