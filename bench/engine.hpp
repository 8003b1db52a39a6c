// The load engine: connections on non-blocking sockets, one epoll loop per worker thread.
//
// Design notes:
// - Publishers are pipelined: each fills its write buffer with many PUBLISH packets
//   (copies of one packet encoded by the codec, with packet id and payload header
//   patched) and sends them with one system call. QoS 1/2 publishers keep up to
//   `inflight` packets unacknowledged (never more than the broker's receive maximum).
// - An end-to-end window bounds how far a publisher may run ahead of the deliveries its
//   subscribers have counted. Without it a QoS 0 publisher outruns any broker, whose
//   queues then grow until it drops; the figure would be "how fast can the broker
//   discard". The subscribers run in the same process, so the window costs one relaxed
//   atomic per delivery.
// - Reads are large (into a per-worker scratch buffer); frames are found with
//   mqtt::parse_frame and decoded in place; only a partial packet's bytes are kept per
//   connection.
// - Every payload starts with the publisher id, a sequence number and the send time, so
//   each subscriber checks count, order and duplicates per publisher and records latency.
// - With --tls each connection runs an OpenSSL session over its non-blocking socket (the
//   SSL_CTX is a Boost.Asio ssl::context shared by the workers). SSL_read returns one
//   record at a time, so a TLS connection is read until OpenSSL wants more bytes rather
//   than until a short read; a handshake in progress counts as a pending connect.
//
// Thread-safety: run_benchmark is called once from one thread; it starts and joins its
// workers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "options.hpp"
#include "stats.hpp"

namespace tern::bench {

struct Result {
  bool setup_failed = false;  // could not connect or subscribe: the figures mean nothing
  std::string error;          // first error seen (setup, protocol, broker disconnect)

  double seconds = 0;          // from the start of publishing to the last delivery
  double publish_seconds = 0;  // from the start of publishing until the last PUBLISH was written
  std::uint64_t sent = 0;      // PUBLISH written by publishers (reqrep: requests)
  std::uint64_t acked = 0;     // PUBACK / PUBCOMP received by publishers
  std::uint64_t expected = 0;  // deliveries the subscribers should have seen
  std::uint64_t received = 0;  // deliveries (reqrep: replies), duplicates included
  std::uint64_t unique = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t out_of_order = 0;
  std::uint64_t lost = 0;
  std::uint64_t foreign = 0;   // payloads that no publisher of this run wrote
  std::uint64_t payload_bytes = 0;
  LatencyHistogram latency;    // publish to delivery (reqrep: round trip)

  double bench_cpu_seconds = 0;
  std::optional<double> broker_cpu_seconds;
  std::optional<std::uint64_t> broker_rss_bytes;       // at the end
  std::optional<std::uint64_t> broker_peak_rss_bytes;  // VmHWM

  // idle
  unsigned connections = 0;
  double connect_seconds = 0;
  std::optional<std::uint64_t> rss_before_bytes;
  std::optional<std::uint64_t> rss_with_bytes;
};

Result run_benchmark(const Options& options);

}  // namespace tern::bench
