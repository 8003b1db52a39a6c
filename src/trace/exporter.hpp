// OtlpHttpExporter: batches finished spans in memory and POSTs them as OTLP/JSON to a
// collector ("http://HOST:PORT/v1/traces").
//
// Design: callers only take a mutex and push onto a bounded queue, so the broker's thread
// never waits for the network. The HTTP client (Boost.Beast) runs on a thread of its own
// with its own io_context; it is woken only when the queue becomes non-empty (to arm the
// flush timer) or reaches a full batch, so with no spans it holds no timer and sleeps.
// One request is in flight at a time; a batch that the collector refuses or that times
// out is counted and dropped (spans are diagnostics, not data: they are never retried
// at the cost of memory). A full queue drops the new span and counts it.
//
// Thread-safety: export_span, flush and stats may be called from any thread. Destroy
// from any thread but the exporter's own; destruction sends what is queued (each request
// bounded by request_timeout) and joins the thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/expected.hpp"
#include "trace/span.hpp"

namespace tern::trace {

struct HttpEndpoint {
  std::string host;
  std::uint16_t port = 80;
  std::string target = "/";
};
// "http://HOST[:PORT][/PATH]" with HOST a name, an IPv4 address or "[IPv6]". Only plain
// HTTP: a collector on another machine is reached through a local agent or a tunnel.
Expected<HttpEndpoint, std::string> parse_http_endpoint(std::string_view url);

struct ExporterOptions {
  std::string endpoint = "http://127.0.0.1:4318/v1/traces";
  Resource resource;
  std::string scope_version;
  std::size_t max_queue_spans = 2048;  // beyond it new spans are dropped and counted
  std::size_t max_batch_spans = 256;   // spans a request
  std::chrono::milliseconds flush_delay{1000};  // longest a span waits for its batch to fill
  std::chrono::milliseconds request_timeout{3000};
};

struct ExporterStats {
  std::uint64_t spans_queued = 0;             // accepted into the queue
  std::uint64_t spans_exported = 0;           // acknowledged by the collector with 2xx
  std::uint64_t spans_dropped_queue_full = 0;
  std::uint64_t spans_failed = 0;             // in a request that failed
  std::uint64_t requests = 0;
  std::uint64_t request_failures = 0;
  std::size_t queue_depth = 0;
};

class OtlpHttpExporter {
 public:
  // Checks the options and starts the exporter's thread.
  static Expected<std::unique_ptr<OtlpHttpExporter>, std::string> start(ExporterOptions options);
  ~OtlpHttpExporter();
  OtlpHttpExporter(const OtlpHttpExporter&) = delete;
  OtlpHttpExporter& operator=(const OtlpHttpExporter&) = delete;

  // Queues a finished span; false when the queue was full (the span is dropped).
  bool export_span(Span span);
  // Sends what is queued now instead of waiting for the flush delay.
  void flush();
  ExporterStats stats() const;
  const ExporterOptions& options() const noexcept;

 private:
  struct Impl;
  explicit OtlpHttpExporter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::trace
