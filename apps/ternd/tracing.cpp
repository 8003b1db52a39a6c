#include "tracing.hpp"

#include <chrono>
#include <string>

namespace tern::ternd {

void BrokerTracer::publish_routed(const PublishSpan& in) {
  const auto parent = trace::parse_traceparent(in.traceparent);
  if (!parent) {
    invalid_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (!tracing_->should_sample(*parent)) {
    not_sampled_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::string name = "publish ";
  name.append(in.topic);
  trace::Span span = trace::Span::child_of(*parent, std::move(name), trace::SpanKind::server);
  // Both ends from one reading of each clock, so the span's duration is the broker's own.
  const auto steady_now = std::chrono::steady_clock::now();
  const std::uint64_t unix_now = trace::unix_nanos_now();
  const auto ago = [&](std::chrono::steady_clock::time_point t) -> std::uint64_t {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(steady_now - t).count();
    return ns > 0 ? static_cast<std::uint64_t>(ns) : 0;
  };
  span.start_unix_nanos = unix_now - ago(in.received);
  span.end_unix_nanos = unix_now - ago(in.routed);
  span.attributes.reserve(6);
  span.set("messaging.system", "mqtt");
  span.set("messaging.operation.type", "publish");
  span.set("messaging.destination.name", std::string(in.topic));
  span.set("messaging.client_id", std::string(in.client_id));
  span.set("tern.qos", static_cast<std::int64_t>(in.qos));
  span.set("tern.deliveries", static_cast<std::int64_t>(in.deliveries));
  tracing_->record(std::move(span));
}

}  // namespace tern::ternd
