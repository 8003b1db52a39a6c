#include "engine.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <boost/asio/ssl/context.hpp>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "mqtt/codec.hpp"

namespace tern::bench {
namespace {

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::int64_t seconds_to_ns(double s) noexcept { return static_cast<std::int64_t>(s * 1e9); }

constexpr std::size_t kWriteBatch = 128 * 1024;    // bytes queued before a publisher writes
constexpr std::size_t kScratchBytes = 1024 * 1024;  // per-worker read buffer
constexpr int kReadsPerTurn = 4;                    // reads per connection per loop turn (fairness)
constexpr unsigned kMaxPendingConnects = 128;       // per worker; more overflow the listen backlog
constexpr std::uint32_t kMaxPacket = 268'435'455;
constexpr std::size_t kPayloadHeader = 16;          // publisher id, sequence, send time
constexpr std::uint64_t kNoTarget = std::numeric_limits<std::uint64_t>::max();

enum class Phase : int { connecting, running, draining, done };
enum class Role : std::uint8_t { publisher, subscriber, requester, responder, idle };
enum class ConnState : std::uint8_t {
  waiting,
  tcp_connecting,
  tls_handshaking,
  awaiting_connack,
  awaiting_suback,
  ready,
  closed
};

struct SslFree {
  void operator()(SSL* ssl) const noexcept { SSL_free(ssl); }
};

// Why a TLS operation failed: the certificate verification result when that is what
// failed, else OpenSSL's error queue (which this clears), else errno.
std::string tls_failure(SSL* ssl, int error) {
  if (const long verify = ssl != nullptr ? SSL_get_verify_result(ssl) : X509_V_OK; verify != X509_V_OK) {
    ERR_clear_error();
    return fmt::format("certificate verification failed: {}", X509_verify_cert_error_string(verify));
  }
  std::string text;
  while (const unsigned long e = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(e, buffer, sizeof buffer);
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  if (!text.empty()) return text;
  if (error == SSL_ERROR_SYSCALL) return errno != 0 ? std::strerror(errno) : "connection closed";
  return fmt::format("SSL error {}", error);
}

// Packet identifiers in use on one connection, as a bitmap over 1..65535.
class PacketIds {
 public:
  PacketIds() : used_(1024, 0) {}
  bool acquire(std::uint16_t& id) {
    if (in_use_ >= 65535) return false;
    do {
      next_ = next_ == 65535 ? 1 : static_cast<std::uint16_t>(next_ + 1);
    } while (test(next_));
    used_[next_ / 64] |= bit(next_);
    ++in_use_;
    id = next_;
    return true;
  }
  bool release(std::uint16_t id) {
    if (id == 0 || !test(id)) return false;
    used_[id / 64] &= ~bit(id);
    --in_use_;
    return true;
  }
  unsigned in_use() const noexcept { return in_use_; }

 private:
  static std::uint64_t bit(std::uint16_t id) noexcept { return std::uint64_t{1} << (id % 64); }
  bool test(std::uint16_t id) const noexcept { return (used_[id / 64] & bit(id)) != 0; }
  std::vector<std::uint64_t> used_;
  std::uint16_t next_ = 0;
  unsigned in_use_ = 0;
};

void put_u16(char* at, std::uint16_t v) noexcept {
  at[0] = static_cast<char>(v >> 8);
  at[1] = static_cast<char>(v & 0xFF);
}

struct PublisherState {
  std::uint32_t id = 0;
  std::string topic;
  std::string response_topic;        // reqrep requests only
  std::string packet;                // one encoded PUBLISH, copied per message
  std::size_t packet_id_offset = 0;  // QoS > 0
  std::size_t payload_offset = 0;
  std::uint32_t sent = 0;            // also the next sequence number
  std::uint64_t target = kNoTarget;
  std::uint64_t acked = 0;
  unsigned inflight_limit = 0;
  PacketIds ids;
  bool finished = false;
};

struct SubscriberState {
  std::uint32_t first_publisher = 0;
  std::vector<SequenceTracker> trackers;  // publishers first_publisher ..
  LatencyHistogram latency;
  std::uint64_t received = 0;
  std::uint64_t foreign = 0;
  std::uint64_t payload_bytes = 0;
};

struct QueuedReply {
  std::size_t packet_id_offset = 0;
  std::string bytes;  // encoded, packet identifier still to be filled in
};

struct ResponderState {
  PacketIds ids;
  std::deque<QueuedReply> waiting;  // replies beyond the broker's receive maximum
};

struct Conn {
  int fd = -1;
  Role role = Role::idle;
  ConnState state = ConnState::waiting;
  unsigned index = 0;  // within its role
  std::string client_id;
  std::vector<std::string> filters;
  std::string out;
  std::size_t out_pos = 0;
  std::string partial;  // bytes of an incomplete packet
  std::unique_ptr<SSL, SslFree> ssl;  // --tls: owns the session, not the socket
  // OpenSSL may need the other direction to finish a read or a write (TLS 1.2
  // renegotiation, 1.3 key updates): the socket event it waits for retries the operation.
  bool write_wants_read = false;
  bool read_wants_write = false;
  bool readable = false;
  bool writable = false;
  bool in_read_list = false;
  bool in_dirty_list = false;
  std::uint16_t receive_maximum = 65535;  // the broker's, for our QoS 1/2 PUBLISH
  std::uint32_t max_outgoing_packet = kMaxPacket;
  std::int64_t ping_interval_ns = 0;
  std::int64_t last_send_ns = 0;
  std::unique_ptr<PublisherState> pub;
  std::unique_ptr<SubscriberState> sub;
  std::unique_ptr<ResponderState> responder;
  std::size_t pending_bytes() const noexcept { return out.size() - out_pos; }
};

struct alignas(64) DeliveryCounter {
  std::atomic<std::uint64_t> value{0};
};

class Worker;

struct Shared {
  explicit Shared(const Options& o) : opt(o) {}
  const Options& opt;
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::optional<boost::asio::ssl::context> tls;  // --tls; SSL_new from every worker
  std::uint64_t fan = 1;  // deliveries each PUBLISH should cause
  std::uint64_t publisher_window = 0;  // messages one publisher may be ahead; 0: unbounded
  unsigned total_connections = 0;
  unsigned total_publishers = 0;
  std::vector<Worker*> workers;
  std::unique_ptr<DeliveryCounter[]> delivered;  // per publisher id

  std::atomic<int> phase{static_cast<int>(Phase::connecting)};
  std::atomic<unsigned> ready{0};
  std::atomic<unsigned> publishers_finished{0};
  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> acked{0};
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::int64_t> last_delivery_ns{0};
  std::atomic<std::int64_t> last_send_ns{0};
  std::int64_t start_ns = 0;  // written before phase becomes running

  std::atomic<bool> failed{false};
  std::atomic<bool> setup_failed{false};
  std::mutex error_mutex;
  std::string error;

  Phase current_phase() const noexcept { return static_cast<Phase>(phase.load(std::memory_order_acquire)); }
  void fail(std::string text, bool during_setup) {
    {
      std::lock_guard lock(error_mutex);
      if (error.empty()) error = std::move(text);
    }
    if (during_setup) setup_failed.store(true);
    failed.store(true);
  }
};

class Worker {
 public:
  Worker(Shared& shared, unsigned index) : shared_(shared), opt_(shared.opt), index_(index), scratch_(kScratchBytes) {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.ptr = &wake_fd_;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  }
  ~Worker() {
    for (auto& c : conns_) close_conn(*c);
    if (timer_fd_ >= 0) close(timer_fd_);
    close(wake_fd_);
    close(epoll_fd_);
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void add(std::unique_ptr<Conn> c) {
    if (c->pub) publishers_.push_back(c.get());
    waiting_.push_back(c.get());
    conns_.push_back(std::move(c));
  }

  void wake() noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = write(wake_fd_, &one, sizeof one);
  }

  void run();

  const std::vector<std::unique_ptr<Conn>>& connections() const noexcept { return conns_; }
  std::atomic<bool> credit_wait{false};

  // Coordinator results (worker 0 only).
  std::int64_t connect_start_ns = 0;
  std::int64_t connected_ns = 0;
  std::int64_t publish_end_ns = 0;
  std::int64_t end_ns = 0;
  double cpu_at_start = 0;
  double cpu_at_end = 0;
  std::optional<double> broker_cpu_at_start;
  std::optional<double> broker_cpu_at_end;
  std::optional<std::uint64_t> rss_with;

 private:
  void start_connects();
  void start_connect(Conn& c);
  void on_event(Conn& c, std::uint32_t events);
  void on_connected(Conn& c);
  void start_tls(Conn& c);
  void continue_handshake(Conn& c);
  void send_connect(Conn& c);
  void mark_readable(Conn& c);
  void read_some(Conn& c);
  void read_some_tls(Conn& c);
  long write_some(Conn& c);
  bool parse(Conn& c, std::string_view data);
  bool handle_frame(Conn& c, const mqtt::Frame& frame);
  bool on_connack(Conn& c, const mqtt::Connack& ack);
  bool on_suback(Conn& c, const mqtt::Suback& ack);
  void on_publish(Conn& c, const mqtt::Publish& msg);
  void on_ack(Conn& c, const mqtt::PubAck& ack);
  void respond(Conn& c, const mqtt::Publish& request);
  void became_ready(Conn& c);
  bool pump(Conn& c);
  std::uint64_t credit(const PublisherState& p, bool& credit_limited) const;
  void append(Conn& c, const mqtt::Packet& packet);
  void mark_dirty(Conn& c);
  void flush(Conn& c);
  void conn_failed(Conn& c, std::string text);
  void close_conn(Conn& c);
  void flush_counters();
  void coordinate();
  void enter_phase(Phase phase);
  void arm_rate_timer();
  void send_pings();
  void say_goodbye();

  Shared& shared_;
  const Options& opt_;
  unsigned index_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  int timer_fd_ = -1;
  std::vector<char> scratch_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::deque<Conn*> waiting_;  // not yet connecting
  unsigned pending_connects_ = 0;
  std::vector<Conn*> publishers_;
  std::vector<Conn*> read_list_;
  std::vector<Conn*> dirty_list_;
  std::int64_t now_ = 0;
  Phase phase_ = Phase::connecting;
  bool credit_blocked_ = false;

  // Counted locally, published to Shared once per loop turn.
  std::uint64_t local_sent_ = 0;
  std::uint64_t local_acked_ = 0;
  std::uint64_t local_received_ = 0;
  std::int64_t local_last_delivery_ = 0;
  std::int64_t local_last_send_ = 0;

  // Coordinator state.
  std::int64_t publish_deadline_ = 0;
  std::int64_t drain_deadline_ = 0;
  std::int64_t connect_deadline_ = 0;
};

void Worker::start_connects() {
  while (!waiting_.empty() && pending_connects_ < kMaxPendingConnects && !shared_.failed.load()) {
    Conn* c = waiting_.front();
    waiting_.pop_front();
    start_connect(*c);
  }
}

void Worker::start_connect(Conn& c) {
  c.fd = socket(shared_.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    shared_.fail(fmt::format("socket: {}", std::strerror(errno)), true);
    return;
  }
  const int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c.fd, reinterpret_cast<const sockaddr*>(&shared_.addr), shared_.addr_len) != 0 && errno != EINPROGRESS) {
    shared_.fail(fmt::format("connect to {}:{}: {}", opt_.host, opt_.port, std::strerror(errno)), true);
    close(c.fd);
    c.fd = -1;
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = &c;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev);
  c.state = ConnState::tcp_connecting;
  ++pending_connects_;
}

void Worker::on_connected(Conn& c) {
  int error = 0;
  socklen_t len = sizeof error;
  getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &len);
  if (error != 0) {
    shared_.fail(fmt::format("connect to {}:{}: {}", opt_.host, opt_.port, std::strerror(error)), true);
    close_conn(c);
    return;
  }
  if (shared_.tls) {
    start_tls(c);
  } else {
    send_connect(c);
  }
}

void Worker::start_tls(Conn& c) {
  c.ssl.reset(SSL_new(shared_.tls->native_handle()));
  if (!c.ssl || SSL_set_fd(c.ssl.get(), c.fd) != 1) {
    conn_failed(c, fmt::format("TLS setup for {}: {}", c.client_id, tls_failure(c.ssl.get(), SSL_ERROR_SSL)));
    return;
  }
  // The certificate must name the host the broker was addressed by.
  in6_addr ip{};
  const bool is_ip = inet_pton(AF_INET, opt_.host.c_str(), &ip) == 1 || inet_pton(AF_INET6, opt_.host.c_str(), &ip) == 1;
  // SSL_set_tlsext_host_name, without the macro's C cast.
  const auto send_sni = [&] {
    return SSL_ctrl(c.ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                    const_cast<char*>(opt_.host.c_str())) == 1;
  };
  const bool named = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c.ssl.get()), opt_.host.c_str()) == 1
                           : SSL_set1_host(c.ssl.get(), opt_.host.c_str()) == 1 && send_sni();
  if (!named) {
    conn_failed(c, fmt::format("TLS setup for {}: cannot verify the name {}", c.client_id, opt_.host));
    return;
  }
  SSL_set_connect_state(c.ssl.get());
  c.state = ConnState::tls_handshaking;
  continue_handshake(c);
}

void Worker::continue_handshake(Conn& c) {
  ERR_clear_error();
  errno = 0;
  const int rc = SSL_do_handshake(c.ssl.get());
  if (rc == 1) {
    // With read-ahead the handshake may have taken later bytes off the socket, which no
    // edge-triggered event would announce.
    c.writable = true;
    mark_readable(c);
    send_connect(c);
    return;
  }
  const int error = SSL_get_error(c.ssl.get(), rc);
  if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return;
  conn_failed(c, fmt::format("TLS handshake with {}:{} failed ({}): {}", opt_.host, opt_.port, c.client_id,
                             tls_failure(c.ssl.get(), error)));
}

void Worker::send_connect(Conn& c) {
  mqtt::Connect connect;
  connect.version = opt_.version;
  connect.clean_start = true;
  connect.keep_alive = 0;  // the run is bounded; a server keep-alive is honoured
  connect.client_id = c.client_id;
  append(c, connect);
  c.state = ConnState::awaiting_connack;
}

void Worker::append(Conn& c, const mqtt::Packet& packet) {
  mqtt::encode(packet, opt_.version, c.out);
  mark_dirty(c);
}

void Worker::mark_dirty(Conn& c) {
  if (!c.in_dirty_list) {
    c.in_dirty_list = true;
    dirty_list_.push_back(&c);
  }
}

// Bytes written; 0 when the socket (or OpenSSL) must wait for an event; -1 after the
// connection failed.
long Worker::write_some(Conn& c) {
  const char* data = c.out.data() + c.out_pos;
  const std::size_t size = c.pending_bytes();
  if (c.ssl) {
    // Partial writes are enabled and the buffer may move between retries (SSL_CTX modes),
    // because c.out grows and compacts while a record waits for the socket.
    ERR_clear_error();
    errno = 0;
    const int n = SSL_write(c.ssl.get(), data, static_cast<int>(std::min<std::size_t>(size, INT_MAX)));
    if (n > 0) return n;
    const int error = SSL_get_error(c.ssl.get(), n);
    if (error == SSL_ERROR_WANT_WRITE) return 0;
    if (error == SSL_ERROR_WANT_READ) {
      c.write_wants_read = true;
      return 0;
    }
    conn_failed(c, fmt::format("TLS write to the broker failed ({}): {}", c.client_id, tls_failure(c.ssl.get(), error)));
    return -1;
  }
  for (;;) {
    const ssize_t n = send(c.fd, data, size, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    if (errno != EINTR) break;
  }
  conn_failed(c, fmt::format("write to the broker failed ({}): {}", c.client_id, std::strerror(errno)));
  return -1;
}

void Worker::flush(Conn& c) {
  while (c.writable && c.fd >= 0 && c.pending_bytes() > 0) {
    const long n = write_some(c);
    if (n < 0) return;
    if (n == 0) {
      c.writable = false;
    } else {
      c.out_pos += static_cast<std::size_t>(n);
      c.last_send_ns = now_;
    }
  }
  if (c.pending_bytes() == 0) {
    c.out.clear();
    c.out_pos = 0;
  } else if (c.out_pos > (1u << 20) && c.out_pos * 2 > c.out.size()) {
    c.out.erase(0, c.out_pos);
    c.out_pos = 0;
  }
}

void Worker::conn_failed(Conn& c, std::string text) {
  shared_.fail(std::move(text), phase_ == Phase::connecting);
  close_conn(c);
}

void Worker::close_conn(Conn& c) {
  c.ssl.reset();
  if (c.fd >= 0) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    c.fd = -1;
  }
  if (c.state == ConnState::tcp_connecting || c.state == ConnState::tls_handshaking ||
      c.state == ConnState::awaiting_connack || c.state == ConnState::awaiting_suback) {
    --pending_connects_;
  }
  c.state = ConnState::closed;
  c.readable = false;
  c.writable = false;
}

void Worker::mark_readable(Conn& c) {
  c.readable = true;
  if (!c.in_read_list) {
    c.in_read_list = true;
    read_list_.push_back(&c);
  }
}

void Worker::on_event(Conn& c, std::uint32_t events) {
  if (c.fd < 0) return;
  if (c.state == ConnState::tcp_connecting) {
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
    c.writable = true;
    on_connected(c);
    if (c.fd < 0 || c.state == ConnState::tls_handshaking) return;
  } else if (c.state == ConnState::tls_handshaking) {
    continue_handshake(c);
    return;
  }
  const bool in = (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
  const bool out = (events & EPOLLOUT) != 0;
  if (out || (in && c.write_wants_read)) {
    c.write_wants_read = false;
    c.writable = true;
    if (c.pending_bytes() > 0) mark_dirty(c);
  }
  if (in || (out && c.read_wants_write)) {
    c.read_wants_write = false;
    mark_readable(c);
  }
}

// OpenSSL hands out at most one record per SSL_read, so a short read says nothing about
// the socket: reading goes on until OpenSSL wants more bytes than have arrived.
void Worker::read_some_tls(Conn& c) {
  enum class End : std::uint8_t { room, drained, closed, failed };
  for (int round = 0; round < kReadsPerTurn && c.fd >= 0; ++round) {
    std::size_t have = c.partial.size();
    if (have >= scratch_.size()) {
      conn_failed(c, "a packet larger than the read buffer");
      return;
    }
    std::memcpy(scratch_.data(), c.partial.data(), have);
    const std::size_t before = have;
    End end = End::room;
    std::string failure;
    while (have < scratch_.size()) {
      ERR_clear_error();
      errno = 0;
      const int n = SSL_read(c.ssl.get(), scratch_.data() + have,
                             static_cast<int>(std::min<std::size_t>(scratch_.size() - have, INT_MAX)));
      if (n > 0) {
        have += static_cast<std::size_t>(n);
        continue;
      }
      const int error = SSL_get_error(c.ssl.get(), n);
      if (error == SSL_ERROR_WANT_READ) {
        end = End::drained;
      } else if (error == SSL_ERROR_WANT_WRITE) {
        c.read_wants_write = true;
        end = End::drained;
      } else if (error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && errno == 0 &&
                                                    ERR_peek_error() == 0)) {
        end = End::closed;
      } else {
        end = End::failed;
        failure = tls_failure(c.ssl.get(), error);
      }
      break;
    }
    // What arrived before a close may explain it (a DISCONNECT with a reason).
    if (have > before) {
      c.partial.clear();
      if (!parse(c, std::string_view(scratch_.data(), have))) return;
    }
    switch (end) {
      case End::room: break;
      case End::drained: c.readable = false; return;
      case End::closed:
        conn_failed(c, fmt::format("the broker closed the connection of {}", c.client_id));
        return;
      case End::failed:
        conn_failed(c, fmt::format("TLS read from the broker failed ({}): {}", c.client_id, failure));
        return;
    }
  }
}

void Worker::read_some(Conn& c) {
  if (c.ssl) {
    read_some_tls(c);
    return;
  }
  for (int round = 0; round < kReadsPerTurn && c.fd >= 0; ++round) {
    const std::size_t have = c.partial.size();
    if (have >= scratch_.size()) {
      conn_failed(c, "a packet larger than the read buffer");
      return;
    }
    std::memcpy(scratch_.data(), c.partial.data(), have);
    const std::size_t space = scratch_.size() - have;
    const ssize_t n = recv(c.fd, scratch_.data() + have, space, 0);
    if (n > 0) {
      c.partial.clear();
      if (!parse(c, std::string_view(scratch_.data(), have + static_cast<std::size_t>(n)))) return;
      // A short read drained the socket; edge-triggered epoll reports later arrivals.
      if (static_cast<std::size_t>(n) < space) {
        c.readable = false;
        return;
      }
    } else if (n == 0) {
      conn_failed(c, fmt::format("the broker closed the connection of {}", c.client_id));
      return;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      c.readable = false;
      return;
    } else if (errno != EINTR) {
      conn_failed(c, fmt::format("read from the broker failed ({}): {}", c.client_id, std::strerror(errno)));
      return;
    }
  }
}

bool Worker::parse(Conn& c, std::string_view data) {
  std::size_t pos = 0;
  while (pos < data.size()) {
    auto frame = mqtt::parse_frame(data.substr(pos), kMaxPacket);
    if (!frame) {
      conn_failed(c, fmt::format("unframeable bytes from the broker ({}): {}", c.client_id, frame.error().what));
      return false;
    }
    if (frame->size == 0) break;
    if (!handle_frame(c, *frame)) return false;
    pos += frame->size;
  }
  c.partial.assign(data.substr(pos));
  return true;
}

bool Worker::handle_frame(Conn& c, const mqtt::Frame& frame) {
  auto decoded = mqtt::decode(frame, opt_.version);
  if (!decoded) {
    conn_failed(c, fmt::format("undecodable packet (type {}) from the broker ({}): {}",
                               static_cast<unsigned>(frame.type()), c.client_id, decoded.error().what));
    return false;
  }
  mqtt::Packet& packet = *decoded;
  switch (frame.type()) {
    case mqtt::PacketType::publish:
      on_publish(c, std::get<mqtt::Publish>(packet));
      return c.fd >= 0;
    case mqtt::PacketType::puback:
    case mqtt::PacketType::pubrec:
    case mqtt::PacketType::pubrel:
    case mqtt::PacketType::pubcomp:
      on_ack(c, std::get<mqtt::PubAck>(packet));
      return c.fd >= 0;
    case mqtt::PacketType::connack:
      return on_connack(c, std::get<mqtt::Connack>(packet));
    case mqtt::PacketType::suback:
      return on_suback(c, std::get<mqtt::Suback>(packet));
    case mqtt::PacketType::pingresp:
      return true;
    case mqtt::PacketType::disconnect: {
      const auto& d = std::get<mqtt::Disconnect>(packet);
      conn_failed(c, fmt::format("the broker sent DISCONNECT to {} (reason 0x{:02x}{}{})", c.client_id,
                                 static_cast<unsigned>(d.reason_code),
                                 d.properties.reason_string ? ": " : "",
                                 d.properties.reason_string.value_or("")));
      return false;
    }
    default:
      conn_failed(c, fmt::format("unexpected packet type {} from the broker ({})", static_cast<unsigned>(frame.type()),
                                 c.client_id));
      return false;
  }
}

bool Worker::on_connack(Conn& c, const mqtt::Connack& ack) {
  if (c.state != ConnState::awaiting_connack) {
    conn_failed(c, "a second CONNACK");
    return false;
  }
  if (ack.reason_code != mqtt::ReasonCode::success) {
    conn_failed(c, fmt::format("connection refused for {} (reason 0x{:02x})", c.client_id,
                               static_cast<unsigned>(ack.reason_code)));
    return false;
  }
  const mqtt::Properties& p = ack.properties;
  if (p.receive_maximum) c.receive_maximum = *p.receive_maximum;
  if (p.maximum_packet_size) c.max_outgoing_packet = *p.maximum_packet_size;
  if (p.server_keep_alive && *p.server_keep_alive > 0) {
    c.ping_interval_ns = seconds_to_ns(*p.server_keep_alive) / 2;
  }
  if (p.maximum_qos && *p.maximum_qos < static_cast<std::uint8_t>(opt_.qos)) {
    conn_failed(c, fmt::format("the broker supports QoS {} at most", static_cast<unsigned>(*p.maximum_qos)));
    return false;
  }
  if (c.pub) {
    c.pub->inflight_limit = std::min<unsigned>(opt_.inflight, c.receive_maximum);
    if (c.pub->packet.size() > c.max_outgoing_packet) {
      conn_failed(c, fmt::format("the broker's maximum packet size is {} bytes", c.max_outgoing_packet));
      return false;
    }
  }
  if (c.filters.empty()) {
    became_ready(c);
    return true;
  }
  mqtt::Subscribe subscribe;
  subscribe.packet_id = 1;
  for (const std::string& f : c.filters) {
    mqtt::TopicSubscription t;
    t.filter = f;
    t.options.qos = opt_.qos;
    subscribe.topics.push_back(t);
  }
  append(c, subscribe);
  c.state = ConnState::awaiting_suback;
  return true;
}

bool Worker::on_suback(Conn& c, const mqtt::Suback& ack) {
  if (c.state != ConnState::awaiting_suback || ack.packet_id != 1 || ack.reason_codes.size() != c.filters.size()) {
    conn_failed(c, fmt::format("unexpected SUBACK for {}", c.client_id));
    return false;
  }
  for (mqtt::ReasonCode rc : ack.reason_codes) {
    if (static_cast<std::uint8_t>(rc) != static_cast<std::uint8_t>(opt_.qos)) {
      conn_failed(c, fmt::format("subscription of {} not granted at QoS {} (reason 0x{:02x})", c.client_id,
                                 static_cast<unsigned>(opt_.qos), static_cast<unsigned>(rc)));
      return false;
    }
  }
  became_ready(c);
  return true;
}

void Worker::became_ready(Conn& c) {
  c.state = ConnState::ready;
  --pending_connects_;
  shared_.ready.fetch_add(1);
  start_connects();
}

void Worker::on_publish(Conn& c, const mqtt::Publish& msg) {
  if (msg.qos == mqtt::QoS::at_least_once) {
    append(c, mqtt::PubAck{mqtt::PacketType::puback, msg.packet_id, mqtt::ReasonCode::success, {}});
  } else if (msg.qos == mqtt::QoS::exactly_once) {
    append(c, mqtt::PubAck{mqtt::PacketType::pubrec, msg.packet_id, mqtt::ReasonCode::success, {}});
  }
  if (c.role == Role::responder) {
    respond(c, msg);
    return;
  }
  SubscriberState* s = c.sub.get();
  if (s == nullptr) {
    conn_failed(c, fmt::format("a PUBLISH on {}, which subscribed to nothing", c.client_id));
    return;
  }
  ++s->received;
  ++local_received_;
  local_last_delivery_ = now_;
  if (msg.payload.size() < kPayloadHeader) {
    ++s->foreign;
    return;
  }
  std::uint32_t publisher = 0;
  std::uint32_t seq = 0;
  std::int64_t sent_at = 0;
  std::memcpy(&publisher, msg.payload.data(), 4);
  std::memcpy(&seq, msg.payload.data() + 4, 4);
  std::memcpy(&sent_at, msg.payload.data() + 8, 8);
  const std::uint32_t slot = publisher - s->first_publisher;
  if (publisher < s->first_publisher || slot >= s->trackers.size()) {
    ++s->foreign;
    return;
  }
  if (c.role == Role::requester) {
    // The correlation data must name the request this reply answers.
    const auto cd = msg.properties.correlation_data;
    if (!cd || cd->size() != 8 || std::memcmp(cd->data(), msg.payload.data(), 8) != 0) {
      ++s->foreign;
      return;
    }
  }
  s->trackers[slot].record(seq);
  s->payload_bytes += msg.payload.size();
  s->latency.record(static_cast<std::uint64_t>(std::max<std::int64_t>(0, now_ - sent_at)));
  shared_.delivered[publisher].value.fetch_add(1, std::memory_order_relaxed);
}

void Worker::respond(Conn& c, const mqtt::Publish& request) {
  const auto& props = request.properties;
  if (!props.response_topic) {
    conn_failed(c, "a request without a response topic");
    return;
  }
  mqtt::Publish reply;
  reply.topic = *props.response_topic;
  reply.payload = request.payload;
  reply.qos = opt_.qos;
  reply.packet_id = reply.qos == mqtt::QoS::at_most_once ? 0 : 1;
  reply.properties.correlation_data = props.correlation_data;
  if (reply.qos == mqtt::QoS::at_most_once) {
    append(c, reply);
    return;
  }
  ResponderState& r = *c.responder;
  std::string encoded;
  mqtt::encode(reply, opt_.version, encoded);
  auto frame = mqtt::parse_frame(encoded, kMaxPacket);
  const std::size_t id_offset =
      static_cast<std::size_t>(frame->body.data() - encoded.data()) + 2 + reply.topic.size();
  std::uint16_t id = 0;
  if (r.ids.in_use() < c.receive_maximum && r.waiting.empty() && r.ids.acquire(id)) {
    put_u16(encoded.data() + id_offset, id);
    c.out.append(encoded);
    mark_dirty(c);
  } else {
    r.waiting.push_back(QueuedReply{id_offset, std::move(encoded)});
  }
}

void Worker::on_ack(Conn& c, const mqtt::PubAck& ack) {
  const auto rc = static_cast<std::uint8_t>(ack.reason_code);
  if (ack.type == mqtt::PacketType::pubrel) {
    append(c, mqtt::PubAck{mqtt::PacketType::pubcomp, ack.packet_id, mqtt::ReasonCode::success, {}});
    return;
  }
  if (rc >= 0x80) {
    conn_failed(c, fmt::format("the broker refused a PUBLISH of {} (reason 0x{:02x})", c.client_id, rc));
    return;
  }
  if (ack.type == mqtt::PacketType::pubrec) {
    append(c, mqtt::PubAck{mqtt::PacketType::pubrel, ack.packet_id, mqtt::ReasonCode::success, {}});
    return;
  }
  const bool completes = (ack.type == mqtt::PacketType::puback && opt_.qos == mqtt::QoS::at_least_once) ||
                         (ack.type == mqtt::PacketType::pubcomp && opt_.qos == mqtt::QoS::exactly_once);
  if (!completes) {
    conn_failed(c, fmt::format("unexpected acknowledgement type {} for {}", static_cast<unsigned>(ack.type),
                               c.client_id));
    return;
  }
  if (c.responder) {
    ResponderState& r = *c.responder;
    if (!r.ids.release(ack.packet_id)) {
      conn_failed(c, fmt::format("acknowledgement of unknown packet id {}", ack.packet_id));
      return;
    }
    std::uint16_t id = 0;
    while (!r.waiting.empty() && r.ids.in_use() < c.receive_maximum && r.ids.acquire(id)) {
      QueuedReply& queued = r.waiting.front();
      put_u16(queued.bytes.data() + queued.packet_id_offset, id);
      c.out.append(queued.bytes);
      r.waiting.pop_front();
      mark_dirty(c);
    }
    return;
  }
  if (!c.pub || !c.pub->ids.release(ack.packet_id)) {
    conn_failed(c, fmt::format("acknowledgement of unknown packet id {} on {}", ack.packet_id, c.client_id));
    return;
  }
  ++c.pub->acked;
  ++local_acked_;
}

std::uint64_t Worker::credit(const PublisherState& p, bool& credit_limited) const {
  if (p.finished || phase_ != Phase::running) return 0;
  std::uint64_t allowed = p.target - p.sent;
  if (opt_.qos != mqtt::QoS::at_most_once) {
    const unsigned used = p.ids.in_use();
    allowed = std::min<std::uint64_t>(allowed, used >= p.inflight_limit ? 0 : p.inflight_limit - used);
  }
  if (opt_.rate > 0) {
    const double per_publisher = opt_.rate / static_cast<double>(shared_.total_publishers);
    const double elapsed = static_cast<double>(now_ - shared_.start_ns) * 1e-9;
    const auto due = static_cast<std::uint64_t>(elapsed * per_publisher) + 1;
    allowed = std::min<std::uint64_t>(allowed, due > p.sent ? due - p.sent : 0);
  }
  if (shared_.publisher_window > 0) {
    const std::uint64_t fan = shared_.fan;
    const std::uint64_t delivered = shared_.delivered[p.id].value.load(std::memory_order_relaxed);
    const std::uint64_t owed = std::uint64_t{p.sent} * fan;
    const std::uint64_t outstanding = owed - std::min(delivered, owed);
    const std::uint64_t limit = shared_.publisher_window * fan;
    const std::uint64_t by_window = outstanding >= limit ? 0 : (limit - outstanding + fan - 1) / fan;
    if (by_window < allowed) {
      allowed = by_window;
      if (allowed == 0) credit_limited = true;
    }
  }
  return allowed;
}

// Queues one batch of PUBLISH packets and writes them. Returns true when the publisher
// could go on at once (socket writable, credit left).
bool Worker::pump(Conn& c) {
  PublisherState& p = *c.pub;
  if (c.fd < 0 || c.state != ConnState::ready || p.finished || !c.writable) return false;
  bool credit_limited = false;
  std::uint64_t allowed = credit(p, credit_limited);
  if (credit_limited) credit_blocked_ = true;
  if (allowed == 0) return false;
  const std::size_t packet_size = p.packet.size();
  const std::size_t pending = c.pending_bytes();
  const std::size_t room = pending >= kWriteBatch ? 0 : (kWriteBatch - pending) / packet_size;
  std::uint64_t n = std::min<std::uint64_t>(allowed, std::max<std::size_t>(room, pending == 0 ? 1 : 0));
  if (n == 0) {
    flush(c);
    return c.writable;
  }
  if (c.role == Role::requester) {
    // Requests carry their correlation data in a property, so each is encoded whole.
    for (std::uint64_t i = 0; i < n; ++i) {
      std::string payload(opt_.size, 'x');
      const std::uint32_t seq = p.sent;
      std::memcpy(payload.data(), &p.id, 4);
      std::memcpy(payload.data() + 4, &seq, 4);
      std::memcpy(payload.data() + 8, &now_, 8);
      mqtt::Publish request;
      request.topic = p.topic;
      request.payload = payload;
      request.qos = opt_.qos;
      if (request.qos != mqtt::QoS::at_most_once && !p.ids.acquire(request.packet_id)) break;
      request.properties.response_topic = p.response_topic;
      request.properties.correlation_data = std::string_view(payload.data(), 8);
      mqtt::encode(request, opt_.version, c.out);
      ++p.sent;
      ++local_sent_;
    }
  } else {
    const std::size_t start = c.out.size();
    c.out.resize(start + static_cast<std::size_t>(n) * packet_size);
    char* at = c.out.data() + start;
    for (std::uint64_t i = 0; i < n; ++i, at += packet_size) {
      std::memcpy(at, p.packet.data(), packet_size);
      if (opt_.qos != mqtt::QoS::at_most_once) {
        std::uint16_t id = 0;
        p.ids.acquire(id);
        put_u16(at + p.packet_id_offset, id);
      }
      char* payload = at + p.payload_offset;
      const std::uint32_t seq = p.sent++;
      std::memcpy(payload, &p.id, 4);
      std::memcpy(payload + 4, &seq, 4);
      std::memcpy(payload + 8, &now_, 8);  // one batch, one write: one send time
    }
    local_sent_ += n;
  }
  local_last_send_ = now_;
  if (p.sent >= p.target) {
    p.finished = true;
    shared_.publishers_finished.fetch_add(1);
  }
  flush(c);
  return c.writable && !p.finished;
}

void Worker::flush_counters() {
  if (local_sent_ != 0) {
    shared_.sent.fetch_add(local_sent_);
    local_sent_ = 0;
  }
  if (local_acked_ != 0) {
    shared_.acked.fetch_add(local_acked_);
    local_acked_ = 0;
  }
  if (local_last_send_ != 0) {
    std::int64_t seen = shared_.last_send_ns.load();
    while (seen < local_last_send_ && !shared_.last_send_ns.compare_exchange_weak(seen, local_last_send_)) {
    }
    local_last_send_ = 0;
  }
  if (local_received_ != 0) {
    shared_.received.fetch_add(local_received_);
    local_received_ = 0;
    std::int64_t seen = shared_.last_delivery_ns.load();
    while (seen < local_last_delivery_ && !shared_.last_delivery_ns.compare_exchange_weak(seen, local_last_delivery_)) {
    }
    // Publishers on other workers may be waiting for these deliveries.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    for (Worker* w : shared_.workers) {
      if (w != this && w->credit_wait.load() && w->credit_wait.exchange(false)) w->wake();
    }
  }
}

void Worker::enter_phase(Phase phase) {
  shared_.phase.store(static_cast<int>(phase), std::memory_order_release);
  for (Worker* w : shared_.workers) {
    if (w != this) w->wake();
  }
}

// Worker 0 moves the run through its phases.
void Worker::coordinate() {
  const Phase phase = shared_.current_phase();
  if (phase == Phase::done) return;
  if (shared_.failed.load()) {
    end_ns = now_;
    if (phase == Phase::running) publish_end_ns = now_;
    enter_phase(Phase::done);
    return;
  }
  switch (phase) {
    case Phase::connecting:
      if (shared_.ready.load() == shared_.total_connections) {
        connected_ns = now_;
        shared_.start_ns = now_;
        cpu_at_start = self_cpu_seconds();
        if (opt_.broker_pid > 0) broker_cpu_at_start = process_cpu_seconds(opt_.broker_pid);
        publish_deadline_ = now_ + seconds_to_ns(opt_.duration);
        enter_phase(Phase::running);
      } else if (now_ >= connect_deadline_) {
        shared_.fail(fmt::format("only {} of {} connections were ready after {} s", shared_.ready.load(),
                                 shared_.total_connections, opt_.connect_timeout),
                     true);
        end_ns = now_;
        enter_phase(Phase::done);
      }
      break;
    case Phase::running:
      if (opt_.scenario == Scenario::idle) {
        if (now_ >= publish_deadline_) {
          if (opt_.broker_pid > 0) rss_with = process_rss_bytes(opt_.broker_pid);
          publish_end_ns = end_ns = now_;
          enter_phase(Phase::done);
        }
      } else if (shared_.publishers_finished.load() == shared_.total_publishers || now_ >= publish_deadline_) {
        publish_end_ns = now_;
        drain_deadline_ = now_ + seconds_to_ns(opt_.drain);
        enter_phase(Phase::draining);
      }
      break;
    case Phase::draining: {
      const std::uint64_t sent = shared_.sent.load();
      const bool delivered = shared_.received.load() >= sent * shared_.fan;
      const bool acked = opt_.qos == mqtt::QoS::at_most_once || shared_.acked.load() >= sent;
      if ((delivered && acked) || now_ >= drain_deadline_) {
        end_ns = now_;
        enter_phase(Phase::done);
      }
      break;
    }
    case Phase::done:
      break;
  }
  if (shared_.current_phase() == Phase::done) {
    cpu_at_end = self_cpu_seconds();
    if (opt_.broker_pid > 0) broker_cpu_at_end = process_cpu_seconds(opt_.broker_pid);
  }
}

void Worker::arm_rate_timer() {
  if (opt_.rate <= 0 || publishers_.empty()) return;
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  const double local_rate =
      opt_.rate * static_cast<double>(publishers_.size()) / static_cast<double>(shared_.total_publishers);
  const auto interval = std::clamp<std::int64_t>(static_cast<std::int64_t>(1e9 / local_rate), 20'000, 10'000'000);
  itimerspec spec{};
  spec.it_interval.tv_sec = interval / 1'000'000'000;
  spec.it_interval.tv_nsec = interval % 1'000'000'000;
  spec.it_value = spec.it_interval;
  timerfd_settime(timer_fd_, 0, &spec, nullptr);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLET;
  ev.data.ptr = &timer_fd_;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, timer_fd_, &ev);
}

void Worker::send_pings() {
  for (auto& c : conns_) {
    if (c->fd >= 0 && c->ping_interval_ns > 0 && now_ - c->last_send_ns >= c->ping_interval_ns) {
      append(*c, mqtt::Pingreq{});
      c->last_send_ns = now_;
    }
  }
}

void Worker::say_goodbye() {
  for (auto& c : conns_) {
    if (c->fd < 0 || c->state != ConnState::ready) continue;
    append(*c, mqtt::Disconnect{});
    flush(*c);
  }
}

void Worker::run() {
  const bool coordinator = index_ == 0;
  now_ = now_ns();
  if (coordinator) {
    connect_start_ns = now_;
    connect_deadline_ = now_ + seconds_to_ns(opt_.connect_timeout);
  }
  start_connects();
  std::int64_t next_ping_check = now_ + 1'000'000'000;
  std::vector<epoll_event> events(1024);
  bool hot = false;
  for (;;) {
    int timeout_ms = hot || !read_list_.empty() ? 0 : -1;
    if (timeout_ms != 0) {
      // Worker 0 looks at the other workers' progress now and then; all check deadlines.
      std::int64_t until = coordinator && shared_.workers.size() > 1 ? 5'000'000 : 1'000'000'000;
      if (coordinator) {
        const Phase phase = shared_.current_phase();
        std::int64_t deadline = 0;
        if (phase == Phase::connecting) deadline = connect_deadline_;
        if (phase == Phase::running) deadline = publish_deadline_;
        if (phase == Phase::draining) deadline = drain_deadline_;
        if (deadline > 0) until = std::min(until, std::max<std::int64_t>(0, deadline - now_));
      }
      timeout_ms = static_cast<int>((until + 999'999) / 1'000'000);
    }
    const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
    now_ = now_ns();
    for (int i = 0; i < n; ++i) {
      void* tag = events[static_cast<std::size_t>(i)].data.ptr;
      if (tag == &wake_fd_) {
        std::uint64_t value = 0;
        [[maybe_unused]] const auto r = read(wake_fd_, &value, sizeof value);
      } else if (tag == &timer_fd_) {
        std::uint64_t expirations = 0;
        [[maybe_unused]] const auto r = read(timer_fd_, &expirations, sizeof expirations);
      } else {
        on_event(*static_cast<Conn*>(tag), events[static_cast<std::size_t>(i)].events);
      }
    }

    const Phase previous = phase_;
    phase_ = shared_.current_phase();
    if (phase_ == Phase::done) break;
    if (phase_ == Phase::running && previous != Phase::running) arm_rate_timer();

    // Reads: every readable connection gets a bounded share per turn.
    for (std::size_t i = 0; i < read_list_.size();) {
      Conn& c = *read_list_[i];
      read_some(c);
      if (c.readable && c.fd >= 0) {
        ++i;
      } else {
        c.in_read_list = false;
        read_list_[i] = read_list_.back();
        read_list_.pop_back();
      }
    }

    hot = false;
    credit_blocked_ = false;
    if (phase_ == Phase::running) {
      for (Conn* c : publishers_) hot = pump(*c) || hot;
    }

    if (now_ >= next_ping_check) {
      send_pings();
      next_ping_check = now_ + 1'000'000'000;
    }
    for (Conn* c : dirty_list_) {
      c->in_dirty_list = false;
      flush(*c);
    }
    dirty_list_.clear();

    flush_counters();
    if (credit_blocked_ && !hot && shared_.workers.size() > 1) {
      credit_wait.store(true);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      for (Conn* c : publishers_) {
        bool limited = false;
        if (c->writable && credit(*c->pub, limited) > 0) hot = true;
      }
      if (hot) credit_wait.store(false);
    }
    if (phase_ == Phase::connecting && shared_.failed.load() && !coordinator) break;
    if (coordinator) {
      const Phase before = shared_.current_phase();
      coordinate();
      if (shared_.current_phase() != before) hot = true;  // act on the new phase at once
    }
  }
  say_goodbye();
}

std::string topic_name(const std::string& prefix, std::string_view kind, unsigned i) {
  return fmt::format("{}/{}/{}", prefix, kind, i);
}

// One encoded PUBLISH whose packet id and payload header get patched per message.
bool build_template(const Options& opt, PublisherState& p, std::string& error) {
  std::string filler(opt.size, 'x');
  mqtt::Publish publish;
  publish.topic = p.topic;
  publish.payload = filler;
  publish.qos = opt.qos;
  publish.packet_id = opt.qos == mqtt::QoS::at_most_once ? 0 : 1;
  mqtt::encode(publish, opt.version, p.packet);
  auto frame = mqtt::parse_frame(p.packet, kMaxPacket);
  if (!frame || frame->size != p.packet.size()) {
    error = "the codec produced an unframeable PUBLISH";
    return false;
  }
  p.payload_offset = p.packet.size() - opt.size;
  p.packet_id_offset = static_cast<std::size_t>(frame->body.data() - p.packet.data()) + 2 + p.topic.size();
  // Check the offsets against the decoder before trusting them for millions of copies.
  std::string probe = p.packet;
  if (opt.qos != mqtt::QoS::at_most_once) put_u16(probe.data() + p.packet_id_offset, 0x1234);
  probe[p.payload_offset] = 'P';
  auto decoded = mqtt::decode_one(probe, opt.version);
  const auto* check = decoded ? std::get_if<mqtt::Publish>(&*decoded) : nullptr;
  if (check == nullptr || check->topic != p.topic || check->payload.size() != opt.size || check->payload[0] != 'P' ||
      (opt.qos != mqtt::QoS::at_most_once && check->packet_id != 0x1234)) {
    error = "the codec's PUBLISH does not decode to what was encoded";
    return false;
  }
  return true;
}

bool resolve(const Options& opt, Shared& shared, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(opt.port);
  if (const int rc = getaddrinfo(opt.host.c_str(), port.c_str(), &hints, &found); rc != 0 || found == nullptr) {
    error = fmt::format("cannot resolve {}: {}", opt.host, gai_strerror(rc));
    return false;
  }
  std::memcpy(&shared.addr, found->ai_addr, found->ai_addrlen);
  shared.addr_len = found->ai_addrlen;
  freeaddrinfo(found);
  return true;
}

bool make_tls_context(const Options& opt, Shared& shared, std::string& error) {
  namespace ssl = boost::asio::ssl;
  ssl::context context(ssl::context::tls_client);
  boost::system::error_code ec;
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                          ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                      ec);
  if (!ec) context.set_verify_mode(ssl::verify_peer, ec);
  if (ec) {
    error = fmt::format("TLS setup: {}", ec.message());
    return false;
  }
  if (opt.cafile.empty()) {
    context.set_default_verify_paths(ec);
  } else {
    context.load_verify_file(opt.cafile, ec);
  }
  if (ec) {
    error = fmt::format("CA file {}: {}", opt.cafile.empty() ? "(system default)" : opt.cafile, ec.message());
    return false;
  }
  if (!opt.cert.empty()) {
    context.use_certificate_chain_file(opt.cert, ec);
    if (ec) {
      error = fmt::format("certificate {}: {}", opt.cert, ec.message());
      return false;
    }
    context.use_private_key_file(opt.key, ssl::context::pem, ec);
    if (ec) {
      error = fmt::format("key {}: {}", opt.key, ec.message());
      return false;
    }
  }
  SSL_CTX* native = context.native_handle();
  SSL_CTX_set_mode(native, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Fewer recv calls: OpenSSL reads as much as has arrived, not one record header at a time.
  SSL_CTX_set_read_ahead(native, 1);
  shared.tls.emplace(std::move(context));
  return true;
}

void raise_file_limit(unsigned needed) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t want = std::min<rlim_t>(limit.rlim_max, static_cast<rlim_t>(needed) + 64);
  if (limit.rlim_cur < want) {
    limit.rlim_cur = want;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

Result run_benchmark(const Options& opt) {
  Result result;
  Shared shared(opt);
  if (!resolve(opt, shared, result.error) || (opt.tls && !make_tls_context(opt, shared, result.error))) {
    result.setup_failed = true;
    return result;
  }
  const std::string prefix = opt.topic_prefix.empty() ? fmt::format("tern-bench/{}", getpid()) : opt.topic_prefix;
  const std::string id_prefix = fmt::format("tb{}-", getpid());

  // Subscribers come first so that each worker's subscriptions exist before its
  // publishers start; publishing waits for every connection anyway.
  std::vector<std::unique_ptr<Conn>> all;
  const unsigned P = opt.scenario == Scenario::idle ? 0 : opt.publishers;
  const unsigned S = opt.scenario == Scenario::idle ? 0 : opt.subscribers;
  for (unsigned s = 0; s < S; ++s) {
    auto c = std::make_unique<Conn>();
    c->index = s;
    c->client_id = fmt::format("{}s{}", id_prefix, s);
    if (opt.scenario == Scenario::reqrep) {
      c->role = Role::responder;
      c->responder = std::make_unique<ResponderState>();
      for (unsigned r = s; r < P; r += S) c->filters.push_back(topic_name(prefix, "req", r));
      if (c->filters.empty()) c->filters.push_back(topic_name(prefix, "req", P + s));  // idle responder
    } else {
      c->role = Role::subscriber;
      auto sub = std::make_unique<SubscriberState>();
      switch (opt.scenario) {
        case Scenario::fanin: c->filters.push_back(prefix + "/in/+"); break;
        case Scenario::latency: c->filters.push_back(prefix + "/lat/+"); break;
        case Scenario::fanout: c->filters.push_back(prefix + "/out"); break;
        case Scenario::pairs: c->filters.push_back(topic_name(prefix, "pair", s)); break;
        default: break;
      }
      const bool single = opt.scenario == Scenario::pairs;
      sub->first_publisher = single ? s : 0;
      sub->trackers.resize(single ? 1 : P);
      c->sub = std::move(sub);
    }
    all.push_back(std::move(c));
  }
  for (unsigned p = 0; p < P; ++p) {
    auto c = std::make_unique<Conn>();
    c->index = p;
    c->client_id = fmt::format("{}p{}", id_prefix, p);
    auto pub = std::make_unique<PublisherState>();
    pub->id = p;
    pub->target = opt.messages > 0 ? opt.messages : kNoTarget;
    pub->inflight_limit = opt.inflight;
    switch (opt.scenario) {
      case Scenario::fanin: pub->topic = topic_name(prefix, "in", p); break;
      case Scenario::latency: pub->topic = topic_name(prefix, "lat", p); break;
      case Scenario::fanout: pub->topic = prefix + "/out"; break;
      case Scenario::pairs: pub->topic = topic_name(prefix, "pair", p); break;
      case Scenario::reqrep: pub->topic = topic_name(prefix, "req", p); break;
      case Scenario::idle: break;
    }
    if (opt.scenario == Scenario::reqrep) {
      c->role = Role::requester;
      pub->response_topic = topic_name(prefix, "rep", p);
      c->filters.push_back(pub->response_topic);
      auto sub = std::make_unique<SubscriberState>();
      sub->first_publisher = p;
      sub->trackers.resize(1);
      c->sub = std::move(sub);
      // The template only serves the size checks; requests are encoded whole.
    } else {
      c->role = Role::publisher;
    }
    if (!build_template(opt, *pub, result.error)) {
      result.setup_failed = true;
      return result;
    }
    c->pub = std::move(pub);
    all.push_back(std::move(c));
  }
  for (unsigned i = 0; i < opt.connections && opt.scenario == Scenario::idle; ++i) {
    auto c = std::make_unique<Conn>();
    c->role = Role::idle;
    c->index = i;
    c->client_id = fmt::format("{}i{}", id_prefix, i);
    all.push_back(std::move(c));
  }

  switch (opt.scenario) {
    case Scenario::fanout:
    case Scenario::latency: shared.fan = S; break;
    default: shared.fan = 1; break;
  }
  // The window bounds what each subscriber has outstanding, so it is shared among the
  // publishers one subscriber hears; reqrep's is per requester.
  const bool wildcard = opt.scenario == Scenario::fanin || opt.scenario == Scenario::latency;
  if (opt.window > 0) {
    std::uint64_t window = opt.window;
    if (opt.scenario != Scenario::reqrep && opt.window_bytes > 0) {
      window = std::min<std::uint64_t>(window, std::max<std::uint64_t>(1, opt.window_bytes / opt.size));
    }
    shared.publisher_window = std::max<std::uint64_t>(1, wildcard ? window / std::max(1u, P) : window);
  }
  shared.total_connections = static_cast<unsigned>(all.size());
  shared.total_publishers = P;
  shared.delivered = std::make_unique<DeliveryCounter[]>(std::max(1u, P));
  raise_file_limit(shared.total_connections);

  const unsigned worker_count = std::max(1u, std::min<unsigned>(opt.threads, shared.total_connections));
  std::vector<std::unique_ptr<Worker>> workers;
  for (unsigned w = 0; w < worker_count; ++w) workers.push_back(std::make_unique<Worker>(shared, w));
  for (std::size_t i = 0; i < all.size(); ++i) workers[i % worker_count]->add(std::move(all[i]));
  for (auto& w : workers) shared.workers.push_back(w.get());

  if (opt.scenario == Scenario::idle && opt.broker_pid > 0) result.rss_before_bytes = process_rss_bytes(opt.broker_pid);

  std::vector<std::thread> threads;
  for (unsigned w = 1; w < worker_count; ++w) threads.emplace_back([&workers, w] { workers[w]->run(); });
  workers[0]->run();
  for (auto& t : threads) t.join();

  // Aggregate.
  Worker& coordinator = *workers[0];
  result.setup_failed = shared.setup_failed.load();
  {
    std::lock_guard lock(shared.error_mutex);
    result.error = shared.error;
  }
  const std::int64_t start = shared.start_ns;
  const std::int64_t end = std::max(shared.last_delivery_ns.load(), shared.last_send_ns.load());
  result.seconds = start > 0 && end > start ? static_cast<double>(end - start) * 1e-9 : 0;
  const std::int64_t last_send = shared.last_send_ns.load();
  result.publish_seconds = start > 0 && last_send > start ? static_cast<double>(last_send - start) * 1e-9 : 0;
  result.bench_cpu_seconds = coordinator.cpu_at_end - coordinator.cpu_at_start;
  if (coordinator.broker_cpu_at_start && coordinator.broker_cpu_at_end) {
    result.broker_cpu_seconds = *coordinator.broker_cpu_at_end - *coordinator.broker_cpu_at_start;
  }
  if (opt.broker_pid > 0) {
    result.broker_rss_bytes = process_rss_bytes(opt.broker_pid);
    result.broker_peak_rss_bytes = process_peak_rss_bytes(opt.broker_pid);
  }
  if (opt.scenario == Scenario::idle) {
    result.connections = shared.ready.load();
    result.connect_seconds = static_cast<double>(coordinator.connected_ns - coordinator.connect_start_ns) * 1e-9;
    result.rss_with_bytes = coordinator.rss_with;
    result.seconds = static_cast<double>(coordinator.end_ns - coordinator.connected_ns) * 1e-9;
  }

  std::vector<std::uint64_t> sent_by(P, 0);
  for (auto& w : workers) {
    for (const auto& c : w->connections()) {
      if (c->pub) {
        sent_by[c->pub->id] = c->pub->sent;
        result.sent += c->pub->sent;
        result.acked += c->pub->acked;
      }
    }
  }
  for (auto& w : workers) {
    for (const auto& c : w->connections()) {
      if (!c->sub) continue;
      const SubscriberState& s = *c->sub;
      result.received += s.received;
      result.foreign += s.foreign;
      result.payload_bytes += s.payload_bytes;
      result.latency.merge(s.latency);
      for (std::size_t k = 0; k < s.trackers.size(); ++k) {
        const SequenceTracker& t = s.trackers[k];
        const std::uint64_t sent = sent_by[s.first_publisher + k];
        result.expected += sent;
        result.unique += t.unique();
        result.duplicates += t.duplicates();
        result.out_of_order += t.out_of_order();
        if (sent > t.unique()) result.lost += sent - t.unique();
      }
    }
  }
  return result;
}

std::string_view scenario_name(Scenario scenario) noexcept {
  switch (scenario) {
    case Scenario::fanin: return "fanin";
    case Scenario::fanout: return "fanout";
    case Scenario::pairs: return "pairs";
    case Scenario::reqrep: return "reqrep";
    case Scenario::latency: return "latency";
    case Scenario::idle: return "idle";
  }
  return "?";
}

void apply_scenario_defaults(Options& o) {
  auto set = [](unsigned& field, unsigned value) {
    if (field == 0) field = value;
  };
  switch (o.scenario) {
    case Scenario::fanin: set(o.publishers, 16); set(o.subscribers, 1); break;
    case Scenario::fanout: set(o.publishers, 1); set(o.subscribers, 64); break;
    case Scenario::pairs:
      set(o.publishers, o.subscribers != 0 ? o.subscribers : 16);
      o.subscribers = o.publishers;
      break;
    case Scenario::reqrep:
      set(o.publishers, 16);
      set(o.subscribers, 1);
      set(o.window, 1);
      o.version = mqtt::Version::v5;  // response topic and correlation data are 5.0 properties
      break;
    case Scenario::latency:
      set(o.publishers, 1);
      set(o.subscribers, 1);
      if (o.rate <= 0) o.rate = 10000;
      break;
    case Scenario::idle: set(o.connections, 1000); break;
  }
  set(o.window, 1000);
}

}  // namespace tern::bench
