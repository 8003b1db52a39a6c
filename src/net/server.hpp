// Server: TCP, TLS and WebSocket listeners on Boost.Asio feeding one Broker. Implements the broker's
// Transport, Timers and Clock on one io_context.
//
// Reading: each connection waits for readability (async_wait), then reads into a
// per-thread scratch buffer; only the bytes of a partial packet are kept per connection,
// so an idle connection holds no buffer. Writing: whatever the broker queues for a
// connection during one loop turn goes out in one scatter-gather write.
//
// Threads: with `threads` = 1 everything runs on the thread that calls run(). With N > 1,
// connections are spread over N event loops: one on the calling thread, which also runs
// the broker, the listeners and the timers, and N - 1 threads of the server's own that
// only do network I/O and hand packets to the broker's thread in batches (server.cpp).
//
// Thread-safety: the broker, the store's completions and io_context() belong to the thread
// that calls run(); stop() may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <functional>

#include "broker/broker.hpp"
#include "broker/config.hpp"
#include "broker/store.hpp"
#include "core/expected.hpp"
#include "net/listener_config.hpp"

namespace tern::net {

// Runs `fn` on the server's thread; callable from any thread.
using PostFn = std::function<void(std::function<void()>)>;
// Makes the broker's store; it may complete work on the server's thread through `post`.
// Without one the server keeps its state in memory.
using StoreFactory = std::function<std::unique_ptr<broker::Store>(PostFn post)>;

// Failures of the transports, counted since start (the server's thread reads them).
struct TransportStats {
  std::uint64_t handshakes_failed = 0;     // TLS handshake or WebSocket upgrade refused
  std::uint64_t handshakes_timed_out = 0;  // not completed within the listener's timeout
  std::uint64_t certificate_reloads_failed = 0;
};

class Server {
 public:
  // `policy` (authentication, ACLs, quotas...) must outlive the server; null: allow all.
  // `threads`: event loops for connections, 1 to 64.
  explicit Server(broker::BrokerConfig config, const StoreFactory& make_store = {},
                  broker::Policy* policy = nullptr, unsigned threads = 1);

  // Called on the server's thread on SIGHUP (certificates, ACLs). Register before run().
  void on_reload(std::function<void()> handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every listener (TLS listeners load their files first; SIGHUP reloads them).
  // Error text names the address and the reason.
  Expected<void, std::string> listen(const std::vector<ListenerConfig>& listeners);
  // "host:port" of every bound listener, in order.
  std::vector<std::string> bound_endpoints() const;
  // Call on the server's thread.
  TransportStats transport_stats() const;
  // Event loops serving connections.
  std::size_t threads() const;
  // Runs until stop() or SIGINT/SIGTERM; then shuts the broker down cleanly.
  void run();
  void stop();

  // For modules that share the server's thread (admin endpoint, timers of the app).
  boost::asio::io_context& io_context();
  broker::Broker& broker();
  broker::Store& store();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::net
