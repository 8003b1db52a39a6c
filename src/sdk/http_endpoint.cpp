#include "sdk/http_endpoint.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <charconv>
#include <list>

namespace tern::sdk {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {

constexpr std::uint32_t kHeaderLimit = 8 * 1024;
constexpr auto kIdleTimeout = std::chrono::seconds(10);

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<const HttpRoute> route)
      : stream_(std::move(socket)), route_(std::move(route)) {}

  void run() { read(); }
  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }
  bool open() const { return stream_.socket().is_open(); }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(kHeaderLimit);
    stream_.expires_after(kIdleTimeout);
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->close();
      self->respond(self->parser_->release());
    });
  }

  void respond(const http::request<http::empty_body>& request) {
    response_ = {};
    response_.version(request.version());
    response_.keep_alive(request.keep_alive());
    response_.set(http::field::server, "tern-sdk");
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      response_.result(http::status::method_not_allowed);
      response_.set(http::field::allow, "GET, HEAD");
      response_.set(http::field::content_type, "text/plain; charset=utf-8");
      response_.body() = "only GET and HEAD\n";
    } else {
      std::string_view target(request.target().data(), request.target().size());
      target = target.substr(0, target.find('?'));
      HttpResponse r = (*route_)(target);
      response_.result(r.status);
      response_.set(http::field::content_type, r.content_type);
      response_.body() = request.method() == http::verb::head ? std::string() : std::move(r.body);
    }
    response_.prepare_payload();
    if (request.method() == http::verb::head) response_.content_length(0);
    stream_.expires_after(kIdleTimeout);
    http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec || !self->response_.keep_alive()) return self->close();
      self->read();
    });
  }

  beast::tcp_stream stream_;
  std::shared_ptr<const HttpRoute> route_;
  beast::flat_buffer buffer_{kHeaderLimit};
  std::optional<http::request_parser<http::empty_body>> parser_;
  http::response<http::string_body> response_;
};

}  // namespace

struct HttpEndpoint::Impl : std::enable_shared_from_this<HttpEndpoint::Impl> {
  Impl(asio::io_context& io, HttpRoute r) : acceptor(io), route(std::make_shared<const HttpRoute>(std::move(r))) {}

  void accept() {
    acceptor.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;
      if (!ec) {
        self->sessions.remove_if([](const std::weak_ptr<Session>& w) {
          auto s = w.lock();
          return !s || !s->open();
        });
        if (self->sessions.size() >= kMaxConnections) {
          beast::error_code ignored;
          socket.close(ignored);
        } else {
          auto session = std::make_shared<Session>(std::move(socket), self->route);
          self->sessions.push_back(session);
          session->run();
        }
      }
      self->accept();
    });
  }

  tcp::acceptor acceptor;
  std::shared_ptr<const HttpRoute> route;
  std::list<std::weak_ptr<Session>> sessions;
  std::uint16_t port = 0;
};

Expected<std::shared_ptr<HttpEndpoint>, std::string> HttpEndpoint::start(asio::io_context& io, std::string_view listen,
                                                                         HttpRoute route) {
  const auto colon = listen.rfind(':');
  if (colon == std::string_view::npos) return make_unexpected(std::string("expected host:port, got ") + std::string(listen));
  std::string_view host = listen.substr(0, colon);
  const std::string_view port_text = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  const auto [end, perr] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (perr != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return make_unexpected("invalid port in " + std::string(listen));
  }
  beast::error_code ec;
  const auto address = asio::ip::make_address(std::string(host), ec);
  if (ec) return make_unexpected("invalid address in " + std::string(listen) + ": " + ec.message());

  auto impl = std::make_shared<Impl>(io, std::move(route));
  const tcp::endpoint endpoint(address, static_cast<std::uint16_t>(port));
  if (impl->acceptor.open(endpoint.protocol(), ec); ec) return make_unexpected("open: " + ec.message());
  if (impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec); ec) return make_unexpected("reuse: " + ec.message());
  if (impl->acceptor.bind(endpoint, ec); ec) return make_unexpected("bind " + std::string(listen) + ": " + ec.message());
  if (impl->acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) {
    return make_unexpected("listen: " + ec.message());
  }
  impl->port = impl->acceptor.local_endpoint(ec).port();
  impl->accept();
  return std::make_shared<HttpEndpoint>(std::move(impl));
}

HttpEndpoint::HttpEndpoint(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpEndpoint::~HttpEndpoint() { close(); }
std::uint16_t HttpEndpoint::port() const noexcept { return impl_->port; }

void HttpEndpoint::close() {
  beast::error_code ignored;
  impl_->acceptor.close(ignored);
  for (auto& w : impl_->sessions) {
    if (auto s = w.lock()) s->close();
  }
  impl_->sessions.clear();
}

}  // namespace tern::sdk
