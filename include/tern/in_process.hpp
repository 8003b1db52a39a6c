// tern::InProcessBroker: the broker core embedded in the process, without sockets.
//
// Services that share a process (and tests) connect their Client or Service to it with
// `ClientOptions::in_process = &broker`; they exchange the same encoded MQTT packets as
// over TCP, only through memory, so everything (QoS flows, sessions, retained messages,
// request/reply, dead letters) behaves as with ternd. State lives in memory and dies
// with the object.
//
// Bytes are handed over through the io_context (posted), never by a call from inside the
// sender, so neither side is re-entered. A connection's undelivered bytes are bounded by
// the broker's max_write_queue_bytes like a socket's.
//
// Thread-safety: the broker and its clients share one io_context, run by one thread.
#pragma once

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace tern {

struct InProcessBrokerOptions {
  std::string node_name = "tern-in-process";
  std::uint32_t max_packet_size = 1024 * 1024;
  std::size_t max_queued_messages = 10000;  // per session
};

struct InProcessBrokerStats {
  std::uint64_t connections_current = 0;
  std::uint64_t connections_total = 0;
  std::uint64_t messages_received = 0;  // PUBLISH in
  std::uint64_t messages_sent = 0;      // PUBLISH out
};

class InProcessBroker {
 public:
  explicit InProcessBroker(boost::asio::io_context& io, InProcessBrokerOptions options = {});
  // Closes every connection (5.0 clients get DISCONNECT "server shutting down").
  ~InProcessBroker();
  InProcessBroker(const InProcessBroker&) = delete;
  InProcessBroker& operator=(const InProcessBroker&) = delete;

  InProcessBrokerStats stats() const noexcept;

  class Impl;
  // For the SDK's Client: connections hold it weakly, so a client that outlives the
  // broker sees its connection close and then fails to reconnect, as with a stopped ternd.
  std::weak_ptr<Impl> handle() const noexcept { return impl_; }

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace tern
