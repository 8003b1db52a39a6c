// ternd's side of tracing: turns the broker's Tracer callbacks into OTLP spans.
//
// The broker's span is a child of the producer's span (the traceparent's parent id):
//   name "publish {topic}", kind SERVER (the broker serves the producer's PUBLISH), from
//   the PUBLISH's arrival to the hand-over of its last delivery, with the attributes
//   messaging.system = "mqtt", messaging.destination.name, messaging.client_id,
//   messaging.operation.type = "publish", tern.qos and tern.deliveries.
// The traceparent the subscribers receive is the producer's, unchanged, so a consumer's
// span is a sibling of the broker's under the producer's span: one trace either way.
//
// Thread-safety: publish_routed runs on the broker's thread and only queues the span.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "broker/interfaces.hpp"
#include "trace/tracing.hpp"

namespace tern::ternd {

class BrokerTracer final : public broker::Tracer {
 public:
  explicit BrokerTracer(std::unique_ptr<trace::Tracing> tracing) : tracing_(std::move(tracing)) {}

  void publish_routed(const PublishSpan& span) override;

  trace::Tracing& tracing() noexcept { return *tracing_; }
  // traceparent values that were not valid W3C trace context (no span for them).
  std::uint64_t invalid_traceparents() const noexcept { return invalid_.load(std::memory_order_relaxed); }
  std::uint64_t not_sampled() const noexcept { return not_sampled_.load(std::memory_order_relaxed); }

 private:
  std::unique_ptr<trace::Tracing> tracing_;
  std::atomic<std::uint64_t> invalid_{0};
  std::atomic<std::uint64_t> not_sampled_{0};
};

}  // namespace tern::ternd
