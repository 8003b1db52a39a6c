// The seams between the broker core and the world around it. The broker is sans-I/O:
// the net layer feeds it bytes and implements Transport, Timers and Clock; tests use
// fakes. Every call into and out of the broker happens on the broker's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tern::broker {

using ConnectionId = std::uint64_t;

// Immutable encoded bytes, shared among every connection they are sent to.
using SharedBytes = std::shared_ptr<const std::string>;

class Transport {
 public:
  virtual ~Transport() = default;
  // Queues bytes for the connection; they are written in order, coalesced with whatever
  // else is queued in the same loop turn.
  virtual void send(ConnectionId id, SharedBytes bytes) = 0;
  // Bytes queued for the connection and not yet written to the socket.
  virtual std::size_t queued_bytes(ConnectionId id) const = 0;
  // Writes what is queued, then closes. No further callbacks for `id` follow, except
  // none: the broker forgets the connection when it calls close.
  virtual void close(ConnectionId id) = 0;
  // Stops or resumes reading from the connection (backpressure on a fast publisher).
  virtual void set_reading(ConnectionId id, bool enabled) = 0;
};

class Timers {
 public:
  using Id = std::uint64_t;
  virtual ~Timers() = default;
  // Runs `fn` on the broker's thread after `delay`, unless cancelled first.
  virtual Id schedule(std::chrono::milliseconds delay, std::function<void()> fn) = 0;
  virtual void cancel(Id id) = 0;
};

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::steady_clock::time_point now() const = 0;
  // Wall-clock time in milliseconds since the Unix epoch (event timestamps).
  virtual std::int64_t wall_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// An optional string that costs one pointer while unset: the std::optional<std::string>
// interface the policy uses (test, dereference, value_or, comparison), with the string on
// the heap when there is one.
class RareString {
 public:
  // Implicit conversions, as std::optional<std::string> has them.
  RareString() = default;
  RareString(std::nullopt_t) {}
  RareString(std::string value) : value_(std::make_unique<std::string>(std::move(value))) {}
  RareString(const char* value) : value_(std::make_unique<std::string>(value)) {}
  RareString(std::optional<std::string> value) {
    if (value) value_ = std::make_unique<std::string>(std::move(*value));
  }
  RareString(const RareString& other) : value_(other.value_ ? std::make_unique<std::string>(*other.value_) : nullptr) {}
  RareString(RareString&&) noexcept = default;
  RareString& operator=(const RareString& other) {
    if (this != &other) value_ = other.value_ ? std::make_unique<std::string>(*other.value_) : nullptr;
    return *this;
  }
  RareString& operator=(RareString&&) noexcept = default;
  ~RareString() = default;

  bool has_value() const noexcept { return value_ != nullptr; }
  explicit operator bool() const noexcept { return has_value(); }
  const std::string& operator*() const { return *value_; }
  std::string& operator*() { return *value_; }
  const std::string* operator->() const { return value_.get(); }
  std::string* operator->() { return value_.get(); }
  const std::string& value() const {
    if (!value_) throw std::bad_optional_access();
    return *value_;
  }
  std::string value_or(std::string_view fallback) const { return value_ ? *value_ : std::string(fallback); }
  void reset() noexcept { value_.reset(); }

  friend bool operator==(const RareString& a, const RareString& b) {
    return a.has_value() == b.has_value() && (!a.has_value() || *a == *b);
  }
  friend bool operator==(const RareString& a, std::string_view b) { return a.has_value() && *a == b; }
  friend bool operator==(const RareString& a, const char* b) { return a.has_value() && *a == b; }
  friend bool operator==(const RareString& a, std::nullopt_t) { return !a.has_value(); }

 private:
  std::unique_ptr<std::string> value_;
};

// The identity a connection presents (filled by net: TLS identity later).
//
// Every session keeps one, so its size is part of what each client costs: the fields that
// most clients leave unset are RareString, one pointer while unset instead of the 40 bytes
// of a std::optional<std::string>.
struct ClientIdentity {
  std::string client_id;
  RareString username;
  std::string peer;  // "ip:port"
  // The identity the transport established: a client certificate's CN or SAN (mTLS) or a
  // TLS-PSK identity. Empty for plain TCP.
  RareString transport_identity;
};

// What the policy says of one inbound PUBLISH that the ACL allowed.
struct PublishVerdict {
  std::uint8_t reason = 0;  // 0: accepted; else refused with this MQTT 5 reason code
                            // (0x87 not authorized, 0x95 too large, 0x96 rate, 0x97 quota, 0x99 payload format)
  std::string why;          // for the log line and the dead letter's tern-error
  // Refused messages go here when set (e.g. "$dlq/schema/{topic}"), with a tern-error user property.
  std::string dead_letter_topic;
  // Accepted messages get these user properties added (e.g. tern-schema).
  std::vector<std::pair<std::string, std::string>> add_user_properties;
  // > 0: stop reading from the publisher this long (rate limit by backpressure instead of refusal).
  std::chrono::milliseconds pause_reading{0};
};

// Authentication and authorization. The default allows everything.
class Policy {
 public:
  virtual ~Policy() = default;
  // Returns success or an error reason code for the CONNACK (e.g. bad_user_name_or_password).
  virtual std::uint8_t authenticate(const ClientIdentity& who, std::optional<std::string_view> password) = 0;

  // Authentication that may finish later, so that a slow check (a password hash) does not
  // stall the broker's thread. Returns the verdict when it is known at once (a cached
  // pair, no password to check, a refusal without checking); otherwise returns nullopt and
  // calls `done` with the verdict later, on the broker's thread, at most once, never from
  // inside this call. The broker ignores a verdict for a connection that has gone.
  // The default answers at once through authenticate().
  using AuthenticationDone = std::function<void(std::uint8_t reason)>;
  virtual std::optional<std::uint8_t> start_authentication(const ClientIdentity& who,
                                                           std::optional<std::string_view> password,
                                                           AuthenticationDone /*done*/) {
    return authenticate(who, password);
  }

  virtual bool may_publish(const ClientIdentity& who, std::string_view topic) = 0;
  virtual bool may_subscribe(const ClientIdentity& who, std::string_view filter) = 0;
  virtual bool may_receive(const ClientIdentity& who, std::string_view topic) = 0;

  // Quotas, schemas and signatures: called for every PUBLISH the ACL allowed.
  virtual PublishVerdict check_publish(const ClientIdentity& /*who*/, std::string_view /*topic*/,
                                       std::string_view /*payload*/, std::string_view /*user_properties*/) {
    return {};
  }
  // A client completed CONNECT / its connection ended (per-client state, connections per user).
  virtual void client_connected(const ClientIdentity& /*who*/) {}
  virtual void client_disconnected(const ClientIdentity& /*who*/) {}
  // Subscriptions a client may hold (0: no limit); beyond it SUBACK says 0x97.
  virtual std::size_t max_subscriptions(const ClientIdentity& /*who*/) { return 0; }
};

// Receives what the broker did with a PUBLISH that carried a W3C `traceparent` user
// property (DESIGN §2, §7): one span from its arrival to the hand-over of every delivery.
// Called on the broker's thread; an implementation samples and exports elsewhere.
class Tracer {
 public:
  virtual ~Tracer() = default;
  struct PublishSpan {
    std::string_view traceparent;  // as the publisher sent it
    std::string_view topic;
    std::string_view client_id;
    std::chrono::steady_clock::time_point received;
    std::chrono::steady_clock::time_point routed;
    std::size_t deliveries = 0;  // sessions the message was handed to
    std::uint8_t qos = 0;
  };
  virtual void publish_routed(const PublishSpan& span) = 0;
};

class AllowAllPolicy final : public Policy {
 public:
  std::uint8_t authenticate(const ClientIdentity&, std::optional<std::string_view>) override { return 0; }
  bool may_publish(const ClientIdentity&, std::string_view) override { return true; }
  bool may_subscribe(const ClientIdentity&, std::string_view) override { return true; }
  bool may_receive(const ClientIdentity&, std::string_view) override { return true; }
};

}  // namespace tern::broker
