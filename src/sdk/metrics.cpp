#include "sdk/metrics.hpp"

#include <fmt/format.h>

namespace tern::sdk {

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void sample(std::string& out, std::string_view name, std::string_view labels, std::uint64_t value) {
  fmt::format_to(std::back_inserter(out), "{}{{{}}} {}\n", name, labels, value);
}

void counter(std::string& out, std::string_view name, std::string_view help, std::string_view labels, std::uint64_t value) {
  family(out, name, "counter", help);
  sample(out, name, labels, value);
}

void gauge(std::string& out, std::string_view name, std::string_view help, std::string_view labels, std::uint64_t value) {
  family(out, name, "gauge", help);
  sample(out, name, labels, value);
}

}  // namespace

std::string render_metrics(std::string_view service, const ServiceStats& s) {
  std::string out;
  const std::string labels = fmt::format("service=\"{}\"", escape_label_value(service));
  counter(out, "tern_service_events_handled_total", "Handler calls that succeeded.", labels, s.handled);
  counter(out, "tern_service_events_failed_total", "Handler calls that failed (each attempt counts).", labels, s.failed);
  counter(out, "tern_service_events_retried_total", "Retries scheduled after a failed handler call.", labels, s.retried);
  counter(out, "tern_service_events_dead_lettered_total", "Events published to the dead-letter topic.", labels,
          s.dead_lettered);
  counter(out, "tern_service_events_duplicate_total", "Redelivered events skipped because their tern-id was handled.",
          labels, s.duplicates);
  gauge(out, "tern_service_events_inflight", "Events consumed and not yet finished, retries included.", labels,
        s.inflight_events);
  gauge(out, "tern_service_outbox_depth", "Publishes queued or in flight, not yet acknowledged by the broker.", labels,
        s.outbox_depth);
  counter(out, "tern_service_outbox_rejected_total", "Publishes refused because the outbox was full.", labels,
          s.outbox_rejected);
  counter(out, "tern_service_outbox_dropped_total", "Queued publishes evicted from a full outbox.", labels,
          s.outbox_dropped);
  gauge(out, "tern_service_connected", "1 while connected to the broker.", labels, s.connected ? 1 : 0);
  counter(out, "tern_service_reconnects_total", "Connections to the broker established after the first.", labels,
          s.reconnects);
  counter(out, "tern_service_connection_losses_total", "Established connections to the broker that were lost.", labels,
          s.connection_losses);

  counter(out, "tern_service_log_lines_forwarded_total",
          "Log lines published to $tern/logs/ (log_forward_level; 0 when forwarding is off).", labels,
          s.log_lines_forwarded);
  counter(out, "tern_service_log_lines_dropped_total",
          "Log lines not forwarded: rate limit, full queue, offline or refused by the client.", labels,
          s.log_lines_dropped);

  constexpr std::string_view refused = "tern_service_events_refused_total";
  family(out, refused, "counter", "Consumed events refused by signature verification (acknowledged, not handled).");
  const auto& r = s.signature_refusals;
  for (const auto& [reason, value] : {std::pair<std::string_view, std::uint64_t>{"unsigned", r.unsigned_events},
                                      {"unknown_producer", r.unknown_producer},
                                      {"bad_signature", r.bad_signature}}) {
    sample(out, refused, fmt::format("{},reason=\"{}\"", labels, reason), value);
  }

  constexpr std::string_view latency = "tern_service_handler_latency_seconds";
  family(out, latency, "histogram", "Duration of handler calls.");
  const auto& h = s.handler_latency;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < LatencyHistogram::kBounds.size(); ++i) {
    cumulative += h.counts[i];
    fmt::format_to(std::back_inserter(out), "{}_bucket{{{},le=\"{}\"}} {}\n", latency, labels,
                   LatencyHistogram::kBounds[i], cumulative);
  }
  fmt::format_to(std::back_inserter(out), "{}_bucket{{{},le=\"+Inf\"}} {}\n", latency, labels, h.count);
  fmt::format_to(std::back_inserter(out), "{}_sum{{{}}} {}\n", latency, labels, h.sum_seconds);
  fmt::format_to(std::back_inserter(out), "{}_count{{{}}} {}\n", latency, labels, h.count);
  return out;
}

}  // namespace tern::sdk
