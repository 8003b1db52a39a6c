// Which traces get spans exported.
//
// Parent-based with a trace-id ratio: a parent that says "not sampled" (flags bit 0
// clear) is never overruled; a sampled parent, or no parent, is kept when the trace id
// falls under the ratio. The decision is a pure function of the trace id (its last 16 hex
// digits read as a number, as OpenTelemetry's TraceIdRatioBased does), so every hop that
// uses the same ratio keeps the same traces: a trace is exported whole or not at all,
// without any coordination between the broker and the services.
//
// Thread-safety: immutable after construction.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "trace/context.hpp"

namespace tern::trace {

class Sampler {
 public:
  // `ratio` is clamped to [0, 1]; NaN counts as 0.
  explicit Sampler(double ratio = 1.0) noexcept;

  double ratio() const noexcept { return ratio_; }

  // A span in a trace that `parent` (the incoming traceparent) belongs to.
  bool should_sample(const TraceContext& parent) const noexcept;
  // A span that starts a new trace.
  bool should_sample_root(std::string_view trace_id) const noexcept;

 private:
  double ratio_;
  std::uint64_t threshold_;  // keep when the id's low 64 bits are below it
  bool keep_all_;
};

}  // namespace tern::trace
