#include "admin/prometheus.hpp"

#include <fmt/format.h>

#include <cmath>
#include <iterator>

namespace tern::admin {
namespace {

std::string_view type_name(MetricType type) {
  switch (type) {
    case MetricType::counter: return "counter";
    case MetricType::gauge: return "gauge";
    case MetricType::histogram: return "histogram";
    case MetricType::summary: return "summary";
    case MetricType::untyped: break;
  }
  return "untyped";
}

}  // namespace

void append_label_value(std::string& out, std::string_view value) {
  for (const char c : value) {
    switch (c) {
      case '\\': out.append("\\\\"); break;
      case '"': out.append("\\\""); break;
      case '\n': out.append("\\n"); break;
      default: out.push_back(c);
    }
  }
}

void append_help_text(std::string& out, std::string_view help) {
  for (const char c : help) {
    switch (c) {
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      default: out.push_back(c);
    }
  }
}

void PrometheusWriter::family(std::string_view name, MetricType type, std::string_view help) {
  out_.append("# HELP ");
  out_.append(name);
  out_.push_back(' ');
  append_help_text(out_, help);
  out_.append("\n# TYPE ");
  out_.append(name);
  out_.push_back(' ');
  out_.append(type_name(type));
  out_.push_back('\n');
}

void PrometheusWriter::begin_sample(std::string_view name, std::initializer_list<Label> labels) {
  out_.append(name);
  if (labels.size() != 0) {
    out_.push_back('{');
    bool first = true;
    for (const auto& label : labels) {
      if (!first) out_.push_back(',');
      first = false;
      out_.append(label.name);
      out_.append("=\"");
      append_label_value(out_, label.value);
      out_.push_back('"');
    }
    out_.push_back('}');
  }
  out_.push_back(' ');
}

void PrometheusWriter::sample(std::string_view name, std::initializer_list<Label> labels, double value) {
  begin_sample(name, labels);
  if (std::isnan(value)) {
    out_.append("NaN");
  } else if (std::isinf(value)) {
    out_.append(value > 0 ? "+Inf" : "-Inf");
  } else {
    fmt::format_to(std::back_inserter(out_), "{}", value);
  }
  out_.push_back('\n');
}

void PrometheusWriter::sample(std::string_view name, std::initializer_list<Label> labels, std::uint64_t value) {
  begin_sample(name, labels);
  fmt::format_to(std::back_inserter(out_), "{}", value);
  out_.push_back('\n');
}

void PrometheusWriter::single(std::string_view name, MetricType type, std::string_view help, std::uint64_t value) {
  family(name, type, help);
  sample(name, value);
}

void PrometheusWriter::single(std::string_view name, MetricType type, std::string_view help, double value) {
  family(name, type, help);
  sample(name, value);
}

}  // namespace tern::admin
