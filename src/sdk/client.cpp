// tern::Client on Boost.Asio and the project's codec.
//
// Design note. Every asynchronous completion captures the connection generation it was
// started for; a completion from an older generation (a socket already closed by a
// connection loss or a reconnect) is ignored. That keeps the state machine simple:
// `fail` closes, bumps the generation and schedules the reconnect, and nothing started
// for the dead connection can touch the new one.
//
// Session state that survives a reconnect: the in-flight map (resent with DUP, PUBREL
// for those already released, when the broker kept the session; put back in front of
// the queue, in order, when it did not), the remembered subscriptions (sent again when
// the session is gone) and the inbound QoS 2 ids.
//
// TLS: each connect attempt gets a new asio::ssl::stream (a TLS session cannot be reused
// after its socket closed). Completions capture the stream they were started on, so a
// stream replaced by a reconnect lives until its aborted operations have run.
#include "tern/client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <array>
#include <map>
#include <random>

#include "core/expected.hpp"
#include "core/topic.hpp"
#include "mqtt/codec.hpp"
#include "sdk/in_process_link.hpp"
#include "sdk/outbox.hpp"
#include "tern/in_process.hpp"

namespace tern {

namespace asio = boost::asio;
using asio::ip::tcp;
using sdk::PendingPublish;

namespace {

constexpr std::uint32_t kMaxIncomingPacket = 268435455;

mqtt::QoS to_wire(Qos q) { return static_cast<mqtt::QoS>(q); }

Message to_message(const mqtt::Publish& p) {
  Message m;
  m.topic = std::string(p.topic);
  m.payload = std::string(p.payload);
  m.qos = static_cast<Qos>(p.qos);
  m.retain = p.retain;
  mqtt::for_each_user_property(p.properties.user_properties, [&](std::string_view k, std::string_view v) {
    m.user_properties.emplace_back(std::string(k), std::string(v));
  });
  if (p.properties.content_type) m.content_type = std::string(*p.properties.content_type);
  if (p.properties.response_topic) m.response_topic = std::string(*p.properties.response_topic);
  if (p.properties.correlation_data) m.correlation_data = std::string(*p.properties.correlation_data);
  m.payload_format_indicator = p.properties.payload_format_indicator;
  m.message_expiry_interval = p.properties.message_expiry_interval;
  return m;
}

// The returned packet views `m` and `user_properties`.
mqtt::Publish to_packet(const Message& m, std::string& user_properties) {
  mqtt::Publish p;
  p.topic = m.topic;
  p.payload = m.payload;
  p.qos = to_wire(m.qos);
  p.retain = m.retain;
  user_properties.clear();
  for (const auto& [k, v] : m.user_properties) mqtt::append_user_property(user_properties, k, v);
  p.properties.user_properties = user_properties;
  if (m.content_type) p.properties.content_type = *m.content_type;
  if (m.response_topic) p.properties.response_topic = *m.response_topic;
  if (m.correlation_data) p.properties.correlation_data = *m.correlation_data;
  p.properties.payload_format_indicator = m.payload_format_indicator;
  p.properties.message_expiry_interval = m.message_expiry_interval;
  return p;
}

using TlsStream = asio::ssl::stream<tcp::socket>;

Expected<std::unique_ptr<asio::ssl::context>, std::string> make_tls_context(const TlsOptions& tls) {
  auto context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  if (tls.verify) {
    context->set_verify_mode(asio::ssl::verify_peer, ec);
    if (tls.ca_file.empty()) {
      context->set_default_verify_paths(ec);
      if (ec) return make_unexpected(fmt::format("TLS: cannot use the system's CAs: {}", ec.message()));
    } else {
      context->load_verify_file(tls.ca_file, ec);
      if (ec) return make_unexpected(fmt::format("TLS: cannot load the CA file '{}': {}", tls.ca_file, ec.message()));
    }
  } else {
    context->set_verify_mode(asio::ssl::verify_none, ec);
  }
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return make_unexpected(std::string("TLS: a client certificate needs its key and a key its certificate"));
  }
  if (!tls.cert_file.empty()) {
    context->use_certificate_chain_file(tls.cert_file, ec);
    if (ec) return make_unexpected(fmt::format("TLS: cannot load the certificate '{}': {}", tls.cert_file, ec.message()));
    context->use_private_key_file(tls.key_file, asio::ssl::context::pem, ec);
    if (ec) return make_unexpected(fmt::format("TLS: cannot load the key '{}': {}", tls.key_file, ec.message()));
    if (SSL_CTX_check_private_key(context->native_handle()) != 1) {
      return make_unexpected(fmt::format("TLS: the key '{}' does not belong to the certificate '{}'", tls.key_file,
                                         tls.cert_file));
    }
  }
  return context;
}

bool is_ip_address(const std::string& name) {
  boost::system::error_code ec;
  asio::ip::make_address(name, ec);
  return !ec;
}

// The handshake's error, with the certificate verification result when that failed.
std::string tls_failure(TlsStream& stream, const boost::system::error_code& ec) {
  const long verify = SSL_get_verify_result(stream.native_handle());
  if (verify != X509_V_OK) return fmt::format("{}: {}", ec.message(), X509_verify_cert_error_string(verify));
  return ec.message();
}

bool worth_reconnecting(mqtt::ReasonCode rc) {
  switch (rc) {
    case mqtt::ReasonCode::server_unavailable:
    case mqtt::ReasonCode::server_busy:
    case mqtt::ReasonCode::server_shutting_down:
    case mqtt::ReasonCode::connection_rate_exceeded:
    case mqtt::ReasonCode::quota_exceeded:
      return true;
    default:
      return false;
  }
}

}  // namespace

class Client::Impl : public std::enable_shared_from_this<Client::Impl> {
 public:
  Impl(asio::io_context& io, ClientOptions options)
      : io_(io),
        options_(std::move(options)),
        socket_(io),
        resolver_(io),
        connect_timer_(io),
        keepalive_timer_(io),
        reconnect_timer_(io),
        rng_(std::random_device{}()),
        queue_(options_.outbox_capacity, options_.outbox_full_policy),
        client_id_(options_.client_id) {
    if (options_.in_process) in_process_ = options_.in_process->handle();
  }

  enum class State { idle, connecting, connected, stopped };

  struct Inflight {
    PendingPublish publish;
    std::uint16_t publish_id = 0;
    std::uint64_t order = 0;
    bool released = false;  // QoS 2: PUBREC received, PUBREL sent
  };

  struct SubscribeRequest {
    std::vector<std::string> filters;
    SubscribeCallback done;
  };

  std::error_code start() {
    if (state_ != State::idle) return {};
    if (options_.tls.enabled && !options_.in_process && !tls_context_) {
      auto context = make_tls_context(options_.tls);
      if (!context) {
        last_error_ = std::move(context.error());
        return Errc::invalid_argument;
      }
      tls_context_ = std::move(*context);
    }
    if (!options_.outbox_path.empty()) {
      auto store = sdk::OutboxStore::open(options_.outbox_path);
      if (!store) {
        storage_error_ = store.error();
        return Errc::storage_failed;
      }
      if (auto attached = queue_.attach(std::move(*store)); !attached) {
        storage_error_ = attached.error();
        return Errc::storage_failed;
      }
    }
    state_ = State::connecting;
    connect();
    return {};
  }

  void stop(bool drain, std::function<void()> done) {
    if (done) stop_callbacks_.push_back(std::move(done));
    if (state_ == State::stopped || state_ == State::idle) {
      state_ = State::stopped;
      finish_stop();
      return;
    }
    stopping_ = true;
    drain_on_stop_ = drain;
    if (state_ == State::connected) {
      maybe_disconnect();
    } else {
      close_connection();
      state_ = State::stopped;
      finish_stop();
    }
  }

  void shutdown() {
    stopping_ = true;
    close_connection();
    state_ = State::stopped;
    message_callback_ = nullptr;
    async_message_callback_ = nullptr;
    connected_callback_ = nullptr;
    lost_callback_ = nullptr;
    stop_callbacks_.clear();
  }

  std::error_code publish(Message message, PublishCallback done) {
    if (!is_valid_topic_name(message.topic)) return Errc::invalid_argument;
    if (state_ == State::stopped || stopping_) return Errc::shutting_down;
    std::vector<PendingPublish> evicted;
    if (auto ec = queue_.push(std::move(message), std::move(done), evicted)) {
      if (ec == Errc::storage_failed) storage_error_ = queue_.last_storage_error();
      return ec;
    }
    for (auto& e : evicted) complete(e, Errc::dropped, 0);
    pump();
    return {};
  }

  void subscribe(std::vector<Subscription> subscriptions, SubscribeCallback done) {
    SubscribeRequest request;
    for (auto& s : subscriptions) {
      if (!is_valid_topic_filter(s.filter)) {
        if (done) asio::post(io_, [done, n = subscriptions.size()] { done(Errc::invalid_argument, std::vector<std::uint8_t>(n, 0x8F)); });
        return;
      }
    }
    for (auto& s : subscriptions) {
      request.filters.push_back(s.filter);
      auto same = std::find_if(subscriptions_.begin(), subscriptions_.end(), [&](const Subscription& x) { return x.filter == s.filter; });
      if (same != subscriptions_.end()) *same = s;
      else subscriptions_.push_back(s);
    }
    request.done = std::move(done);
    if (state_ == State::connected) {
      send_subscribe(subscriptions, {std::move(request)});
    } else {
      deferred_subscribes_.push_back(std::move(request));
    }
  }

  void unsubscribe(std::vector<std::string> filters, SubscribeCallback done) {
    for (const auto& f : filters) {
      std::erase_if(subscriptions_, [&](const Subscription& s) { return s.filter == f; });
    }
    if (state_ != State::connected) {
      if (done) asio::post(io_, [done, n = filters.size()] { done({}, std::vector<std::uint8_t>(n, 0)); });
      return;
    }
    mqtt::Unsubscribe u;
    u.packet_id = allocate_packet_id();
    for (const auto& f : filters) u.filters.push_back(f);
    unsubscribes_[u.packet_id] = std::move(done);
    send(u);
  }

  // ---- connection ----

  void connect() {
    const auto gen = ++generation_;
    auto self = shared_from_this();
    connect_timer_.expires_after(options_.connect_timeout);
    connect_timer_.async_wait([self, gen](boost::system::error_code ec) {
      if (ec || gen != self->generation_ || self->state_ != State::connecting) return;
      self->fail(Errc::timeout, 0);
    });
    if (options_.in_process) {
      // Posted so that connecting completes later, as over TCP.
      asio::post(io_, [self, gen] {
        if (gen == self->generation_) self->connect_in_process(gen);
      });
      return;
    }
    if (tls_context_) tls_ = std::make_shared<TlsStream>(io_, *tls_context_);
    resolver_.async_resolve(
        options_.host, std::to_string(options_.port),
        [self, gen](boost::system::error_code ec, tcp::resolver::results_type results) {
          if (gen != self->generation_) return;
          if (ec) {
            return self->fail(Errc::connection_failed, 0, true,
                              fmt::format("cannot resolve '{}': {}", self->options_.host, ec.message()));
          }
          asio::async_connect(self->tcp_socket(), results,
                              [self, gen, stream = self->tls_](boost::system::error_code cec, const tcp::endpoint&) {
                                if (gen != self->generation_) return;
                                if (cec) {
                                  return self->fail(Errc::connection_failed, 0, true,
                                                    fmt::format("cannot connect to {}: {}", self->endpoint_name(),
                                                                cec.message()));
                                }
                                self->on_tcp_connected(gen);
                              });
        });
  }

  tcp::socket& tcp_socket() { return tls_ ? tls_->next_layer() : socket_; }
  std::string endpoint_name() const { return fmt::format("{}:{}", options_.host, options_.port); }

  void connect_in_process(std::uint64_t gen) {
    std::weak_ptr<Impl> weak = weak_from_this();
    sdk::InProcessCallbacks callbacks;
    callbacks.data = [weak, gen](std::string_view bytes) {
      auto self = weak.lock();
      if (!self || gen != self->generation_) return;
      self->read_buffer_.append(bytes);
      self->process_input(gen);
    };
    callbacks.closed = [weak, gen] {
      auto self = weak.lock();
      if (!self || gen != self->generation_) return;
      self->link_id_ = 0;  // the broker forgot it already
      self->fail(Errc::connection_lost, 0);
    };
    link_id_ = sdk::in_process_open(in_process_, std::move(callbacks));
    if (link_id_ == 0) return fail(Errc::connection_failed, 0, true, "the in-process broker is gone");
    send_connect();
  }

  void on_tcp_connected(std::uint64_t gen) {
    boost::system::error_code ignored;
    tcp_socket().set_option(tcp::no_delay(true), ignored);
    if (!tls_) return send_connect();
    const std::string& name = options_.tls.server_name.empty() ? options_.host : options_.tls.server_name;
    SSL* ssl = tls_->native_handle();
    // RFC 6066: SNI carries host names only. The name check is OpenSSL's own, so a
    // mismatch is reported as such ("hostname mismatch") rather than as a bare failure.
    if (!is_ip_address(name)) {
      // SSL_set_tlsext_host_name, without the macro's C cast.
      SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(name.c_str()));
    }
    if (options_.tls.verify) {
      if (is_ip_address(name)) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
      else SSL_set1_host(ssl, name.c_str());
    }
    auto self = shared_from_this();
    tls_->async_handshake(asio::ssl::stream_base::client, [self, gen, stream = tls_](boost::system::error_code ec) {
      if (gen != self->generation_) return;
      if (ec) {
        return self->fail(Errc::connection_failed, 0, true,
                          fmt::format("TLS handshake with {} failed: {}", self->endpoint_name(), tls_failure(*stream, ec)));
      }
      self->send_connect();
    });
  }

  void send_connect() {
    mqtt::Connect c;
    c.version = version();
    c.clean_start = options_.clean_start;
    c.keep_alive = options_.keep_alive;
    c.client_id = options_.client_id;
    if (options_.username) c.username = *options_.username;
    if (options_.password) c.password = *options_.password;
    if (options_.will) {
      mqtt::Will w;
      w.topic = options_.will->topic;
      w.payload = options_.will->payload;
      w.qos = to_wire(options_.will->qos);
      w.retain = options_.will->retain;
      c.will = w;
    }
    if (options_.session_expiry_interval != 0) c.properties.session_expiry_interval = options_.session_expiry_interval;
    if (options_.receive_maximum != 65535 && options_.receive_maximum != 0) {
      c.properties.receive_maximum = options_.receive_maximum;
    }
    send(c);
    if (!options_.in_process) read();
  }

  void on_connack(const mqtt::Connack& ack) {
    connect_timer_.cancel();
    if (mqtt::is_error(ack.reason_code)) {
      const bool retry = worth_reconnecting(ack.reason_code);
      fail(Errc::connection_refused, static_cast<std::uint8_t>(ack.reason_code), retry);
      return;
    }
    state_ = State::connected;
    reconnect_attempt_ = 0;
    ++stats_.connects;
    awaiting_pingresp_ = false;
    if (ack.properties.assigned_client_identifier) client_id_ = std::string(*ack.properties.assigned_client_identifier);
    send_window_ = std::min<std::size_t>(ack.properties.receive_maximum.value_or(65535),
                                         std::max<std::uint16_t>(options_.max_inflight, 1));
    keep_alive_ = ack.properties.server_keep_alive.value_or(options_.keep_alive);

    std::vector<Inflight> previous;
    for (auto& [id, f] : inflight_) previous.push_back(std::move(f));
    inflight_.clear();
    std::sort(previous.begin(), previous.end(), [](const Inflight& a, const Inflight& b) { return a.order < b.order; });

    std::vector<SubscribeRequest> waiting = std::move(deferred_subscribes_);
    deferred_subscribes_.clear();
    if (ack.session_present) {
      // The broker still has our packet ids: resend the same flows.
      for (auto& f : previous) {
        const std::uint16_t id = f.publish_id;
        if (f.released) {
          send(mqtt::PubAck{mqtt::PacketType::pubrel, id, mqtt::ReasonCode::success, {}});
        } else {
          send_publish(f.publish.message, id, true);
        }
        inflight_[id] = std::move(f);
      }
      if (!waiting.empty()) {
        std::vector<Subscription> subs;
        for (const auto& r : waiting) {
          for (const auto& filter : r.filters) {
            auto it = std::find_if(subscriptions_.begin(), subscriptions_.end(), [&](const Subscription& s) { return s.filter == filter; });
            if (it != subscriptions_.end()) subs.push_back(*it);
          }
        }
        send_subscribe(subs, std::move(waiting));
      }
    } else {
      inbound_qos2_.clear();
      std::vector<PendingPublish> back;
      for (auto& f : previous) back.push_back(std::move(f.publish));
      queue_.put_back(std::move(back));
      // Subscriptions first: on one connection the broker handles them before the
      // publishes that follow, so a client receives its own drained outbox.
      if (!subscriptions_.empty()) send_subscribe(subscriptions_, std::move(waiting));
      else for (auto& r : waiting) if (r.done) r.done({}, {});
    }
    schedule_keepalive();
    if (connected_callback_) connected_callback_(ack.session_present);
    pump();
  }

  void fail(std::error_code ec, std::uint8_t reason, bool may_reconnect = true, std::string why = {}) {
    if (state_ == State::stopped) return;
    last_error_ = why.empty() ? describe(ec, reason) : std::move(why);
    const bool was_connected = state_ == State::connected;
    close_connection();
    if (was_connected) ++stats_.connection_losses;
    // Subscribe requests in flight on the dead connection are repeated on the next one.
    for (auto& [id, requests] : subscribes_) {
      for (auto& r : requests.requests) deferred_subscribes_.push_back(std::move(r));
    }
    subscribes_.clear();
    for (auto& [id, cb] : unsubscribes_) {
      if (cb) cb(Errc::connection_lost, {});
    }
    unsubscribes_.clear();
    if (stopping_) {
      state_ = State::stopped;
      finish_stop();
      return;
    }
    const bool reconnect = options_.auto_reconnect && may_reconnect;
    state_ = reconnect ? State::connecting : State::stopped;
    auto lost = lost_callback_;
    if (lost) lost(ec, reason);
    if (reconnect && state_ == State::connecting) schedule_reconnect();
  }

  void socket_failed(const boost::system::error_code& ec) {
    fail(Errc::connection_lost, 0, true, fmt::format("connection to {} lost: {}", endpoint_name(), ec.message()));
  }

  std::string describe(std::error_code ec, std::uint8_t reason) const {
    if (ec == Errc::timeout) {
      return fmt::format("no connection to {} within {} ms", endpoint_name(), options_.connect_timeout.count());
    }
    if (reason != 0) return fmt::format("{} ({}, reason code 0x{:02x})", ec.message(), endpoint_name(), reason);
    return fmt::format("{} ({})", ec.message(), endpoint_name());
  }

  void schedule_reconnect() {
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    const auto delay = backoff_delay(options_.reconnect, reconnect_attempt_++, unit(rng_));
    const auto gen = generation_;
    auto self = shared_from_this();
    reconnect_timer_.expires_after(delay);
    reconnect_timer_.async_wait([self, gen](boost::system::error_code ec) {
      if (ec || gen != self->generation_ || self->state_ != State::connecting) return;
      self->connect();
    });
  }

  void close_connection() {
    ++generation_;
    boost::system::error_code ignored;
    tcp_socket().shutdown(tcp::socket::shutdown_both, ignored);
    tcp_socket().close(ignored);
    if (link_id_ != 0) {
      sdk::in_process_close(in_process_, link_id_);
      link_id_ = 0;
    }
    resolver_.cancel();
    connect_timer_.cancel();
    keepalive_timer_.cancel();
    reconnect_timer_.cancel();
    read_buffer_.clear();
    outgoing_.clear();
    writing_.clear();
    auto lost_qos0 = std::move(written_callbacks_);
    written_callbacks_.clear();
    auto lost_pending = std::move(pending_written_callbacks_);
    pending_written_callbacks_.clear();
    write_in_progress_ = false;
    close_after_write_ = false;
    for (auto& cb : lost_qos0) if (cb) cb(Errc::connection_lost, 0);
    for (auto& cb : lost_pending) if (cb) cb(Errc::connection_lost, 0);
  }

  void finish_stop() {
    auto callbacks = std::move(stop_callbacks_);
    stop_callbacks_.clear();
    for (auto& cb : callbacks) asio::post(io_, std::move(cb));
  }

  void maybe_disconnect() {
    if (!stopping_ || state_ != State::connected || close_after_write_) return;
    if (drain_on_stop_ && (!inflight_.empty() || !queue_.empty())) return;
    send(mqtt::Disconnect{});
    close_after_write_ = true;
    if (!write_in_progress_) on_disconnect_written();
  }

  void on_disconnect_written() {
    close_connection();
    state_ = State::stopped;
    finish_stop();
  }

  void schedule_keepalive() {
    if (keep_alive_ == 0) return;
    const auto gen = generation_;
    auto self = shared_from_this();
    keepalive_timer_.expires_after(std::chrono::seconds(keep_alive_));
    keepalive_timer_.async_wait([self, gen](boost::system::error_code ec) {
      if (ec || gen != self->generation_ || self->state_ != State::connected) return;
      if (self->awaiting_pingresp_) {
        return self->fail(Errc::connection_lost, static_cast<std::uint8_t>(mqtt::ReasonCode::keep_alive_timeout));
      }
      self->awaiting_pingresp_ = true;
      self->send(mqtt::Pingreq{});
      self->schedule_keepalive();
    });
  }

  // ---- reading ----

  void read() {
    const auto gen = generation_;
    auto self = shared_from_this();
    auto on_read = [self, gen, stream = tls_](boost::system::error_code ec, std::size_t n) {
      if (gen != self->generation_) return;
      if (ec) return self->socket_failed(ec);
      self->read_buffer_.append(self->scratch_.data(), n);
      if (!self->process_input(gen)) return;
      if (gen == self->generation_) self->read();
    };
    if (tls_) tls_->async_read_some(asio::buffer(scratch_), std::move(on_read));
    else socket_.async_read_some(asio::buffer(scratch_), std::move(on_read));
  }

  // Returns false when the connection was closed while processing.
  bool process_input(std::uint64_t gen) {
    std::size_t consumed = 0;
    std::string buffer = std::move(read_buffer_);
    read_buffer_.clear();
    bool alive = true;
    while (alive) {
      auto frame = mqtt::parse_frame(std::string_view(buffer).substr(consumed), kMaxIncomingPacket);
      if (!frame) {
        fail(Errc::protocol_error, static_cast<std::uint8_t>(frame.error().code));
        return false;
      }
      if (frame->size == 0) break;
      auto packet = mqtt::decode(*frame, version());
      consumed += frame->size;
      if (!packet) {
        fail(Errc::protocol_error, static_cast<std::uint8_t>(packet.error().code));
        return false;
      }
      handle(*packet);
      alive = gen == generation_;
    }
    if (!alive) return false;
    read_buffer_ = buffer.substr(consumed);
    return true;
  }

  void handle(const mqtt::Packet& packet) {
    if (state_ == State::connecting) {
      if (const auto* ack = std::get_if<mqtt::Connack>(&packet)) return on_connack(*ack);
      return fail(Errc::protocol_error, static_cast<std::uint8_t>(mqtt::ReasonCode::protocol_error));
    }
    std::visit([this](const auto& p) { on_packet(p); }, packet);
  }

  void on_packet(const mqtt::Publish& p) {
    ++stats_.received;
    Message m = to_message(p);
    if (p.qos == mqtt::QoS::exactly_once) {
      auto [it, fresh] = inbound_qos2_.try_emplace(p.packet_id, false);
      if (!fresh) {
        if (it->second) send(mqtt::PubAck{mqtt::PacketType::pubrec, p.packet_id, mqtt::ReasonCode::success, {}});
        return;
      }
    }
    deliver(std::move(m), p.packet_id);
  }

  void deliver(Message m, std::uint16_t packet_id) {
    const Qos qos = m.qos;
    std::weak_ptr<Impl> weak = weak_from_this();
    const auto gen = generation_;
    auto ack = [weak, gen, packet_id, qos] {
      auto self = weak.lock();
      if (!self || gen != self->generation_ || self->state_ != State::connected) return;
      if (qos == Qos::at_least_once) {
        self->send(mqtt::PubAck{mqtt::PacketType::puback, packet_id, mqtt::ReasonCode::success, {}});
      } else if (qos == Qos::exactly_once) {
        auto it = self->inbound_qos2_.find(packet_id);
        if (it == self->inbound_qos2_.end() || it->second) return;
        it->second = true;
        self->send(mqtt::PubAck{mqtt::PacketType::pubrec, packet_id, mqtt::ReasonCode::success, {}});
      }
    };
    if (async_message_callback_) {
      async_message_callback_(std::move(m), std::move(ack));
    } else {
      if (message_callback_) message_callback_(m);
      ack();
    }
  }

  void on_packet(const mqtt::PubAck& a) {
    switch (a.type) {
      case mqtt::PacketType::puback:
      case mqtt::PacketType::pubcomp: {
        auto it = inflight_.find(a.packet_id);
        if (it == inflight_.end()) return;
        Inflight f = std::move(it->second);
        inflight_.erase(it);
        const bool err = mqtt::is_error(a.reason_code);
        if (!err) ++stats_.published;
        complete(f.publish, err ? std::error_code(Errc::rejected) : std::error_code(), static_cast<std::uint8_t>(a.reason_code));
        pump();
        return;
      }
      case mqtt::PacketType::pubrec: {
        auto it = inflight_.find(a.packet_id);
        if (it == inflight_.end()) {
          send(mqtt::PubAck{mqtt::PacketType::pubrel, a.packet_id, mqtt::ReasonCode::packet_identifier_not_found, {}});
          return;
        }
        if (mqtt::is_error(a.reason_code)) {
          Inflight f = std::move(it->second);
          inflight_.erase(it);
          complete(f.publish, Errc::rejected, static_cast<std::uint8_t>(a.reason_code));
          pump();
          return;
        }
        it->second.released = true;
        send(mqtt::PubAck{mqtt::PacketType::pubrel, a.packet_id, mqtt::ReasonCode::success, {}});
        return;
      }
      case mqtt::PacketType::pubrel:
        inbound_qos2_.erase(a.packet_id);
        send(mqtt::PubAck{mqtt::PacketType::pubcomp, a.packet_id, mqtt::ReasonCode::success, {}});
        return;
      default:
        return;
    }
  }

  void on_packet(const mqtt::Suback& s) {
    auto it = subscribes_.find(s.packet_id);
    if (it == subscribes_.end()) return;
    auto requests = std::move(it->second.requests);
    auto filters = std::move(it->second.filters);
    subscribes_.erase(it);
    std::map<std::string, std::uint8_t> by_filter;
    for (std::size_t i = 0; i < filters.size(); ++i) {
      by_filter[filters[i]] = i < s.reason_codes.size() ? static_cast<std::uint8_t>(s.reason_codes[i]) : 0x80;
    }
    for (auto& r : requests) {
      if (!r.done) continue;
      std::vector<std::uint8_t> codes;
      bool any_error = false;
      for (const auto& f : r.filters) {
        const std::uint8_t c = by_filter.count(f) ? by_filter[f] : 0x80;
        any_error = any_error || c >= 0x80;
        codes.push_back(c);
      }
      r.done(any_error ? std::error_code(Errc::rejected) : std::error_code(), std::move(codes));
    }
  }

  void on_packet(const mqtt::Unsuback& u) {
    auto it = unsubscribes_.find(u.packet_id);
    if (it == unsubscribes_.end()) return;
    auto cb = std::move(it->second);
    unsubscribes_.erase(it);
    std::vector<std::uint8_t> codes;
    for (auto c : u.reason_codes) codes.push_back(static_cast<std::uint8_t>(c));
    if (cb) cb({}, std::move(codes));
  }

  void on_packet(const mqtt::Pingresp&) { awaiting_pingresp_ = false; }

  void on_packet(const mqtt::Disconnect& d) {
    fail(Errc::connection_lost, static_cast<std::uint8_t>(d.reason_code));
  }

  template <class Other>
  void on_packet(const Other&) {
    fail(Errc::protocol_error, static_cast<std::uint8_t>(mqtt::ReasonCode::protocol_error));
  }

  // ---- sending ----

  void pump() {
    while (state_ == State::connected && !queue_.empty()) {
      if (queue_.front().message.qos == Qos::at_most_once) {
        PendingPublish p = queue_.take_front();
        // Registered before the bytes are queued: send() may start the write at once.
        if (p.done) pending_written_callbacks_.push_back(std::move(p.done));
        send_publish(p.message, 0, false);
        queue_.acknowledged(p);
        ++stats_.published;
        continue;
      }
      if (inflight_.size() >= send_window_) break;
      PendingPublish p = queue_.take_front();
      const std::uint16_t id = allocate_packet_id();
      send_publish(p.message, id, false);
      Inflight f;
      f.publish = std::move(p);
      f.publish_id = id;
      f.order = next_order_++;
      inflight_.emplace(id, std::move(f));
    }
    maybe_disconnect();
  }

  void complete(PendingPublish& p, std::error_code ec, std::uint8_t reason) {
    queue_.acknowledged(p);
    if (p.done) p.done(ec, reason);
  }

  void send_publish(const Message& m, std::uint16_t id, bool dup) {
    mqtt::Publish p = to_packet(m, user_property_scratch_);
    p.packet_id = id;
    p.dup = dup;
    send(p);
  }

  void send_subscribe(const std::vector<Subscription>& subs, std::vector<SubscribeRequest> requests) {
    if (subs.empty()) {
      for (auto& r : requests) if (r.done) r.done({}, {});
      return;
    }
    mqtt::Subscribe s;
    s.packet_id = allocate_packet_id();
    PendingSubscribe pending;
    for (const auto& sub : subs) {
      mqtt::TopicSubscription t;
      t.filter = sub.filter;
      t.options.qos = to_wire(sub.qos);
      t.options.no_local = sub.no_local;
      t.options.retain_as_published = sub.retain_as_published;
      t.options.retain_handling = static_cast<mqtt::RetainHandling>(std::min<std::uint8_t>(sub.retain_handling, 2));
      s.topics.push_back(t);
      pending.filters.push_back(sub.filter);
    }
    send(s);
    pending.requests = std::move(requests);
    subscribes_[s.packet_id] = std::move(pending);
  }

  template <class P>
  void send(const P& packet) {
    mqtt::encode(mqtt::Packet(packet), version(), outgoing_);
    if (!write_in_progress_) start_write();
  }

  void start_write() {
    if (outgoing_.empty()) {
      write_in_progress_ = false;
      if (close_after_write_) on_disconnect_written();
      return;
    }
    write_in_progress_ = true;
    writing_ = std::move(outgoing_);
    outgoing_.clear();
    written_callbacks_ = std::move(pending_written_callbacks_);
    pending_written_callbacks_.clear();
    const auto gen = generation_;
    auto self = shared_from_this();
    auto written = [self, gen, stream = tls_](boost::system::error_code ec, std::size_t) {
      if (gen != self->generation_) return;
      if (ec) return self->socket_failed(ec);
      auto done = std::move(self->written_callbacks_);
      self->written_callbacks_.clear();
      for (auto& cb : done) cb({}, 0);
      if (gen != self->generation_) return;
      self->start_write();
    };
    if (options_.in_process) {
      sdk::in_process_send(in_process_, link_id_, std::move(writing_));
      writing_.clear();
      asio::post(io_, [written = std::move(written)] { written({}, 0); });
      return;
    }
    if (tls_) asio::async_write(*tls_, asio::buffer(writing_), std::move(written));
    else asio::async_write(socket_, asio::buffer(writing_), std::move(written));
  }

  std::uint16_t allocate_packet_id() {
    for (;;) {
      if (++next_packet_id_ == 0) next_packet_id_ = 1;
      const auto id = next_packet_id_;
      if (!inflight_.count(id) && !subscribes_.count(id) && !unsubscribes_.count(id)) return id;
    }
  }

  mqtt::Version version() const { return options_.protocol_version == 4 ? mqtt::Version::v311 : mqtt::Version::v5; }

  struct PendingSubscribe {
    std::vector<std::string> filters;
    std::vector<SubscribeRequest> requests;
  };

  asio::io_context& io_;
  ClientOptions options_;
  tcp::socket socket_;  // without TLS
  std::unique_ptr<asio::ssl::context> tls_context_;
  std::shared_ptr<TlsStream> tls_;  // with TLS: this connection's stream and socket
  std::string last_error_;
  tcp::resolver resolver_;
  asio::steady_timer connect_timer_;
  asio::steady_timer keepalive_timer_;
  asio::steady_timer reconnect_timer_;
  std::mt19937_64 rng_;
  sdk::PendingQueue queue_;
  std::string client_id_;
  std::string storage_error_;

  State state_ = State::idle;
  std::uint64_t generation_ = 0;
  bool stopping_ = false;
  bool drain_on_stop_ = false;
  bool close_after_write_ = false;
  bool awaiting_pingresp_ = false;
  unsigned reconnect_attempt_ = 0;
  std::size_t send_window_ = 1;
  std::uint16_t keep_alive_ = 0;
  std::uint16_t next_packet_id_ = 0;
  std::uint64_t next_order_ = 0;

  sdk::InProcessHandle in_process_;
  sdk::InProcessConnectionId link_id_ = 0;

  std::array<char, 16384> scratch_{};
  std::string read_buffer_;
  std::string outgoing_;
  std::string writing_;
  bool write_in_progress_ = false;
  std::string user_property_scratch_;
  std::vector<PublishCallback> pending_written_callbacks_;  // QoS 0 in `outgoing_`
  std::vector<PublishCallback> written_callbacks_;          // QoS 0 in `writing_`

  std::map<std::uint16_t, Inflight> inflight_;
  std::map<std::uint16_t, bool> inbound_qos2_;  // id -> PUBREC sent
  std::vector<Subscription> subscriptions_;
  std::vector<SubscribeRequest> deferred_subscribes_;
  std::map<std::uint16_t, PendingSubscribe> subscribes_;
  std::map<std::uint16_t, SubscribeCallback> unsubscribes_;

  MessageCallback message_callback_;
  AsyncMessageCallback async_message_callback_;
  std::function<void(bool)> connected_callback_;
  std::function<void(std::error_code, std::uint8_t)> lost_callback_;
  std::vector<std::function<void()>> stop_callbacks_;
  ClientStats stats_;
};

Client::Client(asio::io_context& io, ClientOptions options) : impl_(std::make_shared<Impl>(io, std::move(options))) {}
Client::~Client() { impl_->shutdown(); }
std::error_code Client::start() { return impl_->start(); }
void Client::stop(bool drain, std::function<void()> done) { impl_->stop(drain, std::move(done)); }
std::error_code Client::publish(Message message, PublishCallback done) { return impl_->publish(std::move(message), std::move(done)); }
void Client::subscribe(std::vector<Subscription> s, SubscribeCallback done) { impl_->subscribe(std::move(s), std::move(done)); }
void Client::unsubscribe(std::vector<std::string> f, SubscribeCallback done) { impl_->unsubscribe(std::move(f), std::move(done)); }
void Client::on_message(MessageCallback cb) { impl_->message_callback_ = std::move(cb); }
void Client::on_message_async(AsyncMessageCallback cb) { impl_->async_message_callback_ = std::move(cb); }
void Client::on_connected(std::function<void(bool)> cb) { impl_->connected_callback_ = std::move(cb); }
void Client::on_connection_lost(std::function<void(std::error_code, std::uint8_t)> cb) { impl_->lost_callback_ = std::move(cb); }
bool Client::connected() const noexcept { return impl_->state_ == Impl::State::connected; }
std::size_t Client::pending() const noexcept { return impl_->queue_.unacknowledged(); }
const std::string& Client::client_id() const noexcept { return impl_->client_id_; }
const std::string& Client::last_error() const noexcept { return impl_->last_error_; }
ClientStats Client::stats() const noexcept {
  ClientStats s = impl_->stats_;
  s.outbox_rejected = impl_->queue_.rejected();
  s.outbox_dropped = impl_->queue_.dropped();
  return s;
}

}  // namespace tern
