// The JSON documents of /api/v1/* and /readyz, and the small request helpers the server
// uses (target parsing, bearer token check). Pure functions, so the unit tests can pin the
// documents down without a socket; docs/api.md describes every field.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "admin/metrics.hpp"
#include "broker/broker.hpp"
#include "core/log.hpp"

namespace tern::admin {

struct RequestTarget {
  std::string path;
  std::vector<std::pair<std::string, std::string>> query;  // percent-decoded
  std::optional<std::string> param(std::string_view name) const;
};
RequestTarget parse_target(std::string_view target);

// Compares an Authorization header value with "Bearer TOKEN" in time independent of where
// they differ (the length of the expected token may leak, its content does not).
bool bearer_token_matches(std::string_view authorization, std::string_view token);

struct ReadinessResult {
  std::string name;
  std::optional<std::string> problem;
};

std::string readiness_json(const std::vector<ReadinessResult>& checks);

struct StatusInfo {
  double uptime_seconds = 0;
  bool ready = true;
};
std::string status_json(const MetricsSnapshot& snapshot, const StatusInfo& info);

// `total` is how many exist; `items` may hold fewer (limit applied by the caller).
std::string clients_json(const std::vector<broker::ClientInfo>& items, std::size_t total);
std::string subscriptions_json(const std::vector<broker::SubscriptionInfo>& items, std::size_t total);
// The ring's lines are JSON objects already; they are embedded as they are.
std::string logs_json(const std::vector<log::RingLine>& lines, std::size_t capacity);

std::string error_json(std::string_view message);

}  // namespace tern::admin
