// tern-bench's run description: what the command line asks for, after defaults.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mqtt/packets.hpp"

namespace tern::bench {

enum class Scenario : std::uint8_t {
  fanin,    // P publishers -> 1 subscriber on a wildcard
  fanout,   // 1 publisher -> N subscribers
  pairs,    // N independent publisher/subscriber pairs
  reqrep,   // requesters publish with a 5.0 response topic; responders answer
  latency,  // publishers at a fixed total rate; subscribers record delivery latency
  idle,     // N connections that only connect; the broker's memory per connection
};

std::string_view scenario_name(Scenario scenario) noexcept;

// Every run ends by itself: the measurement lasts at most this long, and draining and
// connecting have their own bounds.
inline constexpr double kMaxDurationSeconds = 120.0;

struct Options {
  Scenario scenario = Scenario::fanin;
  std::string host = "127.0.0.1";
  std::uint16_t port = 1883;
  mqtt::QoS qos = mqtt::QoS::at_most_once;
  mqtt::Version version = mqtt::Version::v5;
  std::size_t size = 64;                 // payload bytes, 16 .. 65536
  unsigned publishers = 0;               // reqrep: requesters
  unsigned subscribers = 0;              // reqrep: responders
  unsigned connections = 0;              // idle only
  std::uint64_t messages = 0;            // per publisher; 0: run for `duration`
  double duration = 5.0;                 // seconds of publishing (idle: seconds to hold)
  double rate = 0.0;                     // total messages/s over all publishers; 0: as fast as possible
  unsigned inflight = 64;                // QoS 1/2: PUBLISH awaiting PUBACK/PUBCOMP per publisher
  unsigned window = 0;                   // undelivered messages per subscriber (reqrep: per requester)
  std::size_t window_bytes = 2 << 20;    // and at most this many payload bytes (not reqrep)
  unsigned threads = 1;
  double drain = 3.0;                    // seconds to wait for deliveries after publishing stops
  double connect_timeout = 20.0;         // seconds for every connection to be ready
  int broker_pid = 0;                    // 0: broker CPU and memory are not reported
  std::string topic_prefix;              // empty: "tern-bench/<pid>"
  std::string label;                     // copied into the JSON line
  bool json = false;
  // TLS: the broker's certificate must chain to `cafile` (the system's CAs when empty) and
  // name `host` (DNS or IP subject alternative name); `cert` and `key` present a client
  // certificate (mTLS).
  bool tls = false;
  std::string cafile;
  std::string cert;
  std::string key;
};

// Fills the scenario-dependent defaults (counts, window, rate) for fields left at 0.
void apply_scenario_defaults(Options& options);

}  // namespace tern::bench
