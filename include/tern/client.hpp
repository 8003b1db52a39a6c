// tern::Client: an MQTT 5.0 (or 3.1.1) client on Boost.Asio.
//
// Thread-safety: a Client lives on one io_context and every call, and every callback,
// happens on the thread running it. Callbacks never throw into the client; errors are
// std::error_code values (tern::Errc) with the broker's reason code beside them.
//
// Delivery model: QoS 1/2 publishes enter an ordered queue (on disk when
// `outbox_path` is set) and leave it in order, at most min(broker receive maximum,
// max_inflight) at a time. They stay queued while the broker is unreachable and are
// removed only when acknowledged, so a restart of the process sends again whatever was
// not acknowledged. Subscriptions are remembered and sent again after a reconnect
// without a session.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "tern/backoff.hpp"
#include "tern/error.hpp"
#include "tern/message.hpp"

namespace boost::asio {
class io_context;
}

namespace tern {

class InProcessBroker;

enum class OutboxFullPolicy : std::uint8_t {
  reject_new,   // publish() returns Errc::outbox_full
  drop_oldest,  // the oldest queued message is dropped (its callback gets Errc::dropped)
};

struct WillMessage {
  std::string topic;
  std::string payload;
  Qos qos = Qos::at_most_once;
  bool retain = false;
};

// TLS to the broker (a ternd `tls` listener). The certificate files are read by start();
// a file that cannot be used makes start() fail with Errc::invalid_argument (last_error()
// says which and why). Every connect attempt, reconnects included, does a full handshake.
struct TlsOptions {
  bool enabled = false;
  // PEM CAs the broker's certificate must chain to; empty: the system's trusted CAs.
  std::string ca_file;
  // Client certificate chain (PEM, leaf first) and its private key, for brokers that ask
  // for one (mTLS). Both or neither.
  std::string cert_file;
  std::string key_file;
  // Sent as SNI (unless it is an IP address) and required in the broker's certificate
  // (DNS or IP subject alternative name). Empty: `host`.
  std::string server_name;
  // false accepts any certificate and any name: only for tests and first experiments.
  bool verify = true;
};

struct ClientOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 1883;
  // Set: connect to this embedded broker through memory (tern/in_process.hpp) instead
  // of TCP to host:port. It must exist when start() is called.
  InProcessBroker* in_process = nullptr;
  TlsOptions tls;  // not used with in_process
  int protocol_version = 5;  // 5 or 4 (3.1.1)
  std::string client_id;     // empty: the broker assigns one (clean start only)
  bool clean_start = true;
  std::uint32_t session_expiry_interval = 0;  // seconds, 5.0 only
  std::uint16_t keep_alive = 30;              // seconds, 0 disables PINGREQ
  std::optional<WillMessage> will;
  std::optional<std::string> username;
  std::optional<std::string> password;
  std::uint16_t receive_maximum = 64;  // what this client accepts in flight from the broker
  std::uint16_t max_inflight = 64;     // own cap on top of the broker's receive maximum
  std::chrono::milliseconds connect_timeout{5000};
  bool auto_reconnect = true;
  BackoffPolicy reconnect{std::chrono::milliseconds(100), std::chrono::milliseconds(10000), 2.0, 0.5};
  // Queue of messages not yet acknowledged. With a path it is a SQLite file that
  // survives restarts of the process.
  std::string outbox_path;
  std::size_t outbox_capacity = 10000;
  OutboxFullPolicy outbox_full_policy = OutboxFullPolicy::reject_new;
};

struct Subscription {
  std::string filter;
  Qos qos = Qos::at_least_once;
  bool no_local = false;
  bool retain_as_published = false;
  std::uint8_t retain_handling = 0;  // 0 send on subscribe, 1 only if new, 2 never
};

struct ClientStats {
  std::uint64_t connects = 0;
  std::uint64_t connection_losses = 0;
  std::uint64_t published = 0;      // acknowledged (or sent, for QoS 0)
  std::uint64_t received = 0;
  std::uint64_t outbox_rejected = 0;
  std::uint64_t outbox_dropped = 0;
};

// Completion of one publish: ec empty on success; on Errc::rejected the reason code
// says why (e.g. 0x87 not authorized). QoS 0 completes when written.
using PublishCallback = std::function<void(std::error_code ec, std::uint8_t reason_code)>;
// One reason code per filter, in order (granted QoS or an error code).
using SubscribeCallback = std::function<void(std::error_code ec, std::vector<std::uint8_t> reason_codes)>;
using MessageCallback = std::function<void(const Message&)>;
// Acknowledges a delivery; for QoS 1/2 the broker sees PUBACK/PUBREC only then.
using AckFunction = std::function<void()>;
using AsyncMessageCallback = std::function<void(Message, AckFunction ack)>;

class Client {
 public:
  Client(boost::asio::io_context& io, ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Opens the on-disk outbox (if configured) and starts connecting. An outbox that
  // cannot be opened is the only error returned here; connection problems arrive
  // through on_connection_lost.
  std::error_code start();
  // Sends DISCONNECT (after the in-flight window drained, if `drain`) and stops
  // reconnecting. `done` runs once the socket is closed.
  void stop(bool drain = false, std::function<void()> done = {});

  // Queues a message. Returns an error at once for an invalid topic or a full outbox
  // with the reject_new policy; otherwise `done` reports the outcome.
  std::error_code publish(Message message, PublishCallback done = {});
  void subscribe(std::vector<Subscription> subscriptions, SubscribeCallback done = {});
  void unsubscribe(std::vector<std::string> filters, SubscribeCallback done = {});

  // Exactly one of these receives messages: the first acknowledges after returning,
  // the second when the handler calls `ack` (which may be later).
  void on_message(MessageCallback callback);
  void on_message_async(AsyncMessageCallback callback);
  void on_connected(std::function<void(bool session_present)> callback);
  // A connect attempt failed or an established connection was lost.
  void on_connection_lost(std::function<void(std::error_code ec, std::uint8_t reason_code)> callback);

  bool connected() const noexcept;
  // Messages queued or in flight (QoS 1/2 not yet acknowledged, QoS 0 not yet written).
  std::size_t pending() const noexcept;
  const std::string& client_id() const noexcept;  // the assigned one after CONNACK
  ClientStats stats() const noexcept;
  // Why the last connect attempt failed or the connection was lost, in words (e.g.
  // "TLS handshake with 127.0.0.1:8883 failed: certificate verify failed: unable to get
  // local issuer certificate"); empty while nothing failed.
  const std::string& last_error() const noexcept;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace tern
