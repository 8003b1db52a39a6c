// Drives one traced event through ternd with two SDK services, for test_sdk_tracing.py:
// "trace-producer" publishes demo/orders (a new sampled trace), "trace-consumer" handles
// it and publishes demo/shipped from its handler. Both export spans to ENDPOINT.
//
// Usage: sdk_trace_chain HOST PORT ENDPOINT [fail]
// With "fail", the consumer's handler fails (one attempt, dead-lettered) instead.
// Prints one line, "handled TRACEPARENT" (what the handler saw), and exits 0 once both
// services stopped (which sends their spans); exits 1 on a timeout or an error.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "tern/service.hpp"

namespace {

tern::ServiceOptions options(std::string name, const std::string& host, std::uint16_t port, const std::string& endpoint) {
  tern::ServiceOptions o;
  o.name = std::move(name);
  o.client.host = host;
  o.client.port = port;
  o.retry.attempts = 1;
  o.trace_endpoint = endpoint;
  o.trace_sample_ratio = 1.0;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: sdk_trace_chain HOST PORT ENDPOINT [fail]\n";
    return 2;
  }
  const std::string host = argv[1];
  const auto port = static_cast<std::uint16_t>(std::atoi(argv[2]));
  const std::string endpoint = argv[3];
  const bool fail = argc > 4 && std::string(argv[4]) == "fail";

  boost::asio::io_context io;
  boost::asio::steady_timer deadline(io, std::chrono::seconds(20));
  bool timed_out = false;
  deadline.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    timed_out = true;
    io.stop();
  });

  int exit_code = 1;
  {
    tern::Service producer(io, options("trace-producer", host, port, endpoint));
    tern::Service consumer(io, options("trace-consumer", host, port, endpoint));
    int stopped = 0;
    auto on_stopped = [&] {
      // Both clients have disconnected; whatever else is queued on `io` does not matter.
      if (++stopped == 2) io.stop();
    };
    consumer.on("demo/orders", [&](const tern::Event& e) -> tern::Outcome {
      std::cout << "handled " << e.traceparent() << std::endl;
      tern::Outcome outcome = tern::Outcome::success();
      if (fail) {
        outcome = tern::Outcome::permanent_failure("cannot ship");
      } else if (auto ec = consumer.publish("demo/shipped", "{}")) {
        outcome = tern::Outcome::failure("publish failed: " + ec.message());
      }
      // stop() lets this event finish and drains the publish window first.
      consumer.stop(on_stopped);
      producer.stop(on_stopped);
      return outcome;
    });
    if (auto ec = consumer.start()) {
      std::cerr << "consumer start: " << ec.message() << "\n";
      return 1;
    }
    if (auto ec = producer.start()) {
      std::cerr << "producer start: " << ec.message() << "\n";
      return 1;
    }
    // Subscribing again to the filter the service subscribed to changes nothing at the
    // broker, but its SUBACK says the subscription is in place before anything is sent.
    consumer.client().subscribe({tern::Subscription{"demo/orders", tern::Qos::at_least_once}},
                                [&](std::error_code ec, std::vector<std::uint8_t>) {
                                  if (ec) {
                                    std::cerr << "subscribe: " << ec.message() << "\n";
                                    io.stop();
                                    return;
                                  }
                                  if (auto pec = producer.publish("demo/orders", "{\"id\":1}")) {
                                    std::cerr << "publish: " << pec.message() << "\n";
                                    io.stop();
                                  }
                                });
    io.run();
    exit_code = (timed_out || stopped != 2) ? 1 : 0;
    if (timed_out) std::cerr << "timed out\n";
  }  // the services' destructors send the spans still queued
  return exit_code;
}
