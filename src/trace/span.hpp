// One finished span, in the shape OTLP gives it: ids as hex, times as Unix nanoseconds.
//
// Thread-safety: a plain value; build it on one thread, hand it to an exporter.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "trace/context.hpp"

namespace tern::trace {

// The values of OTLP's Span.SpanKind.
enum class SpanKind : int { unspecified = 0, internal = 1, server = 2, client = 3, producer = 4, consumer = 5 };
// The values of OTLP's Status.StatusCode.
enum class StatusCode : int { unset = 0, ok = 1, error = 2 };

using AttributeValue = std::variant<std::string, std::int64_t, double, bool>;
struct Attribute {
  std::string key;
  AttributeValue value;
};

std::uint64_t unix_nanos_now() noexcept;
// The wall-clock time of a steady-clock reading (steady times cannot go backwards, wall
// times are what a collector shows): now, minus how long ago `t` was.
std::uint64_t to_unix_nanos(std::chrono::steady_clock::time_point t) noexcept;

struct Span {
  std::string trace_id;        // 32 hex digits
  std::string span_id;         // 16 hex digits
  std::string parent_span_id;  // 16 hex digits, or empty for a root span
  std::string name;
  SpanKind kind = SpanKind::internal;
  std::uint64_t start_unix_nanos = 0;
  std::uint64_t end_unix_nanos = 0;
  std::vector<Attribute> attributes;
  StatusCode status = StatusCode::unset;
  std::string status_message;

  // A span caused by `parent`: same trace, parent_span_id = parent.span_id, a new span
  // id, started now.
  static Span child_of(const TraceContext& parent, std::string name, SpanKind kind);
  // A span that starts a trace of its own (no parent), started now.
  static Span root(std::string name, SpanKind kind);

  // The context to propagate for work this span causes (its own span id).
  TraceContext context(std::uint8_t flags = kSampledFlag) const;

  void set(std::string key, std::string value);
  void set(std::string key, const char* value) { set(std::move(key), std::string(value)); }
  void set(std::string key, std::int64_t value);
  void set(std::string key, double value);
  void set(std::string key, bool value);

  void end() noexcept { end_unix_nanos = unix_nanos_now(); }
  void fail(std::string message) {
    status = StatusCode::error;
    status_message = std::move(message);
  }
};

// What the exporter says about the process that produced the spans.
struct Resource {
  std::string service_name = "unknown_service";
  std::vector<Attribute> attributes;  // besides service.name, e.g. host.name
};

// The OTLP/JSON body of an ExportTraceServiceRequest (POST /v1/traces) holding `spans`
// under one resource and one instrumentation scope. Ids are hex, 64-bit times are decimal
// strings and enums are numbers, as the OTLP/JSON mapping requires; text that is not
// valid UTF-8 is replaced rather than producing invalid JSON.
std::string encode_otlp_json(const Resource& resource, const std::vector<Span>& spans,
                             std::string_view scope_name = "tern", std::string_view scope_version = "");

}  // namespace tern::trace
