// Sources: what the admin endpoint and the alert monitor read, as providers, so the admin
// module depends only on the broker's plain types and not on the store, the net layer or
// the daemon. Every provider is optional: an empty std::function means "not available" and
// the figures it would give are left out.
//
// Thread-safety: the providers are called on the io_context thread that runs the admin
// server (the broker's thread), so they may call the Broker directly.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/broker.hpp"
#include "broker/stats.hpp"

namespace tern::admin {

// The store's figures the admin needs (a copy of the fields of store::Metrics, so this
// module does not link SQLite).
struct StoreMetrics {
  std::uint64_t commits = 0;
  std::uint64_t fsyncs = 0;
  std::uint64_t write_errors = 0;
  std::uint64_t ops_written = 0;      // sum of all group sizes
  std::uint64_t last_commit_us = 0;
  std::uint64_t avg_commit_us = 0;
  std::uint64_t max_commit_us = 0;
  std::uint64_t max_batch_ops = 0;
  // Group sizes: bucket i counts sizes in [2^i, 2^(i+1)), the last one the rest.
  std::array<std::uint64_t, 14> batch_size_histogram{};
  // Sizes on disk of the database file and its write-ahead log (unknown: nullopt).
  std::optional<std::uint64_t> database_bytes;
  std::optional<std::uint64_t> wal_bytes;
};

// One readiness condition: returns nullopt when satisfied, else why not.
struct ReadinessCheck {
  std::string name;  // "listeners", "store", "overload", ...
  std::function<std::optional<std::string>()> problem;
};

struct Sources {
  std::function<broker::BrokerStats()> broker_stats;
  std::function<std::vector<broker::ClientInfo>()> clients;
  std::function<std::vector<broker::SubscriptionInfo>()> subscriptions;
  std::function<std::size_t()> queued_messages_total;
  std::function<std::size_t()> inflight_messages_total;
  std::function<std::optional<StoreMetrics>()> store_metrics;
  // Further metric families in Prometheus text, appended as they come (policy, transport).
  std::function<std::string()> extra_metrics;
  std::vector<ReadinessCheck> readiness;
};

// Publishes a message through the broker, as if from inside it (ACLs do not apply; the
// topics are under $tern/). Called on the broker's thread only, never from inside a Broker
// call. `qos` is 0, 1 or 2.
using Publish = std::function<void(std::string_view topic, std::string_view payload, int qos, bool retain)>;

}  // namespace tern::admin
