// Counters the broker keeps; published under $SYS/ and, later, on /metrics.
#pragma once

#include <cstdint>

namespace tern::broker {

struct BrokerStats {
  std::uint64_t connections_current = 0;
  std::uint64_t connections_total = 0;
  std::uint64_t connections_refused = 0;
  std::uint64_t clients_connected = 0;      // sessions with an open connection
  std::uint64_t sessions = 0;               // connected and disconnected persistent sessions
  std::uint64_t messages_received = 0;      // PUBLISH in
  std::uint64_t messages_sent = 0;          // PUBLISH out
  std::uint64_t messages_received_qos[3] = {0, 0, 0};  // accepted PUBLISH in, by QoS
  std::uint64_t messages_sent_qos[3] = {0, 0, 0};      // PUBLISH out, by QoS
  std::uint64_t bytes_received = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t queued_total = 0;           // deliveries that waited in a session's queue
  std::uint64_t subscriptions = 0;
  std::uint64_t retained_messages = 0;
  std::uint64_t dropped_queue_full = 0;     // a session's queue was full
  std::uint64_t dropped_expired = 0;        // message expiry passed before delivery
  std::uint64_t dropped_qos0_backpressure = 0;  // QoS 0 to a connection whose socket was full
  std::uint64_t dropped_too_large = 0;      // larger than the receiver's maximum packet size
  std::uint64_t dropped_not_authorized = 0;
  std::uint64_t protocol_errors = 0;        // connections closed for bad input
  // PUBLISH refused by the ACL or the policy (quotas, schemas, signatures), by reason.
  std::uint64_t publishes_refused_not_authorized = 0;
  std::uint64_t publishes_refused_too_large = 0;
  std::uint64_t publishes_refused_rate = 0;
  std::uint64_t publishes_refused_quota = 0;
  std::uint64_t publishes_refused_payload = 0;
  std::uint64_t publishes_refused_other = 0;
  std::uint64_t subscriptions_refused = 0;
};

}  // namespace tern::broker
