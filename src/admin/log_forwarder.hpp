// LogForwarder: publishes log lines at or above a level on $tern/logs/{node}/{level}.
//
// Lines arrive on whatever thread logged them (the broker's, the store's writer thread, ...)
// and are never published from inside that call: they are queued (bounded; lines beyond the
// bound are counted and dropped) and published from a handler posted to the broker's
// io_context. Lines the broker logs while such a handler publishes are not forwarded, so a
// forwarded line can never cause another one (no feedback loop), even at debug level.
// The queue is core/log_forward_queue.hpp's, shared with the SDK's sdk::LogForward.
//
// Thread-safety: construct and destroy on the broker's thread; the logger may call in from
// any thread.
#pragma once

#include <boost/asio/io_context.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

#include "admin/sources.hpp"
#include "core/log.hpp"
#include "core/log_forward_queue.hpp"

namespace tern::admin {

class LogForwarder {
 public:
  LogForwarder(boost::asio::io_context& io, std::string node, log::Level min_level, Publish publish,
               std::size_t max_pending = 256);
  ~LogForwarder();
  LogForwarder(const LogForwarder&) = delete;
  LogForwarder& operator=(const LogForwarder&) = delete;

  // Lines dropped because max_pending lines were already waiting.
  std::uint64_t dropped() const;
  std::uint64_t forwarded() const;

 private:
  log::ForwardQueue queue_;
};

}  // namespace tern::admin
