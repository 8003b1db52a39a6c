// The /metrics document: a snapshot of every figure, taken from the Sources in one go, then
// rendered in the Prometheus text format. Collection and rendering are separate so the
// rendering can be tested (and checked with promtool) on a hand-made snapshot.
//
// Thread-safety: collect_metrics calls the Sources, so it runs on their thread (the
// broker's); render_metrics is a pure function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "admin/process_stats.hpp"
#include "admin/sources.hpp"
#include "broker/stats.hpp"

namespace tern::admin {

// How many of the deepest session queues /metrics shows, each as its own series.
inline constexpr std::size_t kDeepestQueues = 5;

struct AlertStatus {
  std::string name;
  bool firing = false;
  double value = 0;
  double threshold = 0;
};

// The admin endpoint's own figures.
struct AdminCounters {
  std::uint64_t requests = 0;
  std::uint64_t unauthorized = 0;
  std::uint64_t connections_refused = 0;  // over the admin connection limit
  std::uint64_t tls_handshakes_failed = 0;  // plain HTTP on the HTTPS port, bad clients, timeouts
  std::uint64_t certificate_reloads_failed = 0;
};

struct MetricsSnapshot {
  std::string version;
  std::string node;
  std::optional<broker::BrokerStats> broker;
  std::optional<std::size_t> queued_messages;
  std::optional<std::size_t> inflight_messages;
  std::optional<std::uint64_t> queued_bytes;
  std::vector<std::pair<std::string, std::size_t>> deepest_queues;  // client id, depth; deepest first
  std::optional<StoreMetrics> store;
  ProcessStats process;
  std::vector<AlertStatus> alerts;
  std::uint64_t log_lines = 0;
  std::optional<AdminCounters> admin;
  std::string extra;  // rendered families from Sources::extra_metrics
};

MetricsSnapshot collect_metrics(const Sources& sources);

std::string render_metrics(const MetricsSnapshot& snapshot);

}  // namespace tern::admin
