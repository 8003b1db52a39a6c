// Broker: the MQTT broker core. Sans-I/O: the net layer feeds it the bytes each
// connection receives and implements Transport, Timers and Clock; the broker answers by
// sending bytes, closing connections and scheduling timers.
//
// Thread-safety: a Broker and everything it owns live on one thread (the thread of the
// io_context that drives it). Every method must be called from that thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "broker/config.hpp"
#include "broker/interfaces.hpp"
#include "broker/stats.hpp"
#include "broker/store.hpp"

namespace tern::broker {

// A view of one session for the admin API.
struct ClientInfo {
  std::string client_id;
  std::string peer;  // empty while disconnected
  bool connected = false;
  int protocol_version = 5;
  std::uint32_t session_expiry_interval = 0;
  std::size_t subscriptions = 0;
  std::size_t queued_messages = 0;
  std::size_t queued_bytes = 0;
  std::size_t inflight_messages = 0;
};

struct SubscriptionInfo {
  std::string client_id;
  std::string filter;  // with "$share/{group}/" for shared subscriptions
  int qos = 0;
  std::uint32_t subscription_id = 0;
};

class Broker {
 public:
  Broker(BrokerConfig config, Transport& transport, Timers& timers, Clock& clock, Store& store,
         Policy& policy);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // A transport accepted a connection. Returns false when the broker refuses it
  // (too many connections); the transport then closes it without further calls.
  // `transport_identity`: the client certificate's identity (mTLS) or TLS-PSK identity.
  bool connection_opened(ConnectionId id, std::string peer, std::optional<std::string> transport_identity = {});

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

  // Spans for traced messages (null: none). The tracer must outlive the broker.
  void set_tracer(Tracer* tracer) noexcept;

  // Figures owned by others (the store, the security policy) published with the broker's
  // own $SYS figures: called once a $SYS cycle, so only while someone subscribes to $SYS,
  // it appends (topic, decimal text) pairs. Topics outside "$SYS/" are ignored. It must not
  // call back into the Broker. Empty: none.
  using SysFigures = std::vector<std::pair<std::string, std::string>>;
  using SysContributor = std::function<void(SysFigures& out)>;
  void set_sys_contributor(SysContributor contributor);

  // Publishes a message from the broker itself ($tern/logs/..., $tern/alerts): routed to
  // the matching subscriptions like a client's PUBLISH, without ACL checks. Must not be
  // called from inside another Broker call (post it to the loop instead).
  void publish_internal(std::string_view topic, std::string_view payload, int qos, bool retain);

  // Introspection for the admin API (same thread as everything else).
  std::vector<ClientInfo> clients() const;
  std::vector<SubscriptionInfo> subscriptions() const;
  // Total queued messages over all sessions, and the deepest queue.
  std::size_t queued_messages_total() const;
  std::size_t inflight_messages_total() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::broker
