// InProcessBroker: broker::Broker driven through memory instead of sockets.
//
// Design note. Each direction of a connection has a buffer and at most one posted flush.
// Client -> broker: the bytes wait in `to_broker` until the flush hands them to
// Broker::data_received, which keeps a partial packet for the next flush, and holds them
// while the broker paused reading (backpressure). Broker -> client: Transport::send
// appends to `to_client`; the flush gives the client everything at once (coalesced like
// a socket write) and then tells the broker the connection drained. Nothing is called
// from inside the other side's call, so the broker's "never re-entered" rule and the
// client's state machine hold as with TCP.
#include "tern/in_process.hpp"

#include <fmt/format.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <map>
#include <optional>

#include "broker/broker.hpp"
#include "sdk/in_process_link.hpp"

namespace tern {

namespace asio = boost::asio;

class InProcessBroker::Impl final : public broker::Transport,
                                    public broker::Timers,
                                    public broker::Clock,
                                    public std::enable_shared_from_this<InProcessBroker::Impl> {
 public:
  Impl(asio::io_context& io, const InProcessBrokerOptions& options) : io_(io) {
    config_.node_name = options.node_name;
    config_.max_packet_size = options.max_packet_size;
    config_.max_queued_messages = options.max_queued_messages;
  }

  void start() { broker_.emplace(config_, *this, *this, *this, store_, policy_); }

  void shutdown() {
    if (!broker_) return;
    broker_->shutdown();
    // The clients learn of the close after this object is gone: hand them what is left.
    for (auto& [id, c] : connections_) {
      asio::post(io_, [callbacks = c.callbacks, bytes = std::move(c.to_client)] {
        if (!bytes.empty() && callbacks.data) callbacks.data(bytes);
        if (callbacks.closed) callbacks.closed();
      });
    }
    connections_.clear();
    timers_.clear();
    broker_.reset();
  }

  // ---- the client's side ----

  sdk::InProcessConnectionId open(sdk::InProcessCallbacks callbacks) {
    const broker::ConnectionId id = ++next_connection_;
    connections_[id].callbacks = std::move(callbacks);
    if (!broker_->connection_opened(id, fmt::format("in-process:{}", id))) {
      connections_.erase(id);
      return 0;
    }
    ++stats_.connections_total;
    return id;
  }

  void client_send(broker::ConnectionId id, std::string bytes) {
    auto it = connections_.find(id);
    if (it == connections_.end() || it->second.closing) return;
    it->second.to_broker += bytes;
    schedule_to_broker(id, it->second);
  }

  void client_close(broker::ConnectionId id) {
    auto it = connections_.find(id);
    if (it == connections_.end()) return;
    const bool broker_knows = !it->second.closing;
    connections_.erase(it);
    if (broker_knows) broker_->connection_lost(id);
  }

  // ---- broker::Transport ----

  void send(broker::ConnectionId id, broker::SharedBytes bytes) override {
    auto it = connections_.find(id);
    if (it == connections_.end()) return;
    it->second.to_client += *bytes;
    schedule_to_client(id, it->second);
  }

  std::size_t queued_bytes(broker::ConnectionId id) const override {
    auto it = connections_.find(id);
    return it == connections_.end() ? 0 : it->second.to_client.size();
  }

  void close(broker::ConnectionId id) override {
    auto it = connections_.find(id);
    if (it == connections_.end()) return;
    it->second.closing = true;
    schedule_to_client(id, it->second);
  }

  void set_reading(broker::ConnectionId id, bool enabled) override {
    auto it = connections_.find(id);
    if (it == connections_.end()) return;
    it->second.reading = enabled;
    if (enabled) schedule_to_broker(id, it->second);
  }

  // ---- broker::Timers ----

  Id schedule(std::chrono::milliseconds delay, std::function<void()> fn) override {
    const Id id = ++next_timer_;
    auto timer = std::make_unique<asio::steady_timer>(io_, delay);
    timer->async_wait([weak = weak_from_this(), id](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      auto it = self->timers_.find(id);
      if (it == self->timers_.end()) return;
      auto callback = std::move(it->second.fn);
      self->timers_.erase(it);
      callback();
    });
    timers_.emplace(id, Timer{std::move(timer), std::move(fn)});
    return id;
  }

  void cancel(Id id) override { timers_.erase(id); }

  // ---- broker::Clock ----

  std::chrono::steady_clock::time_point now() const override { return std::chrono::steady_clock::now(); }

  InProcessBrokerStats stats() const {
    InProcessBrokerStats s = stats_;
    s.connections_current = connections_.size();
    if (broker_) {
      s.messages_received = broker_->stats().messages_received;
      s.messages_sent = broker_->stats().messages_sent;
    }
    return s;
  }

 private:
  struct Connection {
    sdk::InProcessCallbacks callbacks;
    std::string to_broker;
    std::string to_client;
    bool reading = true;
    bool closing = false;  // closed by the broker; forgotten once `to_client` is delivered
    bool to_broker_posted = false;
    bool to_client_posted = false;
  };

  struct Timer {
    std::unique_ptr<asio::steady_timer> timer;
    std::function<void()> fn;
  };

  void schedule_to_broker(broker::ConnectionId id, Connection& c) {
    if (c.to_broker_posted || !c.reading || c.to_broker.empty()) return;
    c.to_broker_posted = true;
    asio::post(io_, [weak = weak_from_this(), id] {
      if (auto self = weak.lock()) self->flush_to_broker(id);
    });
  }

  void schedule_to_client(broker::ConnectionId id, Connection& c) {
    if (c.to_client_posted) return;
    c.to_client_posted = true;
    asio::post(io_, [weak = weak_from_this(), id] {
      if (auto self = weak.lock()) self->flush_to_client(id);
    });
  }

  void flush_to_broker(broker::ConnectionId id) {
    auto it = connections_.find(id);
    if (it == connections_.end()) return;
    it->second.to_broker_posted = false;
    if (!it->second.reading || it->second.closing || !broker_) return;
    std::string bytes = std::move(it->second.to_broker);
    it->second.to_broker.clear();
    const std::size_t consumed = broker_->data_received(id, bytes);
    // The broker may have closed the connection, which erases nothing yet (closing).
    it = connections_.find(id);
    if (it == connections_.end()) return;
    it->second.to_broker.insert(0, bytes, consumed, std::string::npos);
    // A broker that stopped short of the end without pausing may take more next turn; a
    // lone partial packet waits for more bytes, a paused connection for set_reading(true).
    if (consumed > 0) schedule_to_broker(id, it->second);
  }

  void flush_to_client(broker::ConnectionId id) {
    auto it = connections_.find(id);
    if (it == connections_.end()) return;
    Connection& c = it->second;
    c.to_client_posted = false;
    std::string bytes = std::move(c.to_client);
    c.to_client.clear();
    auto callbacks = c.callbacks;
    const bool closing = c.closing;
    if (closing) connections_.erase(it);
    if (!bytes.empty() && callbacks.data) callbacks.data(bytes);
    if (closing) {
      if (callbacks.closed) callbacks.closed();
      return;
    }
    if (broker_ && connections_.count(id)) broker_->connection_drained(id);
  }

  asio::io_context& io_;
  broker::BrokerConfig config_;
  broker::MemoryStore store_;
  broker::AllowAllPolicy policy_;
  std::map<broker::ConnectionId, Connection> connections_;
  std::map<Id, Timer> timers_;
  broker::ConnectionId next_connection_ = 0;
  Id next_timer_ = 0;
  InProcessBrokerStats stats_;
  // Last: destroyed first, while the store and the policy it refers to still exist.
  std::optional<broker::Broker> broker_;
};

InProcessBroker::InProcessBroker(asio::io_context& io, InProcessBrokerOptions options)
    : impl_(std::make_shared<Impl>(io, options)) {
  impl_->start();
}

InProcessBroker::~InProcessBroker() { impl_->shutdown(); }

InProcessBrokerStats InProcessBroker::stats() const noexcept { return impl_->stats(); }

namespace sdk {

InProcessConnectionId in_process_open(const InProcessHandle& broker, InProcessCallbacks callbacks) {
  auto impl = broker.lock();
  return impl ? impl->open(std::move(callbacks)) : 0;
}

void in_process_send(const InProcessHandle& broker, InProcessConnectionId id, std::string bytes) {
  if (auto impl = broker.lock()) impl->client_send(id, std::move(bytes));
}

void in_process_close(const InProcessHandle& broker, InProcessConnectionId id) {
  if (auto impl = broker.lock()) impl->client_close(id);
}

}  // namespace sdk

}  // namespace tern
