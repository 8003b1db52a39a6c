#include "trace/tracing.hpp"

#include <cmath>
#include <utility>

namespace tern::trace {

Expected<std::unique_ptr<Tracing>, std::string> Tracing::start(TracingOptions options) {
  if (std::isnan(options.sample_ratio) || options.sample_ratio < 0.0 || options.sample_ratio > 1.0) {
    return make_unexpected(std::string("the sample ratio must be between 0 and 1"));
  }
  if (options.service_name.empty()) return make_unexpected(std::string("the service name must not be empty"));
  ExporterOptions e;
  e.endpoint = std::move(options.endpoint);
  e.resource.service_name = std::move(options.service_name);
  e.resource.attributes = std::move(options.resource_attributes);
  e.scope_version = std::move(options.version);
  e.max_queue_spans = options.max_queue_spans;
  e.max_batch_spans = options.max_batch_spans;
  e.flush_delay = options.flush_delay;
  e.request_timeout = options.request_timeout;
  auto exporter = OtlpHttpExporter::start(std::move(e));
  if (!exporter) return make_unexpected(exporter.error());
  return std::unique_ptr<Tracing>(new Tracing(Sampler(options.sample_ratio), std::move(*exporter)));
}

}  // namespace tern::trace
