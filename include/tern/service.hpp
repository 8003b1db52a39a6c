// tern::Service: what a service author writes against. Handlers on topic filters,
// publish with Tern's envelope (tern-id, traceparent), request/reply, retries with a
// dead-letter topic, de-duplication of redelivered events, and an on-disk outbox
// (through the Client).
//
// Thread-safety: one io_context thread, like Client. Handlers run on that thread, one
// at a time; a handler that fails is retried later (timer), without blocking others.
#pragma once

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
#include "tern/message.hpp"

namespace tern {

// What a handler returns: success, or a failure with a reason (which ends up in the
// tern-error property if the event is dead-lettered). Handlers may also throw; an
// exception counts as a failure with its what().
struct Outcome {
  bool ok = true;
  std::string error;
  static Outcome success() { return {}; }
  static Outcome failure(std::string why) { return {false, std::move(why)}; }
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
  std::string state_path;
  Qos default_qos = Qos::at_least_once;
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

struct ServiceStats {
  std::uint64_t handled = 0;       // handler calls that succeeded
  std::uint64_t failed = 0;        // handler calls that failed
  std::uint64_t retried = 0;       // retries scheduled
  std::uint64_t dead_lettered = 0;
  std::uint64_t duplicates = 0;    // events skipped because their tern-id was seen
  std::size_t outbox_depth = 0;
};

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

  Client& client() noexcept;
  ServiceStats stats() const noexcept;
  bool ready() const noexcept;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace tern
