#include "admin/sys_figures.hpp"

#include <fmt/format.h>

#include <string>

namespace tern::admin {
namespace {

void add(broker::Broker::SysFigures& out, std::string_view prefix, std::string_view name, std::uint64_t value) {
  out.emplace_back(fmt::format("{}/{}", prefix, name), std::to_string(value));
}

}  // namespace

void append_store_sys_figures(const StoreMetrics& store, broker::Broker::SysFigures& out) {
  constexpr std::string_view kPrefix = "$SYS/broker/store";
  add(out, kPrefix, "commits", store.commits);
  add(out, kPrefix, "fsyncs", store.fsyncs);
  add(out, kPrefix, "write_errors", store.write_errors);
  add(out, kPrefix, "writes", store.ops_written);
  add(out, kPrefix, "commit_latency_us/last", store.last_commit_us);
  add(out, kPrefix, "commit_latency_us/average", store.avg_commit_us);
  add(out, kPrefix, "commit_latency_us/max", store.max_commit_us);
  // Writes per commit: how well group commit shares each fsync, so a fraction matters.
  const double average_group =
      store.commits == 0 ? 0.0 : static_cast<double>(store.ops_written) / static_cast<double>(store.commits);
  out.emplace_back(fmt::format("{}/group_size/average", kPrefix), fmt::format("{:.2f}", average_group));
  add(out, kPrefix, "group_size/max", store.max_batch_ops);
  if (store.database_bytes) add(out, kPrefix, "database_bytes", *store.database_bytes);
  if (store.wal_bytes) add(out, kPrefix, "wal_bytes", *store.wal_bytes);
}

void append_queue_sys_figures(std::size_t queued_messages, std::size_t inflight_messages,
                              broker::Broker::SysFigures& out) {
  add(out, "$SYS/broker/messages", "queued", queued_messages);
  add(out, "$SYS/broker/messages", "inflight", inflight_messages);
}

void append_sys_counters(std::string_view prefix, const std::vector<NamedCounter>& counters,
                         broker::Broker::SysFigures& out) {
  for (const auto& counter : counters) add(out, prefix, counter.name, counter.value);
}

}  // namespace tern::admin
