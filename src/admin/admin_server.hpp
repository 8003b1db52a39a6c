// AdminServer: the HTTP/1.1 admin endpoint (Boost.Beast) on the broker's io_context.
//
//   GET /healthz                200 "ok" while the loop runs; never needs the token
//   GET /readyz                 200 or 503, JSON naming each check and why it fails
//   GET /metrics                Prometheus text format 0.0.4
//   GET /api/v1/status          JSON summary
//   GET /api/v1/clients         JSON, ?limit=N (default and maximum: max_list_items)
//   GET /api/v1/subscriptions   JSON, ?limit=N
//   GET /api/v1/logs            JSON, ?level=debug|info|warning|error&limit=N
//
// With a certificate and key configured the endpoint speaks HTTPS only (TLS 1.2 or 1.3): a
// plain HTTP request on that port fails the handshake and its connection is closed, so a
// token is never read from a clear-text connection. SIGHUP reloads the certificate
// (reload_certificates): connections keep the context they started with, new ones get the
// new one, and a certificate that fails to load leaves the previous one in place.
//
// It shares the broker's thread, so the Sources are called directly with no locking; the
// price is that a slow scrape delays MQTT traffic, which is why every request is bounded
// (header size, no request body, list limits) and connections are few and time out.
// With no admin connection open it holds no timer and wakes nothing.
//
// Thread-safety: construct, start, stop and destroy on the io_context's thread (or before
// it runs). Handlers run on that thread.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "admin/metrics.hpp"
#include "admin/sources.hpp"
#include "core/expected.hpp"

namespace tern::admin {

class AdminConnection;

struct AdminConfig {
  std::string listen = "127.0.0.1:8080";  // HOST:PORT, [IPV6]:PORT; port 0: any free port
  std::string bearer_token;               // empty: no authentication
  std::string node_name = "ternd";
  std::string version = "unknown";
  std::size_t max_connections = 16;
  std::size_t max_header_bytes = 8192;
  std::chrono::milliseconds idle_timeout{30000};
  std::size_t max_list_items = 10000;
  // HTTPS: PEM certificate (chain) and private key. Both empty: plain HTTP.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::chrono::milliseconds handshake_timeout{10000};

  bool tls() const { return !tls_cert_file.empty(); }
};

class AdminServer {
 public:
  // Extra figures owned by someone else (the alert monitor), read at every scrape.
  using AlertProvider = std::function<std::vector<AlertStatus>()>;

  AdminServer(boost::asio::io_context& io, AdminConfig config, Sources sources);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  void set_alert_provider(AlertProvider provider);

  // With TLS configured: reads the certificate and key. start() calls it when it has not
  // been called yet; calling it first tells a bad certificate (a configuration error)
  // apart from an address that cannot be bound. The error names the file and the reason.
  Expected<void, std::string> load_certificates();
  // Binds and starts accepting. The error names the address and the reason.
  Expected<void, std::string> start();
  // "host:port" actually bound (after start).
  std::string bound_endpoint() const;
  // "http" or "https".
  std::string_view scheme() const;
  // Reads the certificate and key again (SIGHUP) and logs the outcome; on failure the
  // previous ones stay. Does nothing without TLS.
  Expected<void, std::string> reload_certificates();
  // Stops accepting and closes every admin connection.
  void stop();

 private:
  friend class AdminConnection;
  struct State;
  std::shared_ptr<State> state_;
};

// Splits "HOST:PORT" or "[IPV6]:PORT".
Expected<std::pair<std::string, std::uint16_t>, std::string> split_host_port(std::string_view address);

}  // namespace tern::admin
