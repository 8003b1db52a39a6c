#include "admin/admin_server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <optional>
#include <type_traits>
#include <unordered_set>
#include <utility>

#include "admin/api.hpp"
#include "core/log.hpp"

namespace tern::admin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

namespace {

constexpr std::string_view kComponent = "admin";
constexpr std::size_t kDefaultLogLimit = 100;

struct Reply {
  http::status status = http::status::ok;
  std::string content_type = "application/json";
  std::string body;
  bool unauthorized = false;
};

Reply json_reply(http::status status, std::string body) { return Reply{status, "application/json", std::move(body), false}; }

Reply error_reply(http::status status, std::string_view message) { return json_reply(status, error_json(message)); }

std::optional<std::size_t> parse_count(const std::string& text) {
  std::size_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string format_endpoint(const tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  if (address.is_v6()) return fmt::format("[{}]:{}", address.to_string(), endpoint.port());
  return fmt::format("{}:{}", address.to_string(), endpoint.port());
}

std::string openssl_reason(const boost::system::error_code& ec) {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    const std::string text = reason != nullptr ? reason : fmt::format("error {:#x}", e);
    if (out.find(text) == std::string::npos) out += out.empty() ? text : "; " + text;
  }
  if (!out.empty()) return out;
  return ec ? ec.message() : std::string("unknown error");
}

std::optional<std::string> unreadable(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fmt::format("cannot read {}: {}", path, std::strerror(errno));
  return std::nullopt;
}

// TLS 1.2 and 1.3 only: the admin endpoint has no old clients to keep.
Expected<std::shared_ptr<ssl::context>, std::string> load_tls_context(const AdminConfig& config) {
  for (const std::string* path : {&config.tls_cert_file, &config.tls_key_file}) {
    if (auto problem = unreadable(*path)) return make_unexpected(*problem);
  }
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                       ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  ERR_clear_error();
  boost::system::error_code ec;
  context->use_certificate_chain_file(config.tls_cert_file, ec);
  if (ec) {
    return make_unexpected(fmt::format("cannot use the certificate {}: {}", config.tls_cert_file, openssl_reason(ec)));
  }
  context->use_private_key_file(config.tls_key_file, ssl::context::pem, ec);
  const bool mismatch =
      ec && ec.category() == asio::error::get_ssl_category() &&
      ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH;
  if (ec && !mismatch) {
    return make_unexpected(fmt::format("cannot use the private key {}: {}", config.tls_key_file, openssl_reason(ec)));
  }
  if (mismatch || SSL_CTX_check_private_key(context->native_handle()) != 1) {
    ERR_clear_error();
    return make_unexpected(fmt::format("the private key {} does not belong to the certificate {}",
                                       config.tls_key_file, config.tls_cert_file));
  }
  return context;
}

}  // namespace

Expected<std::pair<std::string, std::uint16_t>, std::string> split_host_port(std::string_view address) {
  std::string_view host;
  std::string_view port;
  if (address.starts_with('[')) {
    const auto close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() || address[close + 1] != ':') {
      return make_unexpected(fmt::format("\"{}\" is not [IPV6]:PORT", address));
    }
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    const auto colon = address.rfind(':');
    if (colon == std::string_view::npos) return make_unexpected(fmt::format("\"{}\" is not HOST:PORT", address));
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (host.empty() || port.empty() || ec != std::errc{} || end != port.data() + port.size() || value > 65535) {
    return make_unexpected(fmt::format("\"{}\" is not HOST:PORT (port 0 to 65535)", address));
  }
  return std::pair{std::string(host), static_cast<std::uint16_t>(value)};
}

class AdminConnection;

struct AdminServer::State : std::enable_shared_from_this<State> {
  State(asio::io_context& io_context, AdminConfig cfg, Sources src)
      : io(io_context), config(std::move(cfg)), sources(std::move(src)), acceptor(io_context), retry_timer(io_context) {}

  asio::io_context& io;
  AdminConfig config;
  Sources sources;
  AlertProvider alerts;
  tcp::acceptor acceptor;
  asio::steady_timer retry_timer;  // after an accept error such as EMFILE, not to spin
  std::unordered_set<AdminConnection*> connections;
  AdminCounters counters;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  bool running = false;
  std::shared_ptr<ssl::context> tls;  // replaced on reload; connections hold the one they began with

  void accept();
  Reply handle(const http::request<http::empty_body>& request);
  MetricsSnapshot snapshot();
  std::vector<ReadinessResult> readiness();
};

// One admin connection as the server's set sees it, whatever its stream.
class AdminConnection {
 public:
  AdminConnection() = default;
  virtual ~AdminConnection() = default;
  AdminConnection(const AdminConnection&) = delete;
  AdminConnection& operator=(const AdminConnection&) = delete;
  virtual void close() = 0;

 protected:
  // The server's state, for the connection types (this class is the server's friend).
  using State = AdminServer::State;
};

namespace {

// One admin HTTP connection over `Stream` (beast::tcp_stream, or TlsStream after its
// handshake): reads a request, answers, and reads the next one while the client keeps
// the connection alive. Owned by its own pending operations.
template <class Stream>
class HttpConnection final : public AdminConnection, public std::enable_shared_from_this<HttpConnection<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  HttpConnection(std::shared_ptr<State> state, tcp::socket socket)
    requires(!kTls)
      : state_(std::move(state)), stream_(std::move(socket)), buffer_(state_->config.max_header_bytes + 1024) {
    state_->connections.insert(this);
  }
  HttpConnection(std::shared_ptr<State> state, tcp::socket socket, std::shared_ptr<ssl::context> tls)
    requires kTls
      : state_(std::move(state)),
        tls_(std::move(tls)),
        stream_(std::move(socket), *tls_),
        buffer_(state_->config.max_header_bytes + 1024) {
    state_->connections.insert(this);
  }
  ~HttpConnection() override { state_->connections.erase(this); }

  void start() {
    if constexpr (kTls) {
      beast::get_lowest_layer(stream_).expires_after(state_->config.handshake_timeout);
      stream_.async_handshake(ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
        self->on_handshake(ec);
      });
    } else {
      read();
    }
  }

  void close() override {
    beast::error_code ignored;
    auto& lowest = beast::get_lowest_layer(stream_);
    lowest.socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest.close();
  }

 private:
  void on_handshake(beast::error_code ec) {
    if (ec) {
      // Plain HTTP on this port lands here too; the client sees the connection closed.
      if (ec != asio::error::operation_aborted) {
        ++state_->counters.tls_handshakes_failed;
        log::debug(kComponent, "admin TLS handshake with {} failed: {}", peer(), handshake_reason(ec));
      }
      close();
      return;
    }
    read();
  }

  std::string peer() {
    beast::error_code ec;
    const auto endpoint = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
    return ec ? std::string("a client") : format_endpoint(endpoint);
  }

  std::string handshake_reason(const beast::error_code& ec) {
    if (ec == beast::error::timeout) return "no handshake within the timeout";
    ERR_clear_error();
    return ec.message();
  }

  void read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(state_->config.max_header_bytes, UINT32_MAX)));
    parser_->body_limit(0);
    beast::get_lowest_layer(stream_).expires_after(state_->config.idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || ec == asio::error::eof || ec == ssl::error::stream_truncated) {
      close();
      return;
    }
    if (ec) {
      const http::status status = ec == http::error::header_limit || ec == beast::http::error::buffer_overflow
                                      ? http::status::request_header_fields_too_large
                                  : ec == http::error::body_limit || ec == http::error::unexpected_body
                                      ? http::status::payload_too_large
                                      : http::status::bad_request;
      respond(error_reply(status, ec.message()), 11, false);
      return;
    }
    const auto& request = parser_->get();
    const Reply reply = state_->handle(request);
    respond(reply, request.version(), request.keep_alive());
  }

  void respond(const Reply& reply, unsigned version, bool keep_alive) {
    response_ = {};
    response_.version(version);
    response_.result(reply.status);
    response_.set(http::field::server, "ternd");
    response_.set(http::field::content_type, reply.content_type);
    response_.set(http::field::cache_control, "no-store");
    if (reply.unauthorized) response_.set(http::field::www_authenticate, "Bearer realm=\"tern\"");
    if (reply.status == http::status::method_not_allowed) response_.set(http::field::allow, "GET");
    response_.body() = reply.body;
    response_.keep_alive(keep_alive);
    response_.prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(state_->config.idle_timeout);
    http::async_write(stream_, response_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) {
        self->close();
        return;
      }
      if (!self->response_.keep_alive()) {
        self->finish();
        return;
      }
      self->read();
    });
  }

  // The last response is out: TLS says close_notify first, so that clients which read to
  // the end of the stream see a clean end rather than a truncation.
  void finish() {
    if constexpr (kTls) {
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(2));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) { self->close(); });
    } else {
      close();
    }
  }

  std::shared_ptr<State> state_;
  std::shared_ptr<ssl::context> tls_;  // declared before stream_, which refers to it
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  http::response<http::string_body> response_;
};

}  // namespace

void AdminServer::State::accept() {
  acceptor.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    if (!self->running || ec == asio::error::operation_aborted) return;
    if (ec) {
      log::warn(kComponent, "accept failed: {}; retrying in 1 s", ec.message());
      self->retry_timer.expires_after(std::chrono::seconds(1));
      self->retry_timer.async_wait([self](beast::error_code timer_ec) {
        if (!timer_ec && self->running) self->accept();
      });
      return;
    }
    if (self->connections.size() >= self->config.max_connections) {
      ++self->counters.connections_refused;
      beast::error_code ignored;
      socket.close(ignored);
    } else if (self->tls) {
      std::make_shared<HttpConnection<TlsStream>>(self, std::move(socket), self->tls)->start();
    } else {
      std::make_shared<HttpConnection<beast::tcp_stream>>(self, std::move(socket))->start();
    }
    self->accept();
  });
}

MetricsSnapshot AdminServer::State::snapshot() {
  MetricsSnapshot snap = collect_metrics(sources);
  snap.version = config.version;
  snap.node = config.node_name;
  if (alerts) snap.alerts = alerts();
  snap.admin = counters;
  return snap;
}

std::vector<ReadinessResult> AdminServer::State::readiness() {
  std::vector<ReadinessResult> results;
  results.reserve(sources.readiness.size());
  for (const auto& check : sources.readiness) {
    results.push_back(ReadinessResult{check.name, check.problem ? check.problem() : std::nullopt});
  }
  return results;
}

Reply AdminServer::State::handle(const http::request<http::empty_body>& request) {
  ++counters.requests;
  const RequestTarget target = parse_target(request.target());
  if (request.method() != http::verb::get) {
    return error_reply(http::status::method_not_allowed, "only GET is supported");
  }
  if (target.path == "/healthz") return Reply{http::status::ok, "text/plain; charset=utf-8", "ok\n", false};

  if (!config.bearer_token.empty()) {
    const auto authorization = request[http::field::authorization];
    if (!bearer_token_matches(std::string_view(authorization.data(), authorization.size()), config.bearer_token)) {
      ++counters.unauthorized;
      Reply reply = error_reply(http::status::unauthorized, "a valid bearer token is required");
      reply.unauthorized = true;
      return reply;
    }
  }

  if (target.path == "/metrics") {
    return Reply{http::status::ok, "text/plain; version=0.0.4; charset=utf-8", render_metrics(snapshot()), false};
  }
  if (target.path == "/readyz") {
    const auto results = readiness();
    const bool ready = std::none_of(results.begin(), results.end(), [](const auto& r) { return r.problem.has_value(); });
    return json_reply(ready ? http::status::ok : http::status::service_unavailable, readiness_json(results));
  }
  if (target.path == "/api/v1/status") {
    const auto results = readiness();
    StatusInfo info;
    info.ready = std::none_of(results.begin(), results.end(), [](const auto& r) { return r.problem.has_value(); });
    info.uptime_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return json_reply(http::status::ok, status_json(snapshot(), info));
  }

  std::size_t limit = config.max_list_items;
  if (auto text = target.param("limit")) {
    auto parsed = parse_count(*text);
    if (!parsed) return error_reply(http::status::bad_request, "limit must be a non-negative integer");
    limit = std::min(*parsed, config.max_list_items);
  }
  if (target.path == "/api/v1/clients") {
    if (!sources.clients) return error_reply(http::status::not_found, "no client information available");
    auto clients = sources.clients();
    const std::size_t total = clients.size();
    if (clients.size() > limit) clients.resize(limit);
    return json_reply(http::status::ok, clients_json(clients, total));
  }
  if (target.path == "/api/v1/subscriptions") {
    if (!sources.subscriptions) return error_reply(http::status::not_found, "no subscription information available");
    auto subscriptions = sources.subscriptions();
    const std::size_t total = subscriptions.size();
    if (subscriptions.size() > limit) subscriptions.resize(limit);
    return json_reply(http::status::ok, subscriptions_json(subscriptions, total));
  }
  if (target.path == "/api/v1/logs") {
    log::Level level = log::Level::debug;
    if (auto text = target.param("level"); text && (!log::parse_level(*text, level) || level == log::Level::off)) {
      return error_reply(http::status::bad_request, "level must be debug, info, warning or error");
    }
    const std::size_t log_limit = target.param("limit") ? limit : kDefaultLogLimit;
    return json_reply(http::status::ok, logs_json(log::recent_lines(level, log_limit), log::ring_capacity()));
  }
  return error_reply(http::status::not_found, fmt::format("no such resource: {}", target.path));
}

AdminServer::AdminServer(asio::io_context& io, AdminConfig config, Sources sources)
    : state_(std::make_shared<State>(io, std::move(config), std::move(sources))) {}

AdminServer::~AdminServer() { stop(); }

void AdminServer::set_alert_provider(AlertProvider provider) { state_->alerts = std::move(provider); }

Expected<void, std::string> AdminServer::load_certificates() {
  if (!state_->config.tls()) return {};
  auto loaded = load_tls_context(state_->config);
  if (!loaded) return make_unexpected(fmt::format("admin endpoint TLS: {}", loaded.error()));
  state_->tls = std::move(*loaded);
  return {};
}

Expected<void, std::string> AdminServer::reload_certificates() {
  if (!state_->config.tls()) return {};
  auto loaded = load_tls_context(state_->config);
  if (!loaded) {
    ++state_->counters.certificate_reloads_failed;
    log::error(kComponent, "admin endpoint: certificate not reloaded, keeping the previous one: {}", loaded.error());
    return make_unexpected(loaded.error());
  }
  state_->tls = std::move(*loaded);
  log::info(kComponent, "admin endpoint: certificate reloaded from {}", state_->config.tls_cert_file);
  return {};
}

std::string_view AdminServer::scheme() const { return state_->config.tls() ? "https" : "http"; }

Expected<void, std::string> AdminServer::start() {
  if (state_->config.tls() && !state_->tls) {
    if (auto loaded = load_certificates(); !loaded) return loaded;
  }
  auto split = split_host_port(state_->config.listen);
  if (!split) return make_unexpected(fmt::format("admin listen address: {}", split.error()));
  const auto& [host, port] = *split;
  beast::error_code ec;
  tcp::endpoint endpoint;
  const auto address = asio::ip::make_address(host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, port);
  } else {
    tcp::resolver resolver(state_->io);
    const auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty()) {
      return make_unexpected(fmt::format("admin listen address {}: cannot resolve {}: {}", state_->config.listen,
                                         host, ec ? ec.message() : "no address"));
    }
    endpoint = results.begin()->endpoint();
  }
  auto& acceptor = state_->acceptor;
  const auto fail = [&](std::string_view what) {
    beast::error_code ignored;
    acceptor.close(ignored);
    return make_unexpected(fmt::format("admin endpoint {}: {}: {}", state_->config.listen, what, ec.message()));
  };
  if (acceptor.open(endpoint.protocol(), ec); ec) return fail("open");
  if (acceptor.set_option(asio::socket_base::reuse_address(true), ec); ec) return fail("setsockopt");
  if (acceptor.bind(endpoint, ec); ec) return fail("bind");
  if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) return fail("listen");
  state_->running = true;
  state_->accept();
  return {};
}

std::string AdminServer::bound_endpoint() const {
  beast::error_code ec;
  const auto endpoint = state_->acceptor.local_endpoint(ec);
  return ec ? std::string() : format_endpoint(endpoint);
}

void AdminServer::stop() {
  state_->running = false;
  beast::error_code ignored;
  state_->acceptor.close(ignored);
  state_->retry_timer.cancel();
  // close() only cancels; each connection is destroyed when its handler runs.
  const std::vector<AdminConnection*> open(state_->connections.begin(), state_->connections.end());
  for (auto* connection : open) connection->close();
}

}  // namespace tern::admin
