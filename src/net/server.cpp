// Design notes.
//
// Connection lifetime. A Connection is reference-counted (intrusive, one word): held by the
// connection table while the connection exists, and by every pending Asio handler. Broker callbacks may re-enter the
// transport (send to others, close any connection, including the one being read), so
// every step that follows a broker call re-checks the connection's state instead of
// assuming it. Ids are never reused, so a stale id finds nothing.
//
// States: open -> flushing (the broker called close: no more reading, the queue is still
// written) -> lingering (send side shut down; input is read and discarded until the peer's
// FIN, so that closing with unread input does not turn into a RST that could destroy the
// final DISCONNECT or CONNACK before the peer reads it) -> closed (socket closed, removed
// from the map). The broker hears nothing about a connection once it has called close;
// a connection that fails while open is reported with connection_lost.
//
// Reading. A connection waits for readability, then reads with non-blocking read_some into
// the server's scratch buffer. Only an unconsumed tail (a partial packet) is copied into
// the connection, so an idle connection holds no read buffer. A plain TCP read that does
// not fill the buffer ends the turn without the read that would only say EAGAIN.
//
// Idle cost. What an idle plain-TCP connection holds here: the Connection (socket typed on
// the io_context's executor, which is 48 bytes smaller than any_io_executor, in the
// operations as well), Asio's reactor state for the descriptor, the pending readability
// wait, and one slot in the connection table. Write queues, partial packets and deadlines
// are allocated only while in use.
//
// Transports. A Stream is a plain TCP socket, a TlsStream (TLS driven by readiness on the
// socket, see tls_stream.hpp) or a WsStream (WebSocket, plain or TLS); the logic above and
// below is the same for all. A TLS or WebSocket connection first goes through `handshaking`
// with a deadline; only once the handshake is complete does the broker hear of it, with
// the identity the handshake proved (client certificate or PSK identity). Handshake state
// (deadline, peer name) lives in a separate allocation that is freed when it ends.
//
// Certificates. Each TLS listener holds a shared TlsContext; SIGHUP builds new ones from the
// same files. New connections take the new context, existing ones keep theirs.
//
// Writing. send() appends to the connection's write queue and puts the connection on a
// server-wide flush list; one posted task per loop turn starts a scatter-gather write for
// every connection on it. The pending and writing vectors swap places when a whole queue
// fits in one batch. Small packets are copied into one buffer per queue, so that a write
// carries hundreds of deliveries in a few iovecs rather than one iovec each (with Asio's
// limit of 64 buffers per call, that meant one sendmsg per 16-64 small packets).
// A connection holds a write queue only while it has something to write;
// drained queues go back to a small server-wide pool, so steady traffic allocates nothing
// and idle connections hold none.
#include "net/server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/iterator/transform_iterator.hpp>
#include <boost/smart_ptr/intrusive_ptr.hpp>
#include <boost/smart_ptr/intrusive_ref_counter.hpp>

#include <csignal>
#include <fmt/format.h>
#include <iterator>
#include <optional>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>

#include "broker/broker.hpp"
#include "broker/interfaces.hpp"
#include "broker/store.hpp"
#include "core/log.hpp"
#include "net/tls_context.hpp"
#include "net/tls_stream.hpp"
#include "net/ws_stream.hpp"

namespace tern::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using broker::ConnectionId;
using broker::SharedBytes;

constexpr std::string_view kLog = "net";
constexpr std::size_t kScratchBytes = 64 * 1024;
constexpr int kReadsPerWakeup = 16;  // then back to the reactor, so one busy peer cannot starve the rest
constexpr std::size_t kMaxBatchBuffers = 64;
constexpr std::size_t kCoalesceMaxPacket = 1024;      // packets up to this size are copied into the tail
constexpr std::size_t kCoalesceBufferBytes = 64 * 1024;  // a tail grows up to about this, then a new one starts
constexpr std::size_t kCoalesceInitialBytes = 1024;
constexpr std::size_t kPooledSpareBytes = 16 * 1024;  // a pooled queue keeps a spare buffer up to this capacity
constexpr std::size_t kMaxBatchBytes = 1024 * 1024;
constexpr std::size_t kKeptVectorCapacity = 16;  // beyond this, an emptied queue gives its memory back
constexpr std::size_t kPooledWriteQueues = 64;   // drained write queues kept for the next sender
constexpr auto kCloseTimeout = std::chrono::seconds(2);  // flush + linger after the broker's close
constexpr auto kShutdownGrace = std::chrono::seconds(1);
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);

// Plain TCP sockets are bound to the io_context's executor type rather than the
// polymorphic any_io_executor: 48 bytes less per socket and per pending operation.
using TcpSocket = asio::basic_stream_socket<tcp, asio::io_context::executor_type>;

std::string format_endpoint(const tcp::endpoint& endpoint) {
  if (endpoint.address().is_v6()) return fmt::format("[{}]:{}", endpoint.address().to_string(), endpoint.port());
  return fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
}

struct ToConstBuffer {
  asio::const_buffer operator()(const SharedBytes& bytes) const { return asio::buffer(*bytes); }
};

// The buffers of one write as an Asio buffer sequence, without building a vector of
// const_buffer for every write.
class WriteBuffers {
 public:
  using value_type = asio::const_buffer;
  using const_iterator = boost::transform_iterator<ToConstBuffer, std::vector<SharedBytes>::const_iterator,
                                                   asio::const_buffer, asio::const_buffer>;
  explicit WriteBuffers(const std::vector<SharedBytes>& buffers) : buffers_(&buffers) {}
  const_iterator begin() const { return const_iterator(buffers_->begin(), ToConstBuffer{}); }
  const_iterator end() const { return const_iterator(buffers_->end(), ToConstBuffer{}); }

 private:
  const std::vector<SharedBytes>* buffers_;
};

template <class T>
void release_if_large(std::vector<T>& v) {
  if (v.capacity() > kKeptVectorCapacity) std::vector<T>().swap(v);
}

// One connection's byte stream, whatever the transport. Handlers are passed through with
// their own types (no type erasure) on the TCP and TLS paths, which carry the device traffic.
class Stream {
 public:
  explicit Stream(TcpSocket socket) : stream_(std::move(socket)) {}
  explicit Stream(std::unique_ptr<TlsStream> tls) : stream_(std::move(tls)) {}
  explicit Stream(std::unique_ptr<WsStream> ws) : stream_(std::move(ws)) {}

  bool is_tcp() const { return std::holds_alternative<TcpSocket>(stream_); }

  TlsStream* tls() {
    auto* p = std::get_if<std::unique_ptr<TlsStream>>(&stream_);
    return p != nullptr ? p->get() : nullptr;
  }
  WsStream* ws() {
    auto* p = std::get_if<std::unique_ptr<WsStream>>(&stream_);
    return p != nullptr ? p->get() : nullptr;
  }

  template <class Handler>
  void async_wait_readable(Handler handler) {
    if (auto* socket = std::get_if<TcpSocket>(&stream_)) {
      socket->async_wait(TcpSocket::wait_read, std::move(handler));
    } else if (auto* t = tls()) {
      t->async_wait_readable(std::move(handler));
    } else {
      ws()->async_wait_readable(std::move(handler));
    }
  }

  std::size_t read_some(asio::mutable_buffer buffer, error_code& ec) {
    if (auto* socket = std::get_if<TcpSocket>(&stream_)) return socket->read_some(buffer, ec);
    if (auto* t = tls()) return t->read_some(buffer, ec);
    return ws()->read_some(buffer, ec);
  }

  template <class Handler>
  void async_write(const std::vector<SharedBytes>& buffers, Handler handler) {
    if (auto* socket = std::get_if<TcpSocket>(&stream_)) {
      asio::async_write(*socket, WriteBuffers(buffers),
                        [handler = std::move(handler)](error_code ec, std::size_t) mutable { handler(ec); });
    } else if (auto* t = tls()) {
      t->async_write(buffers, std::move(handler));
    } else {
      ws()->async_write(buffers, std::move(handler));
    }
  }

  void shutdown_send(error_code& ec) {
    if (auto* socket = std::get_if<TcpSocket>(&stream_)) {
      socket->shutdown(TcpSocket::shutdown_send, ec);
    } else if (auto* t = tls()) {
      t->shutdown_send(ec);
    }
  }

  void close(error_code& ec) {
    if (auto* socket = std::get_if<TcpSocket>(&stream_)) {
      socket->close(ec);
    } else if (auto* t = tls()) {
      t->close(ec);
    } else {
      ws()->close(ec);
    }
  }

  std::optional<std::string> identity() {
    if (auto* t = tls()) return t->identity();
    if (auto* w = ws()) return w->identity();
    return std::nullopt;
  }

 private:
  std::variant<TcpSocket, std::unique_ptr<TlsStream>, std::unique_ptr<WsStream>> stream_;
};

// Only while a TLS or WebSocket handshake runs (with its peer and listener for the log
// lines), or while the connection closes.
struct Deadline {
  explicit Deadline(asio::io_context& io) : timer(io) {}
  Deadline(asio::io_context& io, std::string peer_name, std::string listener_name, Transport t)
      : timer(io), peer(std::move(peer_name)), listener(std::move(listener_name)), transport(t) {}
  asio::steady_timer timer;
  std::string peer;
  std::string listener;
  Transport transport = Transport::tcp;
};

// What is queued for a connection; only while there is something to write.
//
// Small packets (acknowledgements, small PUBLISH) are copied into a buffer of the queue's
// own, `tail`, which is the last entry of `pending` while it can still grow: copying
// a few dozen bytes costs less than one more iovec for the kernel to walk and one
// more shared reference, and a write then carries many packets in a few buffers.
// Once a write takes the tail it is immutable; when that write completes, the
// buffer becomes the `spare` for the next tail, so steady traffic allocates nothing.
struct WriteQueue {
  bool has_pending() const { return pending_head < pending.size(); }
  std::vector<SharedBytes> pending;  // queued by the broker, not yet handed to the socket
  std::size_t pending_head = 0;      // pending[0, pending_head) were moved into a write
  std::size_t pending_bytes = 0;
  std::vector<SharedBytes> writing;  // the write in progress
  std::size_t writing_bytes = 0;
  std::shared_ptr<std::string> tail;          // pending.back() while it may still grow
  std::shared_ptr<std::string> written_tail;  // a tail that the write in progress carries
  std::shared_ptr<std::string> spare;         // an empty buffer for the next tail
};

// Fields ordered so that the reference count, state and flags share the first word.
struct Connection : boost::intrusive_ref_counter<Connection, boost::thread_unsafe_counter> {
  enum class State : std::uint8_t { handshaking, open, flushing, lingering, closed };

  Connection(ConnectionId connection_id, Stream s)
      : reading_enabled(true), read_waiting(false), write_active(false), on_flush_list(false),
        id(connection_id), stream(std::move(s)) {}

  bool has_pending() const { return out && out->has_pending(); }

  State state = State::open;
  bool reading_enabled : 1;
  bool read_waiting : 1;
  bool write_active : 1;
  bool on_flush_list : 1;
  ConnectionId id;
  Stream stream;
  std::unique_ptr<Deadline> deadline;     // only while handshaking or closing
  std::unique_ptr<std::string> partial;   // unconsumed bytes of a partial packet; null when idle
  std::unique_ptr<WriteQueue> out;        // null while nothing is queued
};

using ConnectionPtr = boost::intrusive_ptr<Connection>;

// Open connections by id: one pointer each. An id is the slot's index in its low 32 bits
// and a serial number in its high 32 bits, so that a stale id does not find the connection
// that took its slot over.
class ConnectionTable {
 public:
  // The id the next put() gets.
  ConnectionId next_id() {
    const std::uint64_t slot = free_.empty() ? slots_.size() : free_.back();
    return (static_cast<std::uint64_t>(++serial_) << 32) | slot;
  }
  void put(ConnectionPtr conn) {
    const auto slot = static_cast<std::uint32_t>(conn->id);
    if (!free_.empty() && free_.back() == slot) {
      free_.pop_back();
      slots_[slot] = std::move(conn);
    } else {
      slots_.push_back(std::move(conn));
    }
    ++size_;
  }
  Connection* find(ConnectionId id) const {
    const auto slot = static_cast<std::uint32_t>(id);
    if (slot >= slots_.size()) return nullptr;
    Connection* conn = slots_[slot].get();
    return conn != nullptr && conn->id == id ? conn : nullptr;
  }
  void erase(ConnectionId id) {
    if (find(id) == nullptr) return;
    const auto slot = static_cast<std::uint32_t>(id);
    slots_[slot].reset();
    free_.push_back(slot);
    --size_;
  }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::vector<ConnectionPtr> all() const {
    std::vector<ConnectionPtr> out;
    out.reserve(size_);
    for (const auto& conn : slots_) {
      if (conn) out.push_back(conn);
    }
    return out;
  }

 private:
  std::vector<ConnectionPtr> slots_;
  std::vector<std::uint32_t> free_;
  std::uint32_t serial_ = 0;
  std::size_t size_ = 0;
};


struct Listener {
  Listener(asio::io_context& io, tcp::acceptor a, std::string n, ListenerConfig c, std::shared_ptr<TlsContext> t)
      : acceptor(std::move(a)), retry(io), name(std::move(n)), config(std::move(c)), tls(std::move(t)) {}
  tcp::acceptor acceptor;
  asio::steady_timer retry;
  std::string name;
  ListenerConfig config;
  std::shared_ptr<TlsContext> tls;  // tls, wss: replaced on SIGHUP
};

const char* handshake_name(Transport t) {
  switch (t) {
    case Transport::tls: return "TLS handshake";
    case Transport::ws: return "WebSocket upgrade";
    case Transport::wss: return "TLS/WebSocket handshake";
    case Transport::tcp: break;
  }
  return "handshake";
}

}  // namespace

struct Server::Impl final : broker::Transport, broker::Timers, broker::Clock {
  Impl(broker::BrokerConfig config, const StoreFactory& make_store, broker::Policy* custom_policy)
      : io(1), scratch(kScratchBytes), write_scratch(TlsStream::kRecordBytes), policy(custom_policy != nullptr ? custom_policy : &allow_all) {
    if (make_store) {
      store = make_store([this](std::function<void()> fn) { asio::post(io, std::move(fn)); });
    }
    if (!store) store = std::make_unique<broker::MemoryStore>();
    broker = std::make_unique<broker::Broker>(std::move(config), *this, *this, *this, *store, *policy);
  }

  ~Impl() override {
    // The broker may still call back (cancel timers) while it is destroyed.
    broker.reset();
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // --- listeners -------------------------------------------------------------------------

  Expected<void, std::string> listen_on(const ListenerConfig& config) {
    const std::string wanted = config.host.find(':') != std::string::npos
                                   ? fmt::format("[{}]:{}", config.host, config.port)
                                   : fmt::format("{}:{}", config.host, config.port);
    const auto failed = [&wanted](std::string_view what, const error_code& ec) {
      return make_unexpected(fmt::format("cannot listen on {}: {}{}", wanted, what, ec.message()));
    };
    std::shared_ptr<TlsContext> tls;
    if (uses_tls(config.transport)) {
      auto created = TlsContext::create(config);
      if (!created) return make_unexpected(fmt::format("cannot listen on {} ({}): {}", wanted,
                                                       transport_name(config.transport), created.error()));
      tls = std::move(*created);
    }
    error_code ec;
    tcp::endpoint endpoint;
    const auto address = asio::ip::make_address(config.host, ec);
    if (!ec) {
      endpoint = tcp::endpoint(address, config.port);
    } else {
      tcp::resolver resolver(io);
      const auto results = resolver.resolve(config.host, std::to_string(config.port),
                                            tcp::resolver::passive | tcp::resolver::numeric_service, ec);
      if (ec) return failed("cannot resolve the host: ", ec);
      if (results.empty()) return failed("cannot resolve the host: ", asio::error::host_not_found);
      endpoint = results.begin()->endpoint();
    }

    tcp::acceptor acceptor(io);
    if (acceptor.open(endpoint.protocol(), ec); ec) return failed("", ec);
    if (acceptor.set_option(asio::socket_base::reuse_address(true), ec); ec) return failed("", ec);
    if (endpoint.address().is_v6()) {
      // So that [::]:P and 0.0.0.0:P can both be configured.
      if (acceptor.set_option(asio::ip::v6_only(true), ec); ec) return failed("", ec);
    }
    if (acceptor.bind(endpoint, ec); ec) return failed("", ec);
    if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) return failed("", ec);
    const auto local = acceptor.local_endpoint(ec);
    if (ec) return failed("", ec);
    listeners.push_back(
        std::make_unique<Listener>(io, std::move(acceptor), format_endpoint(local), config, std::move(tls)));
    if (config.transport == net::Transport::tcp) {
      log::info(kLog, "listening on {}", listeners.back()->name);
    } else {
      log::info(kLog, "listening on {} ({}{}{})", listeners.back()->name, transport_name(config.transport),
                uses_tls(config.transport)
                    ? fmt::format(", client certificates {}", client_certificates_name(config.client_certificates))
                    : std::string(),
                config.psk_file.empty() ? "" : ", PSK");
    }
    return {};
  }

  void accept_next(Listener& listener) {
    if (listener.config.transport == net::Transport::tcp) {
      listener.acceptor.async_accept(io.get_executor(), [this, &listener](error_code ec, TcpSocket socket) {
        on_accept_result(listener, ec, std::move(socket));
      });
    } else {
      // TLS and WebSocket streams own a tcp::socket; their handshake state dwarfs the difference.
      listener.acceptor.async_accept([this, &listener](error_code ec, tcp::socket socket) {
        on_accept_result(listener, ec, std::move(socket));
      });
    }
  }

  template <class Socket>
  void on_accept_result(Listener& listener, const error_code& ec, Socket socket) {
    if (stopping || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of descriptors or memory: wait a little rather than spin on the error.
      log::warn(kLog, "accept on {} failed: {}", listener.name, ec.message());
      listener.retry.expires_after(kAcceptRetryDelay);
      listener.retry.async_wait([this, &listener](error_code timer_ec) {
        if (!timer_ec && !stopping) accept_next(listener);
      });
      return;
    }
    // The next accept first: it takes the memory Asio recycled from the accept that just
    // completed, so that the new connection's readability wait gets a block of its own
    // size instead of an accept-sized one held for as long as the connection idles.
    accept_next(listener);
    on_accepted(listener, std::move(socket));
  }

  template <class Socket>
  void on_accepted(Listener& listener, Socket socket) {
    error_code ec;
    const auto remote = socket.remote_endpoint(ec);
    if (ec) return;  // the peer is already gone
    socket.set_option(tcp::no_delay(true), ec);
    if (socket.non_blocking(true, ec); ec) {
      log::warn(kLog, "cannot make a socket non-blocking: {}", ec.message());
      return;
    }
    const ConnectionId id = connections.next_id();
    const net::Transport transport = listener.config.transport;
    std::string peer = format_endpoint(remote);
    ConnectionPtr conn;
    try {
      if constexpr (std::is_same_v<Socket, TcpSocket>) {
        conn = new Connection(id, Stream(std::move(socket)));
      } else if (transport == net::Transport::tls) {
        conn = new Connection(id, Stream(std::make_unique<TlsStream>(std::move(socket), listener.tls, write_scratch)));
      } else {
        conn = new Connection(
            id, Stream(std::make_unique<WsStream>(std::move(socket), transport == net::Transport::wss ? listener.tls : nullptr,
                                                  listener.config.ws_path)));
      }
    } catch (const std::exception& e) {
      log::warn(kLog, "cannot set up a {} connection from {}: {}", transport_name(transport), peer, e.what());
      return;
    }
    connections.put(conn);
    log::debug(kLog, "connection {} from {} on {}", id, peer, listener.name);
    if (transport != net::Transport::tcp) {
      start_handshake(conn, listener, std::move(peer));
      return;
    }
    open_connection(conn, std::move(peer), std::nullopt);
  }

  void start_handshake(const ConnectionPtr& conn, const Listener& listener, std::string peer) {
    conn->state = Connection::State::handshaking;
    conn->deadline = std::make_unique<Deadline>(io, std::move(peer), listener.name, listener.config.transport);
    conn->deadline->timer.expires_after(std::chrono::milliseconds(listener.config.handshake_timeout_ms));
    conn->deadline->timer.async_wait(
        [this, conn, timeout_ms = listener.config.handshake_timeout_ms](error_code ec) {
          if (ec || conn->state != Connection::State::handshaking) return;
          ++transport_stats.handshakes_timed_out;
          log::warn(kLog, "{} with {} on {} timed out after {} ms; connection closed",
                    handshake_name(conn->deadline->transport), conn->deadline->peer, conn->deadline->listener,
                    timeout_ms);
          destroy(conn);
        });
    auto done = [this, conn](error_code ec, std::string reason) { on_handshake(conn, ec, std::move(reason)); };
    if (auto* tls = conn->stream.tls()) {
      tls->async_handshake(std::move(done));
    } else {
      conn->stream.ws()->async_handshake(std::move(done));
    }
  }

  void on_handshake(const ConnectionPtr& conn, const error_code& ec, std::string reason) {
    if (conn->state != Connection::State::handshaking) return;  // timed out or shut down
    if (ec) {
      ++transport_stats.handshakes_failed;
      log::warn(kLog, "{} with {} on {} failed: {}", handshake_name(conn->deadline->transport),
                conn->deadline->peer, conn->deadline->listener, reason.empty() ? ec.message() : reason);
      destroy(conn);
      return;
    }
    auto identity = conn->stream.identity();
    std::string peer = std::move(conn->deadline->peer);
    conn->deadline.reset();
    conn->state = Connection::State::open;
    if (const auto* tls = conn->stream.tls()) {
      log::debug(kLog, "connection {} from {}: {} established, identity {}", conn->id, peer, tls->version(),
                 identity ? fmt::format("'{}'", *identity) : std::string("none"));
    } else {
      log::debug(kLog, "connection {} from {}: WebSocket open, identity {}", conn->id, peer,
                 identity ? fmt::format("'{}'", *identity) : std::string("none"));
    }
    open_connection(conn, std::move(peer), std::move(identity));
  }

  void open_connection(const ConnectionPtr& conn, std::string peer, std::optional<std::string> identity) {
    const ConnectionId id = conn->id;
    if (!broker->connection_opened(id, std::move(peer), std::move(identity))) {
      log::debug(kLog, "connection {} refused", id);
      if (conn->state == Connection::State::open) destroy(conn);
      return;
    }
    if (conn->state == Connection::State::open) start_wait(conn);
  }

  // --- reading ---------------------------------------------------------------------------

  void start_wait(const ConnectionPtr& conn) {
    if (conn->read_waiting) return;
    conn->read_waiting = true;
    conn->stream.async_wait_readable([this, conn](error_code ec) {
      conn->read_waiting = false;
      if (conn->state == Connection::State::closed || ec == asio::error::operation_aborted) return;
      if (ec) {
        fail(conn, ec);
        return;
      }
      if (conn->state == Connection::State::lingering) {
        if (conn->stream.ws() != nullptr) return;  // the WebSocket close handshake reads
        discard_input(conn);
      } else if (conn->state == Connection::State::open && conn->reading_enabled) {
        read_available(conn);
      }
    });
  }

  // The reactor is edge-triggered. A plain TCP read that did not fill the buffer has
  // emptied the socket, so the next read would only return EAGAIN: the wait is re-armed
  // at once, and bytes arriving later raise a new edge. TLS and WebSocket streams may hold
  // decoded bytes of their own, so they are read until they say EAGAIN.
  void read_available(const ConnectionPtr& conn) {
    const bool tcp = conn->stream.is_tcp();
    for (int i = 0; i < kReadsPerWakeup; ++i) {
      error_code ec;
      const std::size_t n = conn->stream.read_some(asio::buffer(scratch), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        start_wait(conn);
        return;
      }
      if (ec) {
        fail(conn, ec);
        return;
      }
      if (!conn->partial) {
        feed(conn, std::string_view(scratch.data(), n), false);
      } else {
        conn->partial->append(scratch.data(), n);
        feed(conn, *conn->partial, true);
      }
      if (conn->state != Connection::State::open || !conn->reading_enabled) return;
      if (tcp && n < scratch.size()) {
        start_wait(conn);
        return;
      }
    }
    // Bytes may be left with no edge to come: read on after the other ready handlers.
    asio::post(io, [this, conn] {
      if (conn->state == Connection::State::open && conn->reading_enabled) read_available(conn);
    });
  }

  // Hands bytes to the broker and keeps the unconsumed tail. `bytes` is either the scratch
  // buffer or the connection's own partial buffer (`from_partial`).
  void feed(const ConnectionPtr& conn, std::string_view bytes, bool from_partial) {
    const std::size_t consumed = std::min(broker->data_received(conn->id, bytes), bytes.size());
    if (conn->state != Connection::State::open) {
      conn->partial.reset();
      return;
    }
    if (from_partial) {
      conn->partial->erase(0, consumed);
      if (conn->partial->empty()) conn->partial.reset();
    } else if (consumed < bytes.size()) {
      conn->partial = std::make_unique<std::string>(bytes.substr(consumed));
    }
  }

  // After the broker's close: read and drop whatever arrives until the peer's FIN.
  void discard_input(const ConnectionPtr& conn) {
    for (int i = 0; i < kReadsPerWakeup; ++i) {
      error_code ec;
      conn->stream.read_some(asio::buffer(scratch), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      if (ec) {
        destroy(conn);
        return;
      }
    }
    start_wait(conn);
  }

  // --- writing ---------------------------------------------------------------------------

  void queue_flush(const ConnectionPtr& conn) {
    if (conn->write_active || conn->on_flush_list) return;
    conn->on_flush_list = true;
    flush_list.push_back(conn);
    if (!flush_posted) {
      flush_posted = true;
      asio::post(io, [this] { flush(); });
    }
  }

  void flush() {
    flush_posted = false;
    std::swap(flush_list, flushing_now);
    for (const auto& conn : flushing_now) {
      conn->on_flush_list = false;
      if (conn->state != Connection::State::closed && !conn->write_active && conn->has_pending()) start_write(conn);
    }
    flushing_now.clear();
  }

  void start_write(const ConnectionPtr& conn) {
    WriteQueue& c = *conn->out;
    const std::size_t begin = c.pending_head;
    std::size_t end = begin;
    std::size_t bytes = 0;
    while (end < c.pending.size() && end - begin < kMaxBatchBuffers) {
      const std::size_t size = c.pending[end]->size();
      if (end > begin && bytes + size > kMaxBatchBytes) break;
      bytes += size;
      ++end;
    }
    if (c.tail && end == c.pending.size()) c.written_tail = std::move(c.tail);  // no more appending
    if (begin == 0 && end == c.pending.size()) {
      std::swap(c.pending, c.writing);  // `writing` was empty: no copy, no allocation
    } else {
      c.writing.assign(std::make_move_iterator(c.pending.begin() + static_cast<std::ptrdiff_t>(begin)),
                       std::make_move_iterator(c.pending.begin() + static_cast<std::ptrdiff_t>(end)));
      c.pending_head = end;
      if (c.pending_head == c.pending.size()) {
        c.pending.clear();
        c.pending_head = 0;
      } else if (c.pending_head * 2 >= c.pending.size()) {
        c.pending.erase(c.pending.begin(), c.pending.begin() + static_cast<std::ptrdiff_t>(c.pending_head));
        c.pending_head = 0;
      }
    }
    c.pending_bytes -= bytes;
    c.writing_bytes = bytes;
    conn->write_active = true;
    conn->stream.async_write(c.writing, [this, conn](error_code ec) { on_written(conn, ec); });
  }

  void on_written(const ConnectionPtr& conn, const error_code& ec) {
    conn->write_active = false;
    WriteQueue& q = *conn->out;
    q.writing.clear();
    q.writing_bytes = 0;
    if (q.written_tail) {
      if (q.written_tail.use_count() == 1) {
        q.written_tail->clear();
        q.spare = std::move(q.written_tail);
      }
      q.written_tail.reset();
    }
    if (conn->state == Connection::State::closed) {
      recycle(std::move(conn->out));
      return;
    }
    if (ec) {
      fail(conn, ec);
      return;
    }
    if (conn->has_pending()) {
      start_write(conn);
      return;
    }
    recycle(std::move(conn->out));
    if (conn->state == Connection::State::flushing) {
      begin_linger(conn);
    } else if (conn->state == Connection::State::open && !stopping) {
      broker->connection_drained(conn->id);
    }
  }

  std::unique_ptr<WriteQueue> take_write_queue() {
    if (write_queue_pool.empty()) return std::make_unique<WriteQueue>();
    auto q = std::move(write_queue_pool.back());
    write_queue_pool.pop_back();
    return q;
  }

  // A drained (or abandoned) queue goes back to the pool with its vectors' small capacity.
  void recycle(std::unique_ptr<WriteQueue> q) {
    if (!q) return;
    q->pending.clear();
    q->writing.clear();
    q->pending_head = q->pending_bytes = q->writing_bytes = 0;
    q->tail.reset();
    q->written_tail.reset();
    if (q->spare && q->spare->capacity() > kPooledSpareBytes) q->spare.reset();
    release_if_large(q->pending);
    release_if_large(q->writing);
    if (write_queue_pool.size() < kPooledWriteQueues) write_queue_pool.push_back(std::move(q));
  }

  // --- closing ---------------------------------------------------------------------------

  // The broker (or shutdown) closes: write what is queued, then shut down and close.
  void close_connection(const ConnectionPtr& conn) {
    if (conn->state == Connection::State::handshaking) {
      destroy(conn);
      return;
    }
    if (conn->state != Connection::State::open) return;
    conn->state = Connection::State::flushing;
    conn->reading_enabled = false;
    conn->deadline = std::make_unique<Deadline>(io);
    conn->deadline->timer.expires_after(kCloseTimeout);
    conn->deadline->timer.async_wait([this, conn](error_code ec) {
      if (ec || conn->state == Connection::State::closed) return;
      log::debug(kLog, "connection {} did not close in time", conn->id);
      destroy(conn);
    });
    if (!conn->write_active && !conn->has_pending()) begin_linger(conn);
  }

  void begin_linger(const ConnectionPtr& conn) {
    conn->state = Connection::State::lingering;
    if (auto* ws = conn->stream.ws()) {
      ws->async_close([this, conn](error_code) { destroy(conn); });
      return;
    }
    error_code ec;
    conn->stream.shutdown_send(ec);
    if (ec) {
      destroy(conn);
      return;
    }
    start_wait(conn);
  }

  // A connection failed or the peer went away.
  void fail(const ConnectionPtr& conn, const error_code& ec) {
    if (conn->state == Connection::State::closed) return;
    const bool broker_knows = conn->state == Connection::State::open;
    log::debug(kLog, "connection {} lost: {}", conn->id, ec.message());
    destroy(conn);
    if (broker_knows) broker->connection_lost(conn->id);
  }

  void destroy(const ConnectionPtr& conn) {
    if (conn->state == Connection::State::closed) return;
    conn->state = Connection::State::closed;
    error_code ignored;
    conn->stream.close(ignored);
    if (conn->deadline) conn->deadline->timer.cancel();
    // An abandoned queue is only returned once no write uses its buffers any more.
    if (!conn->write_active) recycle(std::move(conn->out));
    connections.erase(conn->id);
    if (stopping && connections.empty()) finish_shutdown();
  }

  ConnectionPtr find_open(ConnectionId id) const {
    Connection* conn = connections.find(id);
    if (conn == nullptr || conn->state != Connection::State::open) return nullptr;
    return conn;
  }

  // --- broker::Transport -----------------------------------------------------------------

  void send(ConnectionId id, SharedBytes bytes) override {
    Connection* conn = connections.find(id);
    if (conn == nullptr || conn->state != Connection::State::open) return;
    if (!bytes || bytes->empty()) return;
    if (!conn->out) conn->out = take_write_queue();
    WriteQueue& q = *conn->out;
    const std::size_t size = bytes->size();
    q.pending_bytes += size;
    // A lone packet with no buffer at hand is queued as it is: copying it would cost an allocation.
    if (size > kCoalesceMaxPacket || (!q.tail && !q.spare && !q.has_pending())) {
      q.tail.reset();
      q.pending.push_back(std::move(bytes));
    } else {
      if (!q.tail || q.tail->size() + size > kCoalesceBufferBytes) {
        if (q.spare) {
          q.tail = std::move(q.spare);
        } else {
          q.tail = std::make_shared<std::string>();
          q.tail->reserve(kCoalesceInitialBytes);
        }
        q.pending.push_back(q.tail);
      }
      q.tail->append(*bytes);
    }
    if (!conn->write_active && !conn->on_flush_list) queue_flush(ConnectionPtr(conn));
  }

  std::size_t queued_bytes(ConnectionId id) const override {
    const Connection* conn = connections.find(id);
    if (conn == nullptr || !conn->out) return 0;
    return conn->out->pending_bytes + conn->out->writing_bytes;
  }

  void close(ConnectionId id) override {
    if (auto conn = find_open(id)) {
      log::debug(kLog, "connection {} closed by the broker", id);
      close_connection(conn);
    }
  }

  void set_reading(ConnectionId id, bool enabled) override {
    auto conn = find_open(id);
    if (!conn || conn->reading_enabled == enabled) return;
    conn->reading_enabled = enabled;
    if (!enabled) return;
    // The broker may have left whole packets unconsumed while paused: offer them again.
    // Then read: bytes that arrived while paused raised their edge already.
    asio::post(io, [this, conn] {
      if (conn->state != Connection::State::open || !conn->reading_enabled) return;
      if (conn->partial) feed(conn, *conn->partial, true);
      if (conn->state == Connection::State::open && conn->reading_enabled) read_available(conn);
    });
  }

  // --- broker::Timers, broker::Clock -----------------------------------------------------

  Id schedule(std::chrono::milliseconds delay, std::function<void()> fn) override {
    const Id id = ++next_timer_id;
    if (stopping) return id;  // the broker has shut down: nothing more may fire
    auto timer = std::make_unique<asio::steady_timer>(io, delay);
    timer->async_wait([this, id, fn = std::move(fn)](error_code ec) {
      if (ec) return;
      const auto it = timers.find(id);
      if (it == timers.end()) return;
      timers.erase(it);
      fn();
    });
    timers.emplace(id, std::move(timer));
    return id;
  }

  void cancel(Id id) override { timers.erase(id); }  // destroying a timer cancels its wait

  std::chrono::steady_clock::time_point now() const override { return std::chrono::steady_clock::now(); }

  // --- run and stop ----------------------------------------------------------------------

  void run() {
    signals.emplace(io, SIGINT, SIGTERM);
    signals->async_wait([this](error_code ec, int signal) {
      if (ec) return;
      log::info(kLog, "{} received, shutting down", signal == SIGINT ? "SIGINT" : "SIGTERM");
      begin_shutdown();
    });
    const bool has_tls = std::any_of(listeners.begin(), listeners.end(),
                                     [](const auto& l) { return uses_tls(l->config.transport); });
    if (!reload_handlers.empty() || has_tls) wait_for_reload();
    for (const auto& listener : listeners) accept_next(*listener);
    io.run();
    signals.reset();
    hangup.reset();
  }

  // SIGHUP: configuration that can change without dropping connections is reloaded.
  void wait_for_reload() {
    if (!hangup) hangup.emplace(io, SIGHUP);
    hangup->async_wait([this](error_code ec, int) {
      if (ec || stopping) return;
      log::info(kLog, "SIGHUP received, reloading");
      reload_certificates();
      for (auto& handler : reload_handlers) handler();
      wait_for_reload();
    });
  }

  // New connections get the new context; existing ones keep the one they started with.
  void reload_certificates() {
    for (const auto& listener : listeners) {
      if (!uses_tls(listener->config.transport)) continue;
      auto created = TlsContext::create(listener->config);
      if (!created) {
        ++transport_stats.certificate_reloads_failed;
        log::error(kLog, "listener {}: certificates not reloaded, keeping the previous ones: {}", listener->name,
                   created.error());
        continue;
      }
      listener->tls = std::move(*created);
      log::info(kLog, "listener {}: certificates reloaded", listener->name);
    }
  }

  void begin_shutdown() {
    if (stopping) return;
    stopping = true;
    error_code ignored;
    if (signals) signals->cancel(ignored);
    if (hangup) hangup->cancel(ignored);
    for (const auto& listener : listeners) {
      listener->acceptor.close(ignored);
      listener->retry.cancel();
    }
    broker->shutdown();
    timers.clear();
    // The broker closes every connection it knows; this also covers any it did not.
    for (const auto& conn : connections.all()) close_connection(conn);
    if (connections.empty()) {
      finish_shutdown();
      return;
    }
    shutdown_deadline.emplace(io, kShutdownGrace);
    shutdown_deadline->async_wait([this](error_code ec) {
      if (ec) return;
      log::debug(kLog, "{} connections did not finish closing in time", connections.size());
      for (const auto& conn : connections.all()) destroy(conn);
      finish_shutdown();
    });
  }

  void finish_shutdown() {
    if (shutdown_deadline) shutdown_deadline->cancel();
    io.stop();
  }

  asio::io_context io;
  std::vector<char> scratch;
  std::vector<char> write_scratch;  // TLS records are staged here
  TransportStats transport_stats;
  std::unique_ptr<broker::Store> store;  // after io: it may post to io until destroyed
  broker::AllowAllPolicy allow_all;
  broker::Policy* policy;  // allow_all unless the app gave one; it outlives the server
  std::vector<std::unique_ptr<Listener>> listeners;
  ConnectionTable connections;
  std::unordered_map<Id, std::unique_ptr<asio::steady_timer>> timers;
  std::vector<ConnectionPtr> flush_list;
  std::vector<ConnectionPtr> flushing_now;
  std::vector<std::unique_ptr<WriteQueue>> write_queue_pool;
  std::optional<asio::signal_set> signals;
  std::optional<asio::signal_set> hangup;
  std::vector<std::function<void()>> reload_handlers;
  std::optional<asio::steady_timer> shutdown_deadline;
  Id next_timer_id = 0;
  bool flush_posted = false;
  bool stopping = false;
  // Last, so that it is destroyed first, while everything it calls into still exists.
  std::unique_ptr<broker::Broker> broker;
};

Server::Server(broker::BrokerConfig config, const StoreFactory& make_store, broker::Policy* policy)
    : impl_(std::make_unique<Impl>(std::move(config), make_store, policy)) {}

void Server::on_reload(std::function<void()> handler) { impl_->reload_handlers.push_back(std::move(handler)); }

boost::asio::io_context& Server::io_context() { return impl_->io; }
broker::Broker& Server::broker() { return *impl_->broker; }
broker::Store& Server::store() { return *impl_->store; }

Server::~Server() = default;

Expected<void, std::string> Server::listen(const std::vector<ListenerConfig>& listeners) {
  for (const auto& listener : listeners) {
    if (auto r = impl_->listen_on(listener); !r) return r;
  }
  return {};
}

TransportStats Server::transport_stats() const { return impl_->transport_stats; }

std::vector<std::string> Server::bound_endpoints() const {
  std::vector<std::string> out;
  out.reserve(impl_->listeners.size());
  for (const auto& listener : impl_->listeners) out.push_back(listener->name);
  return out;
}

void Server::run() { impl_->run(); }

void Server::stop() {
  asio::post(impl_->io, [impl = impl_.get()] { impl->begin_shutdown(); });
}

}  // namespace tern::net
