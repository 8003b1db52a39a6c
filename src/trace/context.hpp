// W3C trace context (https://www.w3.org/TR/trace-context/), version 00:
//   traceparent = "00-{32 hex trace id}-{16 hex parent span id}-{2 hex flags}"
// Ids are kept as lower-case hex text because that is how both the header and OTLP/JSON
// spell them; nothing here ever needs their binary form except the sampler.
//
// Thread-safety: plain values and pure functions; new ids come from a per-thread
// generator, so any thread may call them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tern::trace {

inline constexpr std::string_view kTraceparentProperty = "traceparent";
inline constexpr std::uint8_t kSampledFlag = 0x01;

struct TraceContext {
  std::string trace_id;   // 32 lower-case hex digits, not all zero
  std::string span_id;    // 16 lower-case hex digits, not all zero: the sender's span
  std::uint8_t flags = kSampledFlag;

  bool sampled() const noexcept { return (flags & kSampledFlag) != 0; }
};

// Accepts version 00 exactly as specified, and future versions (not "ff") by their first
// 55 characters followed by nothing or '-', as the specification asks of a version-00
// parser. Upper-case hex, all-zero ids and wrong lengths are rejected.
std::optional<TraceContext> parse_traceparent(std::string_view header) noexcept;
std::string format_traceparent(const TraceContext& context);

bool is_valid_trace_id(std::string_view id) noexcept;
bool is_valid_span_id(std::string_view id) noexcept;

// Random, non-zero ids.
std::string new_trace_id();
std::string new_span_id();

// A new root context (sampled flag as given) and the context of a span caused by `parent`
// (same trace and flags, a new span id).
TraceContext new_root(bool sampled = true);
TraceContext child_of(const TraceContext& parent);

}  // namespace tern::trace
