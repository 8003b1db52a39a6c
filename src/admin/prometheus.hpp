// PrometheusWriter: builds a document in the Prometheus text exposition format 0.0.4.
//
// Every family is announced once with # HELP and # TYPE before its samples; label values
// are escaped; counters are expected to be named ..._total (the caller's job, checked by the
// unit tests with promtool). The writer does not sort or deduplicate: callers emit each
// family's samples together.
//
// Thread-safety: a plain value; one thread at a time.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace tern::admin {

enum class MetricType { counter, gauge, histogram, summary, untyped };

struct Label {
  std::string_view name;
  std::string_view value;
};

class PrometheusWriter {
 public:
  // Starts a family: "# HELP name help" and "# TYPE name type".
  void family(std::string_view name, MetricType type, std::string_view help);

  // One sample line. `name` is the family name, or for histograms and summaries the family
  // name with its suffix (_bucket, _sum, _count).
  void sample(std::string_view name, std::initializer_list<Label> labels, double value);
  void sample(std::string_view name, std::initializer_list<Label> labels, std::uint64_t value);
  void sample(std::string_view name, double value) { sample(name, {}, value); }
  void sample(std::string_view name, std::uint64_t value) { sample(name, {}, value); }

  // A family with a single unlabelled sample.
  void single(std::string_view name, MetricType type, std::string_view help, std::uint64_t value);
  void single(std::string_view name, MetricType type, std::string_view help, double value);

  const std::string& text() const noexcept { return out_; }
  std::string take() && { return std::move(out_); }

 private:
  void begin_sample(std::string_view name, std::initializer_list<Label> labels);
  std::string out_;
};

// Escapes a label value: backslash, double quote and line feed.
void append_label_value(std::string& out, std::string_view value);
// Escapes HELP text: backslash and line feed.
void append_help_text(std::string& out, std::string_view help);

}  // namespace tern::admin
