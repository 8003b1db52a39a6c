// Tracing: a sampler and an OTLP/HTTP exporter behind one object, what a process (ternd
// or an SDK service) holds to record spans. It knows nothing of the broker or the SDK:
// each adapts its own events into Spans.
//
// Typical use when handling an event that carried a traceparent:
//
//   if (auto parent = trace::parse_traceparent(header); parent && tracing.should_sample(*parent)) {
//     auto span = trace::Span::child_of(*parent, "process " + topic, trace::SpanKind::consumer);
//     ... work ...
//     span.end();
//     tracing.record(std::move(span));
//   }
//
// Thread-safety: every member may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"
#include "trace/context.hpp"
#include "trace/exporter.hpp"
#include "trace/sampler.hpp"
#include "trace/span.hpp"

namespace tern::trace {

struct TracingOptions {
  std::string endpoint = "http://127.0.0.1:4318/v1/traces";
  double sample_ratio = 1.0;
  std::string service_name = "unknown_service";
  std::vector<Attribute> resource_attributes;  // e.g. service.instance.id, host.name
  std::string version;                         // the instrumentation scope's version
  std::size_t max_queue_spans = 2048;
  std::size_t max_batch_spans = 256;
  std::chrono::milliseconds flush_delay{1000};
  std::chrono::milliseconds request_timeout{3000};
};

class Tracing {
 public:
  static Expected<std::unique_ptr<Tracing>, std::string> start(TracingOptions options);

  // See Sampler: an unsampled parent is never overruled; otherwise the trace-id ratio.
  bool should_sample(const TraceContext& parent) const noexcept { return sampler_.should_sample(parent); }
  bool should_sample_root(std::string_view trace_id) const noexcept { return sampler_.should_sample_root(trace_id); }
  // Queues a finished span for export; false when it was dropped (queue full).
  bool record(Span span) { return exporter_->export_span(std::move(span)); }
  void flush() { exporter_->flush(); }

  ExporterStats stats() const { return exporter_->stats(); }
  const Sampler& sampler() const noexcept { return sampler_; }

 private:
  Tracing(Sampler sampler, std::unique_ptr<OtlpHttpExporter> exporter)
      : sampler_(sampler), exporter_(std::move(exporter)) {}
  Sampler sampler_;
  std::unique_ptr<OtlpHttpExporter> exporter_;
};

}  // namespace tern::trace
