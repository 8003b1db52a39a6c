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
// Idle cost. What an idle plain-TCP connection holds here: the Connection (72 bytes: socket
// typed on the io_context's executor, which is 48 bytes smaller than any_io_executor, in
// the operations as well), Asio's reactor state for the descriptor (176 bytes), the
// pending readability wait (an 88-byte operation whose handler holds only the connection)
// and one slot in the connection table. Write queues, partial packets and deadlines are
// allocated only while in use.
//
// Transports. A Stream is a plain TCP socket, a TlsStream (TLS driven by readiness on the
// socket, see tls_stream.hpp) or a WsStream (WebSocket, plain or TLS); the logic above and
// below is the same for all. A TLS or WebSocket connection first goes through `handshaking`
// with a deadline; only once the handshake is complete does the broker hear of it, with
// the identity the handshake proved (client certificate or PSK identity). Handshake state
// (deadline, peer name) lives in a separate allocation that is freed when it ends.
//
// Threads. Connections are spread over `threads` event loops (shards), round-robin at
// accept. Shard 0 runs on the broker's thread and calls the broker directly. Every other
// shard runs its own io_context on a thread of its own and never touches the broker: it
// reads, runs handshakes and writes, and hands what it saw (connection opened, bytes
// received, bytes written, connection lost) to the broker's thread in batches, one
// post per loop turn; what the broker does (send, close, pause and resume reading) goes
// back the same way. Small packets travel copied into the batch, so that the broker's
// encode buffer is free again at once; large ones travel as shared bytes. For a
// connection of another shard, the broker's thread keeps the unconsumed tail of its input
// and the bytes sent but not yet reported written, which is what queued_bytes() answers.
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

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
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

#include <algorithm>
#include <atomic>
#include <csignal>
#include <fmt/format.h>
#include <iterator>
#include <mutex>
#include <optional>
#include <thread>
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
  // Potentially overlapping, so that the Connection's small fields sit in its tail padding.
  [[no_unique_address]] std::variant<TcpSocket, std::unique_ptr<TlsStream>, std::unique_ptr<WsStream>> stream_;
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

// What a connection holds only now and then: a handshake's or a close's deadline, and the
// unconsumed bytes of a partial packet. Null while the connection is idle or streaming
// whole packets.
struct ConnectionRare {
  std::optional<Deadline> deadline;
  std::string partial;
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

// One of these exists for every connection, so it is kept to 72 bytes (an 80-byte heap
// chunk): the state, the flags and the reference count live in the tail padding of the
// stream's variant, and the rarely used parts are behind one pointer.
struct Connection {
  enum class State : std::uint8_t { handshaking, open, flushing, lingering, closed };

  Connection(ConnectionId connection_id, Stream s)
      : id(connection_id), stream(std::move(s)), reading_enabled(true), read_waiting(false), write_active(false),
        on_flush_list(false) {}

  bool has_pending() const { return out && out->has_pending(); }

  Deadline* deadline() { return rare && rare->deadline ? &*rare->deadline : nullptr; }
  template <class... Args>
  Deadline& set_deadline(Args&&... args) {
    if (!rare) rare = std::make_unique<ConnectionRare>();
    return rare->deadline.emplace(std::forward<Args>(args)...);
  }
  void clear_deadline() {
    if (!rare) return;
    rare->deadline.reset();
    trim();
  }
  // The unconsumed bytes of a partial packet; null when there are none.
  std::string* partial() { return rare && !rare->partial.empty() ? &rare->partial : nullptr; }
  void set_partial(std::string_view bytes) {
    if (!rare) rare = std::make_unique<ConnectionRare>();
    rare->partial.assign(bytes);
    trim();
  }
  void clear_partial() {
    if (!rare) return;
    std::string().swap(rare->partial);
    trim();
  }

  ConnectionId id;
  [[no_unique_address]] Stream stream;
  State state = State::open;
  bool reading_enabled : 1;
  bool read_waiting : 1;
  bool write_active : 1;
  bool on_flush_list : 1;
  std::uint32_t references = 0;  // ConnectionPtr, thread-unsafe: one shard's thread only
  std::unique_ptr<WriteQueue> out;       // null while nothing is queued
  std::unique_ptr<ConnectionRare> rare;  // null while idle

 private:
  void trim() {
    if (!rare->deadline && rare->partial.empty()) rare.reset();
  }
};

static_assert(sizeof(Connection) <= 72, "a connection should fit an 80-byte heap chunk");

inline void intrusive_ptr_add_ref(Connection* conn) noexcept { ++conn->references; }
inline void intrusive_ptr_release(Connection* conn) noexcept {
  if (--conn->references == 0) delete conn;
}

using ConnectionPtr = boost::intrusive_ptr<Connection>;

// Open connections of one shard by id: one pointer each. An id is the slot's index in its
// low 24 bits, the shard's index in the next 8 and a serial number in its high 32 bits,
// so that a stale id does not find the connection that took its slot over.
constexpr unsigned kSlotBits = 24;
constexpr std::uint64_t kSlotMask = (std::uint64_t{1} << kSlotBits) - 1;

unsigned shard_of(ConnectionId id) { return static_cast<unsigned>((id >> kSlotBits) & 0xFF); }

class ConnectionTable {
 public:
  explicit ConnectionTable(unsigned shard) : shard_(shard) {}
  // The id the next put() gets.
  ConnectionId next_id() {
    const std::uint64_t slot = free_.empty() ? slots_.size() : free_.back();
    return (static_cast<std::uint64_t>(++serial_) << 32) | (std::uint64_t{shard_} << kSlotBits) | slot;
  }
  // False when the shard holds as many connections as its ids can tell apart.
  bool full() const noexcept { return free_.empty() && slots_.size() > kSlotMask; }
  void put(ConnectionPtr conn) {
    const auto slot = static_cast<std::uint32_t>(conn->id & kSlotMask);
    if (!free_.empty() && free_.back() == slot) {
      free_.pop_back();
      slots_[slot] = std::move(conn);
    } else {
      slots_.push_back(std::move(conn));
    }
    ++size_;
  }
  Connection* find(ConnectionId id) const {
    const auto slot = static_cast<std::uint32_t>(id & kSlotMask);
    if (slot >= slots_.size()) return nullptr;
    Connection* conn = slots_[slot].get();
    return conn != nullptr && conn->id == id ? conn : nullptr;
  }
  void erase(ConnectionId id) {
    if (find(id) == nullptr) return;
    const auto slot = static_cast<std::uint32_t>(id & kSlotMask);
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
  unsigned shard_;
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


// What the listener that accepted a connection tells the shard that takes it over.
struct AcceptedFrom {
  std::string listener;  // its name, for log lines
  Transport transport = Transport::tcp;
  std::string ws_path;
  std::uint32_t handshake_timeout_ms = 0;
  std::shared_ptr<TlsContext> tls;  // the listener's context at the time of the accept
};

// --- what crosses between a shard's thread and the broker's thread ----------------------

// Shard to broker.
struct ShardEvent {
  enum class Kind : std::uint8_t { opened, data, written, lost };
  struct Opened {
    std::string peer;
    std::optional<std::string> identity;
  };
  Kind kind = Kind::data;
  bool drained = false;    // written: nothing is left queued on the connection
  ConnectionId id = 0;
  std::size_t offset = 0;  // data: where its bytes start in the batch's bytes
  std::size_t size = 0;    // data: how many bytes; written: bytes written
  std::unique_ptr<Opened> opened;
};

// Broker to shard.
struct ShardCommand {
  enum class Kind : std::uint8_t { send, close, refuse, pause, resume, shutdown };
  Kind kind = Kind::send;
  ConnectionId id = 0;
  SharedBytes shared;      // send: a large packet, shared with its other receivers
  std::size_t offset = 0;  // send: a small packet, copied into the batch's bytes
  std::size_t size = 0;
};

// Items and the bytes they refer to, handed over as a whole.
template <class Item>
struct Batch {
  std::vector<Item> items;
  std::string bytes;
  bool empty() const noexcept { return items.empty(); }
  void clear() {
    items.clear();
    bytes.clear();
  }
  // Moves `other`'s items to the end of this batch, leaving `other` empty.
  void absorb(Batch& other) {
    if (items.empty()) {
      std::swap(items, other.items);
      std::swap(bytes, other.bytes);
    } else {
      const std::size_t shift = bytes.size();
      bytes += other.bytes;
      for (auto& item : other.items) {
        item.offset += shift;
        items.push_back(std::move(item));
      }
    }
    other.clear();
  }
};

// One direction between two threads: the writer puts whole batches, the reader takes
// everything at once. The vectors change hands by swapping, so steady traffic allocates
// nothing.
template <class Item>
class Mailbox {
 public:
  // True when the reader must be woken: nothing was waiting for it.
  bool put(Batch<Item>& batch) {
    const std::lock_guard lock(mutex_);
    box_.absorb(batch);
    if (wake_pending_) return false;
    wake_pending_ = true;
    return true;
  }
  // `out` must be empty; it receives everything put since the last take.
  void take(Batch<Item>& out) {
    const std::lock_guard lock(mutex_);
    std::swap(box_, out);
    wake_pending_ = false;
  }

 private:
  std::mutex mutex_;
  Batch<Item> box_;
  bool wake_pending_ = false;
};

// Counted on the shards' threads, read on the broker's.
struct ShardStats {
  std::atomic<std::uint64_t> handshakes_failed{0};
  std::atomic<std::uint64_t> handshakes_timed_out{0};
};

class Shard;

// The side that owns the broker, as a shard sees it.
class ShardHost {
 public:
  virtual broker::Broker& broker() = 0;      // shard 0 only
  virtual void wake(Shard& shard) = 0;       // any thread: events wait in shard.to_broker
  virtual void finished(Shard& shard) = 0;   // any thread: the shard has closed everything

 protected:
  ~ShardHost() = default;
};

// One event loop's connections: reading, handshakes, write queues, closing.
class Shard {
 public:
  // Shard 0 runs on the broker's io_context; the others get one of their own.
  Shard(ShardHost& host, unsigned index, asio::io_context* broker_io)
      : index_(index), host_(host), io_(broker_io), scratch_(kScratchBytes),
        write_scratch_(TlsStream::kRecordBytes), connections_(index) {
    if (io_ == nullptr) io_ = &own_io_.emplace(1);
  }
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;
  ~Shard() { join(); }

  unsigned index() const noexcept { return index_; }
  bool local() const noexcept { return index_ == 0; }
  asio::io_context& io() noexcept { return *io_; }

  // Runs the shard's own loop on a thread of its own until finished() (not for shard 0).
  void start() {
    work_.emplace(io_->get_executor());
    thread_ = std::thread([this] {
      const Running running(*this);
      io_->run();
    });
  }
  void join() {
    if (!thread_.joinable()) return;
    io_->stop();
    thread_.join();
  }

  Mailbox<ShardEvent> to_broker;
  Mailbox<ShardCommand> from_broker;
  ShardStats stats;

  // --- on the shard's thread ---------------------------------------------------------------

  template <class Socket>
  void adopt(AcceptedFrom from, Socket socket) {
    if (stopping_) return;
    error_code ec;
    const auto remote = socket.remote_endpoint(ec);
    if (ec) return;  // the peer is already gone
    socket.set_option(tcp::no_delay(true), ec);
    if (socket.non_blocking(true, ec); ec) {
      log::warn(kLog, "cannot make a socket non-blocking: {}", ec.message());
      return;
    }
    if (connections_.full()) {
      log::warn(kLog, "connection from {} on {} refused: this thread holds too many", format_endpoint(remote),
                from.listener);
      return;
    }
    const ConnectionId id = connections_.next_id();
    std::string peer = format_endpoint(remote);
    ConnectionPtr conn;
    try {
      if constexpr (std::is_same_v<Socket, TcpSocket>) {
        conn = new Connection(id, Stream(std::move(socket)));
      } else if (from.transport == net::Transport::tls) {
        conn = new Connection(id, Stream(std::make_unique<TlsStream>(std::move(socket), from.tls, write_scratch_)));
      } else {
        conn = new Connection(id, Stream(std::make_unique<WsStream>(
                                      std::move(socket), from.transport == net::Transport::wss ? from.tls : nullptr,
                                      from.ws_path)));
      }
    } catch (const std::exception& e) {
      log::warn(kLog, "cannot set up a {} connection from {}: {}", transport_name(from.transport), peer, e.what());
      return;
    }
    connections_.put(conn);
    log::debug(kLog, "connection {} from {} on {}", id, peer, from.listener);
    if (from.transport != net::Transport::tcp) {
      start_handshake(conn, from, std::move(peer));
      return;
    }
    open_connection(conn, std::move(peer), std::nullopt);
  }

  void send(ConnectionId id, SharedBytes bytes) {
    Connection* conn = connections_.find(id);
    if (conn == nullptr || conn->state != Connection::State::open) return;
    if (!bytes || bytes->empty()) return;
    if (!conn->out) conn->out = take_write_queue();
    WriteQueue& q = *conn->out;
    const std::size_t size = bytes->size();
    // A lone packet with no buffer at hand is queued as it is: copying it would cost an allocation.
    if (size > kCoalesceMaxPacket || (!q.tail && !q.spare && !q.has_pending())) {
      q.pending_bytes += size;
      q.tail.reset();
      q.pending.push_back(std::move(bytes));
    } else {
      append_small(q, *bytes);
    }
    if (!conn->write_active && !conn->on_flush_list) queue_flush(ConnectionPtr(conn));
  }

  // A small packet the broker's thread copied into a batch.
  void send_copy(ConnectionId id, std::string_view bytes) {
    Connection* conn = connections_.find(id);
    if (conn == nullptr || conn->state != Connection::State::open || bytes.empty()) return;
    if (!conn->out) conn->out = take_write_queue();
    append_small(*conn->out, bytes);
    if (!conn->write_active && !conn->on_flush_list) queue_flush(ConnectionPtr(conn));
  }

  std::size_t queued_bytes(ConnectionId id) const {
    const Connection* conn = connections_.find(id);
    if (conn == nullptr || !conn->out) return 0;
    return conn->out->pending_bytes + conn->out->writing_bytes;
  }

  void close(ConnectionId id) {
    if (auto conn = find_open(id)) {
      log::debug(kLog, "connection {} closed by the broker", id);
      close_connection(conn);
    }
  }

  // The broker refused a connection it was told of: close it without flushing.
  void refuse(ConnectionId id) {
    if (Connection* conn = connections_.find(id)) {
      log::debug(kLog, "connection {} refused", id);
      destroy(ConnectionPtr(conn));
    }
  }

  void set_reading(ConnectionId id, bool enabled) {
    auto conn = find_open(id);
    if (!conn || conn->reading_enabled == enabled) return;
    conn->reading_enabled = enabled;
    if (!enabled) return;
    // The broker may have left whole packets unconsumed while paused: offer them again.
    // Then read: bytes that arrived while paused raised their edge already.
    asio::post(*io_, [this, conn] {
      if (conn->state != Connection::State::open || !conn->reading_enabled) return;
      if (std::string* partial = conn->partial()) feed(conn, *partial, true);
      if (conn->state == Connection::State::open && conn->reading_enabled) read_available(conn);
    });
  }

  // What the broker's thread decided for this shard's connections.
  void take_commands() {
    from_broker.take(commands_now_);
    for (auto& c : commands_now_.items) {
      switch (c.kind) {
        case ShardCommand::Kind::send:
          if (c.shared) {
            send(c.id, std::move(c.shared));
          } else {
            send_copy(c.id, std::string_view(commands_now_.bytes).substr(c.offset, c.size));
          }
          break;
        case ShardCommand::Kind::close: close(c.id); break;
        case ShardCommand::Kind::refuse: refuse(c.id); break;
        case ShardCommand::Kind::pause: set_reading(c.id, false); break;
        case ShardCommand::Kind::resume: set_reading(c.id, true); break;
        case ShardCommand::Kind::shutdown: begin_shutdown(); break;
      }
    }
    commands_now_.clear();
  }

  // Closes every connection (each writes what is queued first), then tells the host.
  void begin_shutdown() {
    if (stopping_) return;
    stopping_ = true;
    for (const auto& conn : connections_.all()) close_connection(conn);
    if (connections_.empty()) {
      finish();
      return;
    }
    grace_.emplace(*io_, kShutdownGrace);
    grace_->async_wait([this](error_code ec) {
      if (ec) return;
      log::debug(kLog, "{} connections did not finish closing in time", connections_.size());
      for (const auto& conn : connections_.all()) destroy(conn);
      finish();
    });
  }

  // The shard whose loop runs on this thread (null elsewhere).
  static thread_local Shard* t_running;

  // Marks the calling thread as the one that runs `shard`'s loop, for its scope.
  class Running {
   public:
    explicit Running(Shard& shard) : previous_(t_running) { t_running = &shard; }
    ~Running() { t_running = previous_; }
    Running(const Running&) = delete;
    Running& operator=(const Running&) = delete;

   private:
    Shard* previous_;
  };

 private:
  void finish() {
    if (finished_) return;
    finished_ = true;
    if (grace_) grace_->cancel();
    work_.reset();
    host_.finished(*this);
  }

  void start_handshake(const ConnectionPtr& conn, const AcceptedFrom& from, std::string peer) {
    conn->state = Connection::State::handshaking;
    Deadline& deadline = conn->set_deadline(*io_, std::move(peer), from.listener, from.transport);
    deadline.timer.expires_after(std::chrono::milliseconds(from.handshake_timeout_ms));
    deadline.timer.async_wait([this, conn, timeout_ms = from.handshake_timeout_ms](error_code ec) {
      if (ec || conn->state != Connection::State::handshaking) return;
      stats.handshakes_timed_out.fetch_add(1, std::memory_order_relaxed);
      const Deadline& d = *conn->deadline();
      log::warn(kLog, "{} with {} on {} timed out after {} ms; connection closed", handshake_name(d.transport), d.peer,
                d.listener, timeout_ms);
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
      stats.handshakes_failed.fetch_add(1, std::memory_order_relaxed);
      const Deadline& d = *conn->deadline();
      log::warn(kLog, "{} with {} on {} failed: {}", handshake_name(d.transport), d.peer, d.listener,
                reason.empty() ? ec.message() : reason);
      destroy(conn);
      return;
    }
    auto identity = conn->stream.identity();
    std::string peer = std::move(conn->deadline()->peer);
    conn->clear_deadline();
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
    if (!local()) {
      // The broker's verdict comes back as a command; what is read meanwhile follows
      // this event in the same batch order.
      ShardEvent& e = event(ShardEvent::Kind::opened, id);
      e.opened = std::make_unique<ShardEvent::Opened>(ShardEvent::Opened{std::move(peer), std::move(identity)});
      start_wait(conn);
      return;
    }
    if (!host_.broker().connection_opened(id, std::move(peer), std::move(identity))) {
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
    conn->stream.async_wait_readable(Readable{conn});
  }

  // The handler of a readability wait. Every idle connection has one pending, inside an
  // operation Asio allocates, so it holds the connection alone (88 bytes of operation, a
  // 112-byte heap chunk; with the shard's pointer as well it would take a 128-byte one) and
  // finds its shard through the thread it runs on.
  struct Readable {
    ConnectionPtr conn;
    void operator()(error_code ec) const {
      conn->read_waiting = false;
      if (conn->state == Connection::State::closed || ec == asio::error::operation_aborted) return;
      Shard* shard = t_running;
      if (shard == nullptr) return;
      shard->on_readable(conn, ec);
    }
  };

  void on_readable(const ConnectionPtr& conn, const error_code& ec) {
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
  }

  // The reactor is edge-triggered. A plain TCP read that did not fill the buffer has
  // emptied the socket, so the next read would only return EAGAIN: the wait is re-armed
  // at once, and bytes arriving later raise a new edge. TLS and WebSocket streams may hold
  // decoded bytes of their own, so they are read until they say EAGAIN.
  void read_available(const ConnectionPtr& conn) {
    const bool plain_tcp = conn->stream.is_tcp();
    for (int i = 0; i < kReadsPerWakeup; ++i) {
      error_code ec;
      const std::size_t n = conn->stream.read_some(asio::buffer(scratch_), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        start_wait(conn);
        return;
      }
      if (ec) {
        fail(conn, ec);
        return;
      }
      if (!local()) {
        received(conn->id, std::string_view(scratch_.data(), n));
      } else if (std::string* partial = conn->partial()) {
        partial->append(scratch_.data(), n);
        feed(conn, *partial, true);
      } else {
        feed(conn, std::string_view(scratch_.data(), n), false);
      }
      if (conn->state != Connection::State::open || !conn->reading_enabled) return;
      if (plain_tcp && n < scratch_.size()) {
        start_wait(conn);
        return;
      }
    }
    // Bytes may be left with no edge to come: read on after the other ready handlers.
    asio::post(*io_, [this, conn] {
      if (conn->state == Connection::State::open && conn->reading_enabled) read_available(conn);
    });
  }

  // Shard 0: hands bytes to the broker and keeps the unconsumed tail. `bytes` is either
  // the scratch buffer or the connection's own partial buffer (`from_partial`).
  void feed(const ConnectionPtr& conn, std::string_view bytes, bool from_partial) {
    const std::size_t consumed = std::min(host_.broker().data_received(conn->id, bytes), bytes.size());
    if (conn->state != Connection::State::open) {
      conn->clear_partial();
      return;
    }
    if (from_partial) {
      std::string& partial = conn->rare->partial;
      partial.erase(0, consumed);
      if (partial.empty()) conn->clear_partial();
    } else if (consumed < bytes.size()) {
      conn->set_partial(bytes.substr(consumed));
    }
  }

  // Other shards: bytes go to the broker's thread, which keeps any unconsumed tail.
  void received(ConnectionId id, std::string_view bytes) {
    if (!outgoing_.items.empty()) {
      ShardEvent& last = outgoing_.items.back();
      if (last.kind == ShardEvent::Kind::data && last.id == id && last.offset + last.size == outgoing_.bytes.size()) {
        outgoing_.bytes.append(bytes);
        last.size += bytes.size();
        return;
      }
    }
    ShardEvent& e = event(ShardEvent::Kind::data, id);
    e.offset = outgoing_.bytes.size();
    e.size = bytes.size();
    outgoing_.bytes.append(bytes);
  }

  ShardEvent& event(ShardEvent::Kind kind, ConnectionId id) {
    ShardEvent& e = outgoing_.items.emplace_back();
    e.kind = kind;
    e.id = id;
    if (!publish_posted_) {
      publish_posted_ = true;
      asio::post(*io_, [this] { publish(); });
    }
    return e;
  }

  // Once a loop turn: what the turn's handlers saw goes to the broker's thread together.
  void publish() {
    publish_posted_ = false;
    if (to_broker.put(outgoing_)) host_.wake(*this);
  }

  // After the broker's close: read and drop whatever arrives until the peer's FIN.
  void discard_input(const ConnectionPtr& conn) {
    for (int i = 0; i < kReadsPerWakeup; ++i) {
      error_code ec;
      conn->stream.read_some(asio::buffer(scratch_), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      if (ec) {
        destroy(conn);
        return;
      }
    }
    start_wait(conn);
  }

  // --- writing ---------------------------------------------------------------------------

  void append_small(WriteQueue& q, std::string_view bytes) {
    q.pending_bytes += bytes.size();
    if (!q.tail || q.tail->size() + bytes.size() > kCoalesceBufferBytes) {
      if (q.spare) {
        q.tail = std::move(q.spare);
      } else {
        q.tail = std::make_shared<std::string>();
        q.tail->reserve(kCoalesceInitialBytes);
      }
      q.pending.push_back(q.tail);
    }
    q.tail->append(bytes);
  }

  void queue_flush(const ConnectionPtr& conn) {
    if (conn->write_active || conn->on_flush_list) return;
    conn->on_flush_list = true;
    flush_list_.push_back(conn);
    if (!flush_posted_) {
      flush_posted_ = true;
      asio::post(*io_, [this] { flush(); });
    }
  }

  void flush() {
    flush_posted_ = false;
    std::swap(flush_list_, flushing_now_);
    for (const auto& conn : flushing_now_) {
      conn->on_flush_list = false;
      if (conn->state != Connection::State::closed && !conn->write_active && conn->has_pending()) start_write(conn);
    }
    flushing_now_.clear();
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
    const std::size_t written = q.writing_bytes;
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
    const bool drained = !conn->has_pending();
    if (!local() && conn->state == Connection::State::open) {
      ShardEvent& e = event(ShardEvent::Kind::written, conn->id);
      e.size = written;
      e.drained = drained;
    }
    if (!drained) {
      start_write(conn);
      return;
    }
    recycle(std::move(conn->out));
    if (conn->state == Connection::State::flushing) {
      begin_linger(conn);
    } else if (local() && conn->state == Connection::State::open && !stopping_) {
      host_.broker().connection_drained(conn->id);
    }
  }

  std::unique_ptr<WriteQueue> take_write_queue() {
    if (write_queue_pool_.empty()) return std::make_unique<WriteQueue>();
    auto q = std::move(write_queue_pool_.back());
    write_queue_pool_.pop_back();
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
    if (write_queue_pool_.size() < kPooledWriteQueues) write_queue_pool_.push_back(std::move(q));
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
    Deadline& deadline = conn->set_deadline(*io_);
    deadline.timer.expires_after(kCloseTimeout);
    deadline.timer.async_wait([this, conn](error_code ec) {
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
    if (!broker_knows) return;
    if (local()) {
      host_.broker().connection_lost(conn->id);
    } else {
      event(ShardEvent::Kind::lost, conn->id);
    }
  }

  void destroy(const ConnectionPtr& conn) {
    if (conn->state == Connection::State::closed) return;
    conn->state = Connection::State::closed;
    error_code ignored;
    conn->stream.close(ignored);
    if (Deadline* deadline = conn->deadline()) deadline->timer.cancel();
    // An abandoned queue is only returned once no write uses its buffers any more.
    if (!conn->write_active) recycle(std::move(conn->out));
    connections_.erase(conn->id);
    if (stopping_ && connections_.empty()) finish();
  }

  ConnectionPtr find_open(ConnectionId id) const {
    Connection* conn = connections_.find(id);
    if (conn == nullptr || conn->state != Connection::State::open) return nullptr;
    return conn;
  }

  // First, so that it is destroyed last: the sockets and timers below use it.
  std::optional<asio::io_context> own_io_;
  const unsigned index_;
  ShardHost& host_;
  asio::io_context* io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::vector<char> scratch_;
  std::vector<char> write_scratch_;  // TLS records are staged here
  ConnectionTable connections_;
  std::vector<ConnectionPtr> flush_list_;
  std::vector<ConnectionPtr> flushing_now_;
  std::vector<std::unique_ptr<WriteQueue>> write_queue_pool_;
  Batch<ShardEvent> outgoing_;
  Batch<ShardCommand> commands_now_;
  std::optional<asio::steady_timer> grace_;
  bool flush_posted_ = false;
  bool publish_posted_ = false;
  bool stopping_ = false;
  bool finished_ = false;
};

thread_local Shard* Shard::t_running = nullptr;

}  // namespace

struct Server::Impl final : broker::Transport, broker::Timers, broker::Clock, ShardHost {
  Impl(broker::BrokerConfig config, const StoreFactory& make_store, broker::Policy* custom_policy, unsigned threads)
      : io(1), policy(custom_policy != nullptr ? custom_policy : &allow_all) {
    threads = std::clamp(threads, 1U, kMaxThreads);
    for (unsigned i = 0; i < threads; ++i) shards.push_back(std::make_unique<Shard>(*this, i, i == 0 ? &io : nullptr));
    // The first connection goes to the last loop, so that even a lone client crosses threads.
    next_shard = shards.size() - 1;
    pending_commands.resize(threads);
    if (make_store) {
      store = make_store([this](std::function<void()> fn) { asio::post(io, std::move(fn)); });
    }
    if (!store) store = std::make_unique<broker::MemoryStore>();
    broker_ = std::make_unique<broker::Broker>(std::move(config), *this, *this, *this, *store, *policy);
  }

  ~Impl() override {
    for (auto& shard : shards) shard->join();
    // The broker may still call back (cancel timers) while it is destroyed.
    broker_.reset();
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  Shard& local_shard() { return *shards.front(); }

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

  // Each accepted connection goes to the next shard in turn; its socket is registered with
  // that shard's event loop from the start.
  void accept_next(Listener& listener) {
    Shard& target = *shards[next_shard];
    next_shard = (next_shard + 1) % shards.size();
    if (listener.config.transport == net::Transport::tcp) {
      listener.acceptor.async_accept(target.io().get_executor(),
                                     [this, &listener, &target](error_code ec, TcpSocket socket) {
                                       on_accept_result(listener, target, ec, std::move(socket));
                                     });
    } else {
      // TLS and WebSocket streams own a tcp::socket; their handshake state dwarfs the difference.
      listener.acceptor.async_accept(asio::any_io_executor(target.io().get_executor()),
                                     [this, &listener, &target](error_code ec, tcp::socket socket) {
                                       on_accept_result(listener, target, ec, std::move(socket));
                                     });
    }
  }

  template <class Socket>
  void on_accept_result(Listener& listener, Shard& target, const error_code& ec, Socket socket) {
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
    AcceptedFrom from{listener.name, listener.config.transport, listener.config.ws_path,
                      listener.config.handshake_timeout_ms, listener.tls};
    if (target.local()) {
      target.adopt(std::move(from), std::move(socket));
      return;
    }
    asio::post(target.io(), [&target, from = std::move(from), socket = std::move(socket)]() mutable {
      target.adopt(std::move(from), std::move(socket));
    });
  }

  // --- connections of the other shards ----------------------------------------------------

  // What the broker's thread keeps of a connection that another shard holds.
  struct Remote {
    std::uint64_t sent = 0;     // bytes handed to the shard
    std::uint64_t written = 0;  // bytes the shard reported written
    std::unique_ptr<std::string> leftover;  // input the broker has not consumed yet
  };

  // ShardHost
  broker::Broker& broker() override { return *broker_; }
  // What every shard has handed over is taken together, the waking shard's first: events
  // of different connections keep the order in which the shards saw them as far as the
  // hand-overs allow (connections are not ordered among themselves, as in MQTT).
  void wake(Shard& shard) override {
    asio::post(io, [this, &shard] {
      take_events(shard);
      for (const auto& other : shards) {
        if (other.get() != &shard && !other->local()) take_events(*other);
      }
    });
  }
  void finished(Shard& shard) override {
    if (shard.local()) {
      shard_finished();
    } else {
      asio::post(io, [this] { shard_finished(); });
    }
  }

  void take_events(Shard& shard) {
    shard.to_broker.take(events_now);
    for (auto& e : events_now.items) {
      switch (e.kind) {
        case ShardEvent::Kind::opened:
          if (stopping) {
            command(shard.index(), ShardCommand::Kind::refuse, e.id);
            break;
          }
          remotes.emplace(e.id, Remote{});
          if (!broker_->connection_opened(e.id, std::move(e.opened->peer), std::move(e.opened->identity))) {
            remotes.erase(e.id);
            command(shard.index(), ShardCommand::Kind::refuse, e.id);
          }
          break;
        case ShardEvent::Kind::data:
          feed_remote(e.id, std::string_view(events_now.bytes).substr(e.offset, e.size));
          break;
        case ShardEvent::Kind::written: {
          const auto it = remotes.find(e.id);
          if (it == remotes.end()) break;
          it->second.written += e.size;
          // Only once what was sent since has been written too.
          if (e.drained && it->second.written == it->second.sent && !stopping) broker_->connection_drained(e.id);
          break;
        }
        case ShardEvent::Kind::lost:
          if (remotes.erase(e.id) != 0 && !stopping) broker_->connection_lost(e.id);
          break;
      }
    }
    events_now.clear();
  }

  // The broker may close the connection (and so forget it here) while it parses: the bytes
  // it parses never belong to the map entry during the call.
  void feed_remote(ConnectionId id, std::string_view bytes) {
    auto it = remotes.find(id);
    if (it == remotes.end()) return;
    if (it->second.leftover) {
      std::string input = std::move(*it->second.leftover);
      it->second.leftover.reset();
      input.append(bytes);
      keep_unconsumed(id, input, broker_->data_received(id, input));
      return;
    }
    keep_unconsumed(id, bytes, broker_->data_received(id, bytes));
  }

  void keep_unconsumed(ConnectionId id, std::string_view input, std::size_t consumed) {
    if (consumed >= input.size()) return;
    const auto it = remotes.find(id);
    if (it == remotes.end()) return;
    it->second.leftover = std::make_unique<std::string>(input.substr(consumed));
  }

  ShardCommand& command(unsigned shard, ShardCommand::Kind kind, ConnectionId id) {
    ShardCommand& c = pending_commands[shard].items.emplace_back();
    c.kind = kind;
    c.id = id;
    if (!commands_posted) {
      commands_posted = true;
      asio::post(io, [this] { publish_commands(); });
    }
    return c;
  }

  // Once a loop turn: what the broker decided goes to each shard together.
  void publish_commands() {
    commands_posted = false;
    for (std::size_t i = 1; i < shards.size(); ++i) {
      if (pending_commands[i].empty()) continue;
      Shard& shard = *shards[i];
      if (shard.from_broker.put(pending_commands[i])) asio::post(shard.io(), [&shard] { shard.take_commands(); });
    }
  }

  // --- broker::Transport -----------------------------------------------------------------

  void send(ConnectionId id, SharedBytes bytes) override {
    const unsigned shard = shard_of(id);
    if (shard == 0) {
      local_shard().send(id, std::move(bytes));
      return;
    }
    const auto it = remotes.find(id);
    if (it == remotes.end() || !bytes || bytes->empty()) return;
    it->second.sent += bytes->size();
    Batch<ShardCommand>& batch = pending_commands[shard];
    ShardCommand& c = command(shard, ShardCommand::Kind::send, id);
    if (bytes->size() <= kCoalesceMaxPacket) {
      // Copied, so that the broker's encode buffer is free again at once.
      c.offset = batch.bytes.size();
      c.size = bytes->size();
      batch.bytes += *bytes;
    } else {
      c.shared = std::move(bytes);
    }
  }

  std::size_t queued_bytes(ConnectionId id) const override {
    const unsigned shard = shard_of(id);
    if (shard == 0) return shards.front()->queued_bytes(id);
    const auto it = remotes.find(id);
    if (it == remotes.end()) return 0;
    return static_cast<std::size_t>(it->second.sent - it->second.written);
  }

  void close(ConnectionId id) override {
    const unsigned shard = shard_of(id);
    if (shard == 0) {
      local_shard().close(id);
      return;
    }
    if (remotes.erase(id) != 0) command(shard, ShardCommand::Kind::close, id);
  }

  void set_reading(ConnectionId id, bool enabled) override {
    const unsigned shard = shard_of(id);
    if (shard == 0) {
      local_shard().set_reading(id, enabled);
      return;
    }
    if (!remotes.contains(id)) return;
    command(shard, enabled ? ShardCommand::Kind::resume : ShardCommand::Kind::pause, id);
    if (!enabled) return;
    // Offer again what the broker left unconsumed while paused.
    asio::post(io, [this, id] {
      const auto it = remotes.find(id);
      if (it != remotes.end() && it->second.leftover) feed_remote(id, {});
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
    for (std::size_t i = 1; i < shards.size(); ++i) shards[i]->start();
    if (shards.size() > 1) log::info(kLog, "connections shared among {} threads", shards.size());
    for (const auto& listener : listeners) accept_next(*listener);
    {
      const Shard::Running running(*shards.front());
      io.run();
    }
    for (auto& shard : shards) shard->join();
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
        ++certificate_reloads_failed;
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
    broker_->shutdown();
    timers.clear();
    remotes.clear();
    // The broker closed every connection it knows; each shard also closes any it did not.
    for (std::size_t i = 1; i < shards.size(); ++i) command(static_cast<unsigned>(i), ShardCommand::Kind::shutdown, 0);
    local_shard().begin_shutdown();
  }

  void shard_finished() {
    if (++shards_finished < shards.size()) return;
    for (auto& shard : shards) shard->io().stop();
  }

  TransportStats transport_stats() const {
    TransportStats out;
    for (const auto& shard : shards) {
      out.handshakes_failed += shard->stats.handshakes_failed.load(std::memory_order_relaxed);
      out.handshakes_timed_out += shard->stats.handshakes_timed_out.load(std::memory_order_relaxed);
    }
    out.certificate_reloads_failed = certificate_reloads_failed;
    return out;
  }

  static constexpr unsigned kMaxThreads = 64;

  asio::io_context io;
  std::unique_ptr<broker::Store> store;  // after io: it may post to io until destroyed
  broker::AllowAllPolicy allow_all;
  broker::Policy* policy;  // allow_all unless the app gave one; it outlives the server
  std::vector<std::unique_ptr<Listener>> listeners;
  std::vector<std::unique_ptr<Shard>> shards;  // [0] runs on io
  std::size_t next_shard = 0;
  std::size_t shards_finished = 0;
  std::unordered_map<ConnectionId, Remote> remotes;
  std::vector<Batch<ShardCommand>> pending_commands;  // by shard
  Batch<ShardEvent> events_now;
  bool commands_posted = false;
  std::uint64_t certificate_reloads_failed = 0;
  std::unordered_map<Id, std::unique_ptr<asio::steady_timer>> timers;
  std::optional<asio::signal_set> signals;
  std::optional<asio::signal_set> hangup;
  std::vector<std::function<void()>> reload_handlers;
  Id next_timer_id = 0;
  bool stopping = false;
  // Last, so that it is destroyed first, while everything it calls into still exists.
  std::unique_ptr<broker::Broker> broker_;
};

Server::Server(broker::BrokerConfig config, const StoreFactory& make_store, broker::Policy* policy, unsigned threads)
    : impl_(std::make_unique<Impl>(std::move(config), make_store, policy, threads)) {}

void Server::on_reload(std::function<void()> handler) { impl_->reload_handlers.push_back(std::move(handler)); }

boost::asio::io_context& Server::io_context() { return impl_->io; }
broker::Broker& Server::broker() { return *impl_->broker_; }
broker::Store& Server::store() { return *impl_->store; }

Server::~Server() = default;

Expected<void, std::string> Server::listen(const std::vector<ListenerConfig>& listeners) {
  for (const auto& listener : listeners) {
    if (auto r = impl_->listen_on(listener); !r) return r;
  }
  return {};
}

TransportStats Server::transport_stats() const { return impl_->transport_stats(); }

std::size_t Server::threads() const { return impl_->shards.size(); }

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
