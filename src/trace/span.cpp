#include "trace/span.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <utility>

#include "core/json_text.hpp"

namespace tern::trace {

std::uint64_t unix_nanos_now() noexcept {
  const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch).count());
}

std::uint64_t to_unix_nanos(std::chrono::steady_clock::time_point t) noexcept {
  const auto ago = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t).count();
  const std::uint64_t now = unix_nanos_now();
  if (ago <= 0) return now;
  const auto ago_ns = static_cast<std::uint64_t>(ago);
  return ago_ns < now ? now - ago_ns : 0;
}

Span Span::child_of(const TraceContext& parent, std::string name, SpanKind kind) {
  Span s;
  s.trace_id = parent.trace_id;
  s.parent_span_id = parent.span_id;
  s.span_id = new_span_id();
  s.name = std::move(name);
  s.kind = kind;
  s.start_unix_nanos = unix_nanos_now();
  return s;
}

Span Span::root(std::string name, SpanKind kind) {
  Span s;
  s.trace_id = new_trace_id();
  s.span_id = new_span_id();
  s.name = std::move(name);
  s.kind = kind;
  s.start_unix_nanos = unix_nanos_now();
  return s;
}

TraceContext Span::context(std::uint8_t flags) const { return TraceContext{trace_id, span_id, flags}; }

void Span::set(std::string key, std::string value) { attributes.push_back({std::move(key), std::move(value)}); }
void Span::set(std::string key, std::int64_t value) { attributes.push_back({std::move(key), value}); }
void Span::set(std::string key, double value) { attributes.push_back({std::move(key), value}); }
void Span::set(std::string key, bool value) { attributes.push_back({std::move(key), value}); }

namespace {

void append_value(std::string& out, const AttributeValue& value) {
  if (const auto* s = std::get_if<std::string>(&value)) {
    out.append("{\"stringValue\":");
    append_json_string(out, *s);
    out.push_back('}');
  } else if (const auto* i = std::get_if<std::int64_t>(&value)) {
    // proto3 JSON writes 64-bit integers as strings.
    fmt::format_to(std::back_inserter(out), "{{\"intValue\":\"{}\"}}", *i);
  } else if (const auto* d = std::get_if<double>(&value)) {
    if (std::isfinite(*d)) {
      fmt::format_to(std::back_inserter(out), "{{\"doubleValue\":{}}}", *d);
    } else {
      out.append(std::isnan(*d) ? "{\"doubleValue\":\"NaN\"}" : (*d > 0 ? "{\"doubleValue\":\"Infinity\"}"
                                                                          : "{\"doubleValue\":\"-Infinity\"}"));
    }
  } else {
    out.append(std::get<bool>(value) ? "{\"boolValue\":true}" : "{\"boolValue\":false}");
  }
}

void append_attributes(std::string& out, const std::vector<Attribute>& attributes) {
  out.push_back('[');
  bool first = true;
  for (const auto& a : attributes) {
    if (!first) out.push_back(',');
    first = false;
    out.append("{\"key\":");
    append_json_string(out, a.key);
    out.append(",\"value\":");
    append_value(out, a.value);
    out.push_back('}');
  }
  out.push_back(']');
}

void append_span(std::string& out, const Span& s) {
  out.append("{\"traceId\":");
  append_json_string(out, s.trace_id);
  out.append(",\"spanId\":");
  append_json_string(out, s.span_id);
  if (!s.parent_span_id.empty()) {
    out.append(",\"parentSpanId\":");
    append_json_string(out, s.parent_span_id);
  }
  out.append(",\"name\":");
  append_json_string(out, s.name);
  fmt::format_to(std::back_inserter(out), ",\"kind\":{},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\"",
                 static_cast<int>(s.kind), s.start_unix_nanos, std::max(s.end_unix_nanos, s.start_unix_nanos));
  out.append(",\"attributes\":");
  append_attributes(out, s.attributes);
  fmt::format_to(std::back_inserter(out), ",\"status\":{{\"code\":{}", static_cast<int>(s.status));
  if (!s.status_message.empty()) {
    out.append(",\"message\":");
    append_json_string(out, s.status_message);
  }
  out.append("}}");
}

}  // namespace

std::string encode_otlp_json(const Resource& resource, const std::vector<Span>& spans, std::string_view scope_name,
                             std::string_view scope_version) {
  std::string out;
  out.reserve(256 + spans.size() * 512);
  std::vector<Attribute> resource_attributes;
  resource_attributes.reserve(resource.attributes.size() + 1);
  resource_attributes.push_back({"service.name", resource.service_name});
  for (const auto& a : resource.attributes) {
    if (a.key != "service.name") resource_attributes.push_back(a);
  }
  out.append("{\"resourceSpans\":[{\"resource\":{\"attributes\":");
  append_attributes(out, resource_attributes);
  out.append("},\"scopeSpans\":[{\"scope\":{\"name\":");
  append_json_string(out, scope_name);
  if (!scope_version.empty()) {
    out.append(",\"version\":");
    append_json_string(out, scope_version);
  }
  out.append("},\"spans\":[");
  bool first = true;
  for (const auto& s : spans) {
    if (!first) out.push_back(',');
    first = false;
    append_span(out, s);
  }
  out.append("]}]}]}");
  return out;
}

}  // namespace tern::trace
