// What the three vibration programs share: broker options on the command line, logging,
// and running a tern::Service until SIGINT or SIGTERM.
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "tern/service.hpp"

namespace vibration {

struct BrokerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 1883;
  std::string client_id;  // empty: {service}-{random}
};

inline void add_broker_options(CLI::App& app, BrokerOptions& o) {
  app.add_option("-H,--host", o.host, "Broker host")->capture_default_str();
  app.add_option("-p,--port", o.port, "Broker port")->capture_default_str();
  app.add_option("-i,--id", o.client_id, "MQTT client identifier (default: service name and a random suffix)");
}

inline tern::ServiceOptions service_options(std::string name, const BrokerOptions& b) {
  tern::ServiceOptions o;
  o.name = std::move(name);
  o.client.host = b.host;
  o.client.port = b.port;
  o.client.client_id = b.client_id;
  // Start without waiting for the broker: the client reconnects with backoff, so the
  // programs can be started in any order.
  o.client.reconnect = tern::BackoffPolicy{std::chrono::milliseconds(100), std::chrono::milliseconds(2000), 2.0, 0.3};
  return o;
}

template <class... Args>
void log(std::string_view program, fmt::format_string<Args...> format, Args&&... args) {
  fmt::print(stderr, "{}: {}\n", program, fmt::format(format, std::forward<Args>(args)...));
  std::fflush(stderr);
}

// "250ms", "20s", "2m" or a plain number of seconds.
inline std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 9) return std::nullopt;
  const long value = std::stol(std::string(text.substr(0, digits)));
  const std::string_view unit = text.substr(digits);
  if (unit == "ms") return std::chrono::milliseconds(value);
  if (unit.empty() || unit == "s") return std::chrono::milliseconds(value * 1000);
  if (unit == "m" || unit == "min") return std::chrono::milliseconds(value * 60000);
  return std::nullopt;
}

inline std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Starts the service and runs the io_context until a signal stops it (gracefully: the
// service finishes in-flight handlers and drains its publish window first).
// `on_stop` cancels the program's own timers.
inline int run_service(std::string_view program, boost::asio::io_context& io, tern::Service& service,
                       const BrokerOptions& broker, std::function<void()> on_stop = {}) {
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    log(program, "stopping");
    if (on_stop) on_stop();
    service.stop();
  });
  if (auto ec = service.start()) {
    log(program, "cannot start: {}", ec.message());
    return 1;
  }
  log(program, "connecting to {}:{}", broker.host, broker.port);
  io.run();
  return 0;
}

}  // namespace vibration
