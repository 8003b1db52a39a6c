// The $SYS figures ternd adds to the broker's own through Broker::set_sys_contributor:
// the store's under $SYS/broker/store/, counters of other modules (the security policy's)
// under a prefix of their own. Values are decimal text, like the rest of $SYS.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "admin/sources.hpp"
#include "broker/broker.hpp"

namespace tern::admin {

// $SYS/broker/store/{commits, fsyncs, write_errors, writes, commit_latency_us/{last,average,max},
// group_size/{average,max}, database_bytes, wal_bytes}.
void append_store_sys_figures(const StoreMetrics& store, broker::Broker::SysFigures& out);

// $SYS/broker/messages/{queued, inflight}: what waits in session queues and in flight.
void append_queue_sys_figures(std::size_t queued_messages, std::size_t inflight_messages,
                              broker::Broker::SysFigures& out);

struct NamedCounter {
  std::string_view name;  // one or more topic levels, e.g. "auth/succeeded"
  std::uint64_t value = 0;
};
// {prefix}/{name} for each counter; `prefix` without a trailing '/'.
void append_sys_counters(std::string_view prefix, const std::vector<NamedCounter>& counters,
                         broker::Broker::SysFigures& out);

}  // namespace tern::admin
