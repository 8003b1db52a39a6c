// Broker limits and behaviour. Every field has a documented default (docs/configuration.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tern::broker {

// What to do when a session's queue of undelivered messages is full.
enum class QueueFullPolicy : std::uint8_t {
  drop_new,     // the arriving message is dropped for that session (counted)
  drop_oldest,  // the oldest queued message is dropped (counted)
  disconnect,   // the session's client is disconnected with quota exceeded (0x97)
};

// An event stream: every PUBLISH matching `filter` is appended to the stream's log.
struct StreamConfig {
  std::string name;
  std::string filter;
  std::chrono::seconds max_age{0};  // 0: no age limit
  std::uint64_t max_bytes = 0;      // payload bytes kept; 0: no limit
};

struct BrokerConfig {
  std::string node_name = "ternd";
  std::size_t max_connections = 10000;
  std::uint32_t max_packet_size = 1024 * 1024;        // bytes, both directions, announced in CONNACK
  std::uint16_t receive_maximum = 100;                // in-flight QoS 1/2 from each client (announced)
  std::uint16_t max_inflight_out = 100;               // in-flight QoS 1/2 to each client (min with its receive maximum)
  std::size_t max_queued_messages = 10000;            // per session, undelivered
  std::size_t max_queued_bytes = 64 * 1024 * 1024;    // per session, undelivered payload bytes
  QueueFullPolicy queue_full_policy = QueueFullPolicy::drop_oldest;
  std::uint16_t max_keep_alive = 3600;                // seconds; a larger or zero request is answered with server keep-alive (5.0)
  std::uint16_t topic_alias_maximum = 64;             // aliases a client may use towards the broker
  std::uint32_t max_session_expiry = 7 * 24 * 3600;   // seconds
  std::chrono::milliseconds connect_timeout{10000};   // connection that never sends CONNECT
  std::size_t max_write_queue_bytes = 4 * 1024 * 1024;  // bytes waiting in a socket before QoS 0 is held back
  bool retain_available = true;
  bool wildcard_subscriptions = true;
  bool shared_subscriptions = true;
  bool subscription_identifiers = true;
  std::chrono::seconds sys_interval{10};              // $SYS publication period while subscribed
  std::vector<StreamConfig> streams;
  std::size_t max_stream_read = 1000;                 // events answered per stream read request
};

}  // namespace tern::broker
