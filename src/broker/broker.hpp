// Broker: the MQTT broker core. Sans-I/O: the net layer feeds it the bytes each
// connection receives and implements Transport, Timers and Clock; the broker answers by
// sending bytes, closing connections and scheduling timers.
//
// Thread-safety: a Broker and everything it owns live on one thread (the thread of the
// io_context that drives it). Every method must be called from that thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "broker/config.hpp"
#include "broker/interfaces.hpp"
#include "broker/stats.hpp"
#include "broker/store.hpp"

namespace tern::broker {

class Broker {
 public:
  Broker(BrokerConfig config, Transport& transport, Timers& timers, Clock& clock, Store& store,
         Policy& policy);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // A transport accepted a connection. Returns false when the broker refuses it
  // (too many connections); the transport then closes it without further calls.
  bool connection_opened(ConnectionId id, std::string peer);

  // Bytes received on a connection. Returns how many were consumed (whole packets);
  // the transport keeps the rest and passes it again, extended, with the next read.
  // After the broker has closed the connection it consumes everything.
  std::size_t data_received(ConnectionId id, std::string_view bytes);

  // The peer went away (EOF, reset) or the socket failed. Not called for connections the
  // broker closed itself.
  void connection_lost(ConnectionId id);

  // The transport wrote out what was queued for `id` (its queue is empty): the broker
  // may send what it held back.
  void connection_drained(ConnectionId id);

  // Orderly shutdown: 5.0 clients get DISCONNECT 0x8B, every connection is closed.
  void shutdown();

  const BrokerStats& stats() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::broker
