#include "admin/metrics.hpp"

#include <algorithm>
#include <string_view>

#include "admin/prometheus.hpp"
#include "core/log.hpp"

namespace tern::admin {
namespace {

using C = MetricType;

double micros_to_seconds(std::uint64_t us) { return static_cast<double>(us) / 1e6; }

void render_broker(PrometheusWriter& w, const broker::BrokerStats& s) {
  w.single("tern_connections_current", C::gauge, "Open MQTT connections.", s.connections_current);
  w.single("tern_connections_opened_total", C::counter, "MQTT connections accepted since start.",
           s.connections_total);
  w.single("tern_connections_refused_total", C::counter,
           "MQTT connections refused (connection limit, authentication, bad CONNECT).", s.connections_refused);
  w.single("tern_clients_connected", C::gauge, "Sessions with an open connection.", s.clients_connected);
  w.single("tern_sessions", C::gauge, "Sessions, connected or not.", s.sessions);
  w.single("tern_messages_received_total", C::counter, "PUBLISH packets received from clients.",
           s.messages_received);
  w.single("tern_messages_sent_total", C::counter, "PUBLISH packets sent to clients.", s.messages_sent);
  w.single("tern_received_bytes_total", C::counter, "Bytes received on MQTT connections.", s.bytes_received);
  w.single("tern_sent_bytes_total", C::counter, "Bytes sent on MQTT connections.", s.bytes_sent);
  w.single("tern_subscriptions", C::gauge, "Subscriptions over all sessions.", s.subscriptions);
  w.single("tern_retained_messages", C::gauge, "Retained messages held.", s.retained_messages);

  w.family("tern_messages_dropped_total", C::counter, "Messages dropped, by reason (never silently).");
  w.sample("tern_messages_dropped_total", {{"reason", "queue_full"}}, s.dropped_queue_full);
  w.sample("tern_messages_dropped_total", {{"reason", "expired"}}, s.dropped_expired);
  w.sample("tern_messages_dropped_total", {{"reason", "qos0_backpressure"}}, s.dropped_qos0_backpressure);
  w.sample("tern_messages_dropped_total", {{"reason", "too_large"}}, s.dropped_too_large);
  w.sample("tern_messages_dropped_total", {{"reason", "not_authorized"}}, s.dropped_not_authorized);

  w.single("tern_protocol_errors_total", C::counter, "Connections closed for malformed or invalid input.",
           s.protocol_errors);

  w.family("tern_messages_received_by_qos_total", C::counter, "PUBLISH packets accepted from clients, by QoS.");
  for (std::size_t q = 0; q < 3; ++q) {
    w.sample("tern_messages_received_by_qos_total", {{"qos", std::to_string(q)}}, s.messages_received_qos[q]);
  }
  w.family("tern_messages_sent_by_qos_total", C::counter, "PUBLISH packets sent to clients, by QoS.");
  for (std::size_t q = 0; q < 3; ++q) {
    w.sample("tern_messages_sent_by_qos_total", {{"qos", std::to_string(q)}}, s.messages_sent_qos[q]);
  }
  w.family("tern_publishes_refused_total", C::counter,
           "PUBLISH packets refused by the ACL or the policy (quotas, schemas, signatures), by reason.");
  w.sample("tern_publishes_refused_total", {{"reason", "not_authorized"}}, s.publishes_refused_not_authorized);
  w.sample("tern_publishes_refused_total", {{"reason", "too_large"}}, s.publishes_refused_too_large);
  w.sample("tern_publishes_refused_total", {{"reason", "message_rate"}}, s.publishes_refused_rate);
  w.sample("tern_publishes_refused_total", {{"reason", "quota"}}, s.publishes_refused_quota);
  w.sample("tern_publishes_refused_total", {{"reason", "payload_format"}}, s.publishes_refused_payload);
  w.sample("tern_publishes_refused_total", {{"reason", "other"}}, s.publishes_refused_other);
  w.single("tern_subscriptions_refused_total", C::counter, "Subscriptions refused in SUBACK.",
           s.subscriptions_refused);
}

void render_store(PrometheusWriter& w, const StoreMetrics& s) {
  w.single("tern_store_commits_total", C::counter, "Store transactions committed.", s.commits);
  w.single("tern_store_fsyncs_total", C::counter, "fdatasync calls on the write-ahead log (fsync durability); one may cover several commits.", s.fsyncs);
  w.single("tern_store_write_errors_total", C::counter, "Store transactions that failed (and were retried).",
           s.write_errors);
  w.single("tern_store_commit_last_seconds", C::gauge, "Duration of the last store commit.",
           micros_to_seconds(s.last_commit_us));
  w.single("tern_store_commit_max_seconds", C::gauge, "Longest store commit since start.",
           micros_to_seconds(s.max_commit_us));
  // A summary without quantiles: rate(_sum)/rate(_count) gives the mean over any window.
  w.family("tern_store_commit_seconds", C::summary, "Store commit durations.");
  w.sample("tern_store_commit_seconds_sum", micros_to_seconds(s.avg_commit_us * s.commits));
  w.sample("tern_store_commit_seconds_count", s.commits);

  // Bucket i holds group sizes in [2^i, 2^(i+1)), so its inclusive upper bound is 2^(i+1)-1.
  w.family("tern_store_commit_group_size", C::histogram, "Writes per store commit (group commit size).");
  std::uint64_t cumulative = 0;
  const std::size_t buckets = s.batch_size_histogram.size();
  for (std::size_t i = 0; i + 1 < buckets; ++i) {
    cumulative += s.batch_size_histogram[i];
    const std::string le = std::to_string((std::uint64_t{1} << (i + 1)) - 1);
    w.sample("tern_store_commit_group_size_bucket", {{"le", le}}, cumulative);
  }
  cumulative += s.batch_size_histogram[buckets - 1];
  w.sample("tern_store_commit_group_size_bucket", {{"le", "+Inf"}}, cumulative);
  w.sample("tern_store_commit_group_size_sum", s.ops_written);
  w.sample("tern_store_commit_group_size_count", cumulative);
  if (s.database_bytes) {
    w.single("tern_store_database_bytes", C::gauge, "Size of the store's database file.", *s.database_bytes);
  }
  if (s.wal_bytes) {
    w.single("tern_store_wal_bytes", C::gauge, "Size of the store's write-ahead log file.", *s.wal_bytes);
  }
}

void render_process(PrometheusWriter& w, const ProcessStats& p) {
  if (p.resident_memory_bytes) {
    w.single("tern_process_resident_memory_bytes", C::gauge, "Resident set size.", *p.resident_memory_bytes);
  }
  if (p.virtual_memory_bytes) {
    w.single("tern_process_virtual_memory_bytes", C::gauge, "Virtual memory size.", *p.virtual_memory_bytes);
  }
  w.single("tern_process_cpu_seconds_total", C::counter, "User and system CPU time.", p.cpu_seconds);
  if (p.open_fds) w.single("tern_process_open_fds", C::gauge, "Open file descriptors.", *p.open_fds);
  if (p.max_fds) w.single("tern_process_max_fds", C::gauge, "File descriptor limit.", *p.max_fds);
  if (p.start_time_seconds) {
    w.single("tern_process_start_time_seconds", C::gauge, "Process start time since the Unix epoch.",
             *p.start_time_seconds);
  }
}

}  // namespace

MetricsSnapshot collect_metrics(const Sources& sources) {
  MetricsSnapshot snap;
  if (sources.broker_stats) snap.broker = sources.broker_stats();
  if (sources.queued_messages_total) snap.queued_messages = sources.queued_messages_total();
  if (sources.inflight_messages_total) snap.inflight_messages = sources.inflight_messages_total();
  if (sources.clients) {
    const auto clients = sources.clients();
    std::uint64_t bytes = 0;
    std::vector<std::pair<std::string, std::size_t>> depths;
    for (const auto& c : clients) {
      bytes += c.queued_bytes;
      if (c.queued_messages > 0) depths.emplace_back(c.client_id, c.queued_messages);
    }
    const std::size_t keep = std::min(depths.size(), kDeepestQueues);
    std::partial_sort(depths.begin(), depths.begin() + static_cast<std::ptrdiff_t>(keep), depths.end(),
                      [](const auto& a, const auto& b) {
                        return a.second != b.second ? a.second > b.second : a.first < b.first;
                      });
    depths.resize(keep);
    snap.deepest_queues = std::move(depths);
    snap.queued_bytes = bytes;
  }
  if (sources.store_metrics) snap.store = sources.store_metrics();
  snap.process = read_process_stats();
  snap.log_lines = log::lines_written();
  if (sources.extra_metrics) snap.extra = sources.extra_metrics();
  return snap;
}

std::string render_metrics(const MetricsSnapshot& snap) {
  PrometheusWriter w;
  w.family("tern_build_info", C::gauge, "Build and node information; always 1.");
  w.sample("tern_build_info", {{"version", snap.version}, {"node", snap.node}}, std::uint64_t{1});

  if (snap.broker) render_broker(w, *snap.broker);
  if (snap.queued_messages) {
    w.single("tern_queued_messages", C::gauge, "Messages queued for delivery over all sessions.",
             static_cast<std::uint64_t>(*snap.queued_messages));
  }
  if (snap.queued_bytes) {
    w.single("tern_queued_bytes", C::gauge, "Payload bytes queued for delivery over all sessions.",
             *snap.queued_bytes);
  }
  if (snap.queued_messages || !snap.deepest_queues.empty()) {
    w.family("tern_session_queued_messages", C::gauge, "Queue depth of the deepest session queues (top 5).");
    for (const auto& [client_id, depth] : snap.deepest_queues) {
      w.sample("tern_session_queued_messages", {{"client_id", client_id}}, static_cast<std::uint64_t>(depth));
    }
  }
  if (snap.inflight_messages) {
    w.single("tern_inflight_messages", C::gauge, "QoS 1 and 2 messages sent and not yet acknowledged.",
             static_cast<std::uint64_t>(*snap.inflight_messages));
  }
  if (snap.store) render_store(w, *snap.store);
  render_process(w, snap.process);

  w.single("tern_log_lines_total", C::counter, "Log lines written at or above the configured level.",
           snap.log_lines);
  if (!snap.alerts.empty()) {
    w.family("tern_alert_firing", C::gauge, "1 while the alert's threshold is crossed.");
    for (const auto& a : snap.alerts) {
      w.sample("tern_alert_firing", {{"alert", a.name}}, std::uint64_t{a.firing ? 1U : 0U});
    }
  }
  if (snap.admin) {
    w.single("tern_admin_requests_total", C::counter, "HTTP requests served by the admin endpoint.",
             snap.admin->requests);
    w.single("tern_admin_unauthorized_total", C::counter, "Admin requests refused for a missing or wrong token.",
             snap.admin->unauthorized);
    w.single("tern_admin_connections_refused_total", C::counter,
             "Admin connections closed at once because the connection limit was reached.",
             snap.admin->connections_refused);
    w.single("tern_admin_tls_handshakes_failed_total", C::counter,
             "Admin connections closed because the TLS handshake failed (e.g. plain HTTP on the HTTPS port).",
             snap.admin->tls_handshakes_failed);
    w.single("tern_admin_certificate_reloads_failed_total", C::counter,
             "Admin certificate reloads (SIGHUP) that failed and kept the previous certificate.",
             snap.admin->certificate_reloads_failed);
  }
  std::string out = std::move(w).take();
  out += snap.extra;
  return out;
}

}  // namespace tern::admin
