// W3C trace context (https://www.w3.org/TR/trace-context/): version 00 traceparent
// headers, "00-{32 hex trace id}-{16 hex parent id}-{2 hex flags}".
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tern::sdk {

struct TraceContext {
  std::string trace_id;   // 32 lower-case hex digits, not all zero
  std::string parent_id;  // 16 lower-case hex digits, not all zero
  std::uint8_t flags = 1; // sampled
};

std::optional<TraceContext> parse_traceparent(std::string_view header);
std::string format_traceparent(const TraceContext& context);
// A new trace with a random trace id and span id.
TraceContext new_trace();
// The context for an event produced while handling one with `parent`: same trace id
// and flags, a new span id.
TraceContext child_of(const TraceContext& parent);

}  // namespace tern::sdk
