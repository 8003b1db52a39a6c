#include "admin/api.hpp"

#include <boost/json.hpp>

#include <cstdint>

namespace tern::admin {
namespace json = boost::json;
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 && hex_value(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

json::object stats_object(const broker::BrokerStats& s) {
  json::object o;
  o["connections_current"] = s.connections_current;
  o["connections_total"] = s.connections_total;
  o["connections_refused"] = s.connections_refused;
  o["clients_connected"] = s.clients_connected;
  o["sessions"] = s.sessions;
  o["messages_received"] = s.messages_received;
  o["messages_sent"] = s.messages_sent;
  o["bytes_received"] = s.bytes_received;
  o["bytes_sent"] = s.bytes_sent;
  o["subscriptions"] = s.subscriptions;
  o["retained_messages"] = s.retained_messages;
  json::object dropped;
  dropped["queue_full"] = s.dropped_queue_full;
  dropped["expired"] = s.dropped_expired;
  dropped["qos0_backpressure"] = s.dropped_qos0_backpressure;
  dropped["too_large"] = s.dropped_too_large;
  dropped["not_authorized"] = s.dropped_not_authorized;
  o["dropped"] = std::move(dropped);
  o["protocol_errors"] = s.protocol_errors;
  return o;
}

}  // namespace

std::optional<std::string> RequestTarget::param(std::string_view name) const {
  for (const auto& [key, value] : query) {
    if (key == name) return value;
  }
  return std::nullopt;
}

RequestTarget parse_target(std::string_view target) {
  RequestTarget out;
  const auto question = target.find('?');
  out.path = percent_decode(target.substr(0, question));
  if (question == std::string_view::npos) return out;
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    if (!pair.empty()) {
      const auto eq = pair.find('=');
      if (eq == std::string_view::npos) {
        out.query.emplace_back(percent_decode(pair), std::string());
      } else {
        out.query.emplace_back(percent_decode(pair.substr(0, eq)), percent_decode(pair.substr(eq + 1)));
      }
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

bool bearer_token_matches(std::string_view authorization, std::string_view token) {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() != kScheme.size() + token.size()) return false;
  unsigned difference = 0;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    // The scheme is case-insensitive (RFC 7235); ASCII letters differ from their other
    // case only in bit 0x20.
    const auto a = static_cast<unsigned char>(authorization[i]);
    const auto b = static_cast<unsigned char>(kScheme[i]);
    const unsigned mask = (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') ? 0x20U : 0U;
    difference |= (a | mask) ^ (b | mask);
  }
  const std::string_view presented = authorization.substr(kScheme.size());
  for (std::size_t i = 0; i < token.size(); ++i) {
    difference |= static_cast<unsigned char>(presented[i]) ^ static_cast<unsigned char>(token[i]);
  }
  return difference == 0;
}

std::string readiness_json(const std::vector<ReadinessResult>& checks) {
  json::object doc;
  bool ready = true;
  json::array list;
  for (const auto& c : checks) {
    json::object item;
    item["name"] = c.name;
    item["ok"] = !c.problem.has_value();
    if (c.problem) {
      ready = false;
      item["reason"] = *c.problem;
    }
    list.push_back(std::move(item));
  }
  doc["ready"] = ready;
  doc["checks"] = std::move(list);
  return json::serialize(doc);
}

std::string status_json(const MetricsSnapshot& snap, const StatusInfo& info) {
  json::object doc;
  doc["node"] = snap.node;
  doc["version"] = snap.version;
  doc["uptime_seconds"] = info.uptime_seconds;
  doc["ready"] = info.ready;
  if (snap.process.start_time_seconds) doc["start_time_seconds"] = *snap.process.start_time_seconds;
  if (snap.broker) doc["broker"] = stats_object(*snap.broker);
  if (snap.queued_messages) doc["queued_messages"] = static_cast<std::uint64_t>(*snap.queued_messages);
  if (snap.queued_bytes) doc["queued_bytes"] = *snap.queued_bytes;
  if (snap.inflight_messages) doc["inflight_messages"] = static_cast<std::uint64_t>(*snap.inflight_messages);
  json::array deepest;
  for (const auto& [client_id, depth] : snap.deepest_queues) {
    json::object q;
    q["client_id"] = client_id;
    q["queued_messages"] = static_cast<std::uint64_t>(depth);
    deepest.push_back(std::move(q));
  }
  doc["deepest_queues"] = std::move(deepest);
  if (snap.store) {
    json::object s;
    s["commits"] = snap.store->commits;
    s["fsyncs"] = snap.store->fsyncs;
    s["write_errors"] = snap.store->write_errors;
    s["last_commit_us"] = snap.store->last_commit_us;
    s["avg_commit_us"] = snap.store->avg_commit_us;
    s["max_commit_us"] = snap.store->max_commit_us;
    s["max_group_size"] = snap.store->max_batch_ops;
    doc["store"] = std::move(s);
  }
  json::object process;
  if (snap.process.resident_memory_bytes) process["resident_memory_bytes"] = *snap.process.resident_memory_bytes;
  process["cpu_seconds"] = snap.process.cpu_seconds;
  if (snap.process.open_fds) process["open_fds"] = *snap.process.open_fds;
  doc["process"] = std::move(process);
  json::array alerts;
  for (const auto& a : snap.alerts) {
    json::object item;
    item["alert"] = a.name;
    item["firing"] = a.firing;
    item["value"] = a.value;
    item["threshold"] = a.threshold;
    alerts.push_back(std::move(item));
  }
  doc["alerts"] = std::move(alerts);
  return json::serialize(doc);
}

std::string clients_json(const std::vector<broker::ClientInfo>& items, std::size_t total) {
  json::array list;
  list.reserve(items.size());
  for (const auto& c : items) {
    json::object o;
    o["client_id"] = c.client_id;
    o["connected"] = c.connected;
    if (c.connected) o["peer"] = c.peer;
    o["protocol_version"] = c.protocol_version;
    o["session_expiry_interval"] = c.session_expiry_interval;
    o["subscriptions"] = static_cast<std::uint64_t>(c.subscriptions);
    o["queued_messages"] = static_cast<std::uint64_t>(c.queued_messages);
    o["queued_bytes"] = static_cast<std::uint64_t>(c.queued_bytes);
    o["inflight_messages"] = static_cast<std::uint64_t>(c.inflight_messages);
    list.push_back(std::move(o));
  }
  json::object doc;
  doc["total"] = static_cast<std::uint64_t>(total);
  doc["clients"] = std::move(list);
  return json::serialize(doc);
}

std::string subscriptions_json(const std::vector<broker::SubscriptionInfo>& items, std::size_t total) {
  json::array list;
  list.reserve(items.size());
  for (const auto& s : items) {
    json::object o;
    o["client_id"] = s.client_id;
    o["filter"] = s.filter;
    o["qos"] = s.qos;
    if (s.subscription_id != 0) o["subscription_id"] = s.subscription_id;
    list.push_back(std::move(o));
  }
  json::object doc;
  doc["total"] = static_cast<std::uint64_t>(total);
  doc["subscriptions"] = std::move(list);
  return json::serialize(doc);
}

std::string logs_json(const std::vector<log::RingLine>& lines, std::size_t capacity) {
  std::string out = "{\"capacity\":" + std::to_string(capacity) + ",\"lines\":[";
  bool first = true;
  for (const auto& line : lines) {
    if (!first) out.push_back(',');
    first = false;
    out.append(line.json);
  }
  out.append("]}");
  return out;
}

std::string error_json(std::string_view message) {
  json::object doc;
  doc["error"] = message;
  return json::serialize(doc);
}

}  // namespace tern::admin
