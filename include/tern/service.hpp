// tern::Service: what a service author writes against. Handlers on topic filters,
// publish with Tern's envelope (tern-id, traceparent), request/reply, retries with a
// dead-letter topic, de-duplication of redelivered events, and an on-disk outbox
// (through the Client).
//
// Thread-safety: one io_context thread, like Client. Handlers run on that thread, one
// at a time; a handler that fails is retried later (timer), without blocking others.
//
// Health and metrics: with `http_listen` set, the service serves /healthz, /readyz and
// /metrics (Prometheus text) on that address, on the same io_context thread. Why not a
// thread of its own: the figures are then read without locks, and a handler that wedges
// the loop makes /healthz stop answering, which is what a liveness probe should see.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "tern/backoff.hpp"
#include "tern/client.hpp"
#include "tern/log.hpp"
#include "tern/message.hpp"
#include "tern/signing.hpp"

namespace tern {

// What a handler returns: success, or a failure with a reason (which ends up in the
// tern-error property if the event is dead-lettered). Handlers may also throw; an
// exception counts as a failure with its what().
// A permanent failure (a payload that can never be handled, e.g. invalid JSON) skips the
// remaining retries and goes to the dead-letter topic at once.
struct Outcome {
  bool ok = true;
  std::string error;
  bool retryable = true;
  static Outcome success() { return {}; }
  static Outcome failure(std::string why) { return {false, std::move(why)}; }
  static Outcome permanent_failure(std::string why) { return {false, std::move(why), false}; }
};

struct RetryPolicy {
  unsigned attempts = 3;  // handler calls in total, the first included
  BackoffPolicy backoff{std::chrono::milliseconds(100), std::chrono::milliseconds(5000), 2.0, 0.2};
};

struct ServiceOptions {
  std::string name;  // used in client ids and in $dlq/{name}/...
  ClientOptions client;  // client.outbox_path enables the on-disk outbox
  RetryPolicy retry;
  std::chrono::milliseconds dedup_window{std::chrono::minutes(10)};
  std::size_t dedup_capacity = 100000;
  // SQLite file for the ids of handled events (de-duplication across restarts). Empty:
  // in memory only.
  // The same file also holds the key-value state (Service::state()).
  std::string state_path;
  Qos default_qos = Qos::at_least_once;
  // "host:port" of the health and metrics endpoint; port 0 picks a free one
  // (Service::http_port()). Empty: no endpoint.
  std::string http_listen;
  // /readyz reports "overloaded" from this many unacknowledged publishes on;
  // 0: 90 % of client.outbox_capacity.
  std::size_t overload_outbox_depth = 0;
  // OTLP/HTTP collector ("http://HOST:PORT/v1/traces") for the service's spans: a
  // CONSUMER span "process {topic}" for each handler call on an event whose traceparent
  // is sampled, a PRODUCER span "publish {topic}" for each publish in a sampled trace.
  // Empty: no spans are recorded (traceparents are still propagated).
  std::string trace_endpoint;
  // Share of new traces (publishes outside a handler) that are sampled; an incoming
  // traceparent's sampled flag is never overruled. Use the broker's ratio so that a
  // trace is kept or dropped whole.
  double trace_sample_ratio = 1.0;
  // Log lines (tern/log.hpp) at or above this level are also published, as JSON, to
  // $tern/logs/{name}/{level} through this service's client at QoS 0: bounded and rate
  // limited, dropped (and counted in ServiceStats) while offline. Unset: not forwarded.
  // The logger is per process: with several services in one process, set it on one.
  std::optional<log::Level> log_forward_level;
  // Event signatures (tern/signing.hpp, docs/sdk.md "Signatures"): with signing.key set,
  // every event this service publishes carries tern-producer and tern-sig; events consumed
  // on verification.required_on without a valid signature never reach a handler.
  SigningOptions signing;
  VerificationOptions verification;
};

class Service;

// A consumed event, as a handler sees it.
class Event {
 public:
  const Message& message() const noexcept { return *message_; }
  const std::string& topic() const noexcept { return message_->topic; }
  const std::string& payload() const noexcept { return message_->payload; }
  unsigned attempt() const noexcept { return attempt_; }  // 1 on the first call
  const std::string& traceparent() const noexcept { return traceparent_; }

  // Built by the service for each handler call; `m` must outlive the Event.
  Event(const Message& m, unsigned attempt, std::string traceparent)
      : message_(&m), attempt_(attempt), traceparent_(std::move(traceparent)) {}

 private:
  const Message* message_;
  unsigned attempt_;
  std::string traceparent_;
};

// Handler call durations. Bucket bounds in seconds, from 0.5 ms (a lookup) to 10 s (a
// handler calling out to something slow); `counts[i]` holds the calls that took at most
// kBounds[i] and more than kBounds[i - 1], `overflow` the slower ones.
struct LatencyHistogram {
  static constexpr std::array<double, 14> kBounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
  std::array<std::uint64_t, kBounds.size()> counts{};
  std::uint64_t overflow = 0;
  std::uint64_t count = 0;
  double sum_seconds = 0;

  void observe(double seconds) noexcept {
    std::size_t i = 0;
    while (i < kBounds.size() && seconds > kBounds[i]) ++i;
    if (i < kBounds.size()) ++counts[i];
    else ++overflow;
    ++count;
    sum_seconds += seconds;
  }
};

struct ServiceStats {
  std::uint64_t handled = 0;       // handler calls that succeeded
  std::uint64_t failed = 0;        // handler calls that failed
  std::uint64_t retried = 0;       // retries scheduled
  std::uint64_t dead_lettered = 0;
  std::uint64_t duplicates = 0;    // events skipped because their tern-id was seen
  std::size_t outbox_depth = 0;
  std::size_t inflight_events = 0;  // consumed, not yet finished (retries included)
  std::uint64_t reconnects = 0;     // connections established after the first
  std::uint64_t connection_losses = 0;
  std::uint64_t outbox_rejected = 0;
  std::uint64_t outbox_dropped = 0;
  bool connected = false;
  LatencyHistogram handler_latency;
  std::uint64_t log_lines_forwarded = 0;  // ServiceOptions::log_forward_level
  std::uint64_t log_lines_dropped = 0;
  SignatureRefusals signature_refusals;  // ServiceOptions::verification
};

// Whether the service should receive work; `reason` says why not ("not connected to the
// broker", "overloaded: ...", "stopping").
struct Readiness {
  bool ready = false;
  std::string reason;
};

class StateStore;

using Handler = std::function<Outcome(const Event&)>;
// Returns the reply payload, or an error string (the requester then gets no reply).
using Responder = std::function<Outcome(const Event&, std::string& reply)>;
using RequestCallback = std::function<void(std::error_code ec, Message reply)>;

class Service {
 public:
  Service(boost::asio::io_context& io, ServiceOptions options);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Registers a handler; call before start() or after (it subscribes then).
  void on(std::string filter, Handler handler, std::optional<Qos> qos = std::nullopt);
  void respond(std::string filter, Responder responder);

  std::error_code start();
  // Stops taking new events, lets in-flight ones finish (retries included), drains the
  // publish window, disconnects, then calls `done`.
  void stop(std::function<void()> done = {});

  // Publishes with a new tern-id and a traceparent: the current event's trace when
  // called from a handler, a new trace otherwise.
  std::error_code publish(std::string topic, std::string payload, std::optional<Qos> qos = std::nullopt,
                          PublishCallback done = {});
  std::error_code publish(Message message, PublishCallback done = {});
  void request(std::string topic, std::string payload, std::chrono::milliseconds timeout, RequestCallback done);

  Qos default_qos() const noexcept;
  Client& client() noexcept;
  ServiceStats stats() const noexcept;
  bool ready() const noexcept;
  Readiness readiness() const;
  // The port of the health and metrics endpoint once start() succeeded (0: none).
  std::uint16_t http_port() const noexcept;
  // The service's key-value state (tern/state.hpp), in `state_path` (in memory when
  // empty). Usable after start() returned success.
  StateStore& state();

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace tern
