// LogForward: a service's log lines (tern/log.hpp) at or above a level, published as
// JSON lines to $tern/logs/{service}/{level} through the service's own client at QoS 0,
// as ternd forwards its own (src/admin/log_forwarder.hpp).
//
// Logs are for seeing what goes on, never a reason for the service to slow down or grow,
// so every path is bounded and none blocks:
//   - a line is only queued by the logging call (bounded; beyond the bound it is dropped);
//   - a token bucket caps the rate, so a log storm cannot crowd out the service's events;
//   - lines are published from a handler posted to the io_context, and only while the
//     client is connected: QoS 0 lines are not worth an outbox, so offline they are dropped;
//   - at most max_pending lines wait in the client to be written.
// Every dropped line is counted. Lines logged while the forwarder itself publishes are
// not forwarded, so forwarding can never feed itself.
//
// Thread-safety: construct, read stats and destroy on the client's io_context thread; the
// logger may call in from any thread.
#pragma once

#include <boost/asio/io_context.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/log.hpp"
#include "core/log_forward_queue.hpp"
#include "tern/client.hpp"

namespace tern::sdk {

struct LogForwardOptions {
  std::string source;  // the {service} topic level
  log::Level min_level = log::Level::warning;
  std::size_t max_pending = 256;  // lines queued, and lines waiting in the client
  double lines_per_second = 20;   // sustained rate
  std::size_t burst = 100;        // lines allowed at once above the rate
};

struct LogForwardStats {
  std::uint64_t forwarded = 0;  // handed to the client while connected
  std::uint64_t dropped = 0;    // rate, queue bound, offline or refused by the client
};

// "$tern/logs/{source}/{level}"; `source` with '/', '+', '#' or control characters
// replaced by '_' so that it stays one topic level.
std::string log_topic(std::string_view source, log::Level level);

class LogForward {
 public:
  // `client` must outlive the forwarder.
  LogForward(boost::asio::io_context& io, LogForwardOptions options, Client& client);
  ~LogForward();
  LogForward(const LogForward&) = delete;
  LogForward& operator=(const LogForward&) = delete;

  LogForwardStats stats() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
  log::ForwardQueue queue_;  // after state_: built from it
};

}  // namespace tern::sdk
