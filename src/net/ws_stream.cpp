#include "net/ws_stream.hpp"

#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <fmt/format.h>

#include <array>
#include <cstring>

#include "net/tls_context.hpp"

namespace tern::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr std::size_t kReadBytes = 1536;
constexpr std::uint32_t kMaxUpgradeHeaderBytes = 8 * 1024;

// Whether a comma-separated header value names `token` (case-insensitively).
bool lists_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const auto comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (beast::iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

struct WsStream::Impl {
  virtual ~Impl() = default;
  virtual void async_handshake(HandshakeHandler handler) = 0;
  virtual std::optional<std::string> identity() const = 0;
  virtual void async_wait_readable(Handler handler) = 0;
  virtual void async_write(const std::vector<broker::SharedBytes>& buffers, Handler handler) = 0;
  virtual void async_close(Handler handler) = 0;
  virtual void close(error_code& ec) = 0;

  std::array<char, kReadBytes> buffer{};
  std::size_t ready = 0;  // bytes of `buffer` not yet handed to read_some
};

template <class NextLayer>
struct WsStream::ImplFor final : WsStream::Impl {
  template <class... Args>
  ImplFor(std::shared_ptr<TlsContext> tls_context, std::string upgrade_path, Args&&... args)
      : tls(std::move(tls_context)), path(std::move(upgrade_path)), ws(std::forward<Args>(args)...) {}

  static constexpr bool kTls = !std::is_same_v<NextLayer, tcp::socket>;

  void async_handshake(HandshakeHandler handler) override {
    if constexpr (kTls) {
      ws.next_layer().async_handshake(asio::ssl::stream_base::server,
                                      [this, handler = std::move(handler)](error_code ec) mutable {
                                        if (ec) {
                                          auto reason = tls_failure_reason(ws.next_layer().native_handle());
                                          if (reason == "unknown error") reason = ec.message();
                                          return handler(ec, "TLS handshake failed: " + reason);
                                        }
                                        read_upgrade(std::move(handler));
                                      });
    } else {
      read_upgrade(std::move(handler));
    }
  }

  void read_upgrade(HandshakeHandler handler) {
    request = std::make_unique<Request>();
    request->parser.header_limit(kMaxUpgradeHeaderBytes);
    request->parser.body_limit(0);
    http::async_read(ws.next_layer(), request->buffer, request->parser,
                     [this, handler = std::move(handler)](error_code ec, std::size_t) mutable {
                       if (ec) return handler(ec, "no valid HTTP upgrade request: " + ec.message());
                       const auto& req = request->parser.get();
                       const std::string_view target(req.target().data(), req.target().size());
                       const std::string_view target_path = target.substr(0, target.find('?'));
                       if (!websocket::is_upgrade(req)) {
                         return handler(asio::error::no_protocol_option, "not a WebSocket upgrade request");
                       }
                       if (target_path != path) {
                         return handler(asio::error::no_protocol_option,
                                        fmt::format("WebSocket path '{}' is not '{}'", target_path, path));
                       }
                       const auto protocols = req[http::field::sec_websocket_protocol];
                       if (!lists_token(std::string_view(protocols.data(), protocols.size()), "mqtt")) {
                         return handler(asio::error::no_protocol_option,
                                        "the WebSocket client does not offer the subprotocol 'mqtt'");
                       }
                       ws.set_option(websocket::stream_base::decorator([](websocket::response_type& response) {
                         response.set(http::field::sec_websocket_protocol, "mqtt");
                         response.set(http::field::server, "ternd");
                       }));
                       ws.binary(true);
                       ws.auto_fragment(false);
                       ws.async_accept(req, [this, handler = std::move(handler)](error_code accept_ec) mutable {
                         request.reset();
                         if (accept_ec) return handler(accept_ec, "WebSocket upgrade failed: " + accept_ec.message());
                         handler(error_code(), std::string());
                       });
                     });
  }

  std::optional<std::string> identity() const override {
    if constexpr (kTls) {
      return certificate_identity(const_cast<NextLayer&>(ws.next_layer()).native_handle());
    } else {
      return std::nullopt;
    }
  }

  void async_wait_readable(Handler handler) override {
    ws.async_read_some(asio::buffer(buffer), [this, handler = std::move(handler)](error_code ec, std::size_t n) {
      if (!ec && !ws.got_binary()) ec = websocket::error::bad_data_frame;  // MQTT needs binary frames
      ready = ec ? 0 : n;
      handler(ec);
    });
  }

  void async_write(const std::vector<broker::SharedBytes>& buffers, Handler handler) override {
    write_buffers.clear();
    for (const auto& bytes : buffers) write_buffers.emplace_back(bytes->data(), bytes->size());
    ws.async_write(write_buffers, [handler = std::move(handler)](error_code ec, std::size_t) { handler(ec); });
  }

  void async_close(Handler handler) override {
    ws.async_close(websocket::close_code::normal, std::move(handler));
  }

  void close(error_code& ec) override { beast::get_lowest_layer(ws).close(ec); }

  struct Request {
    beast::flat_buffer buffer;
    http::request_parser<http::empty_body> parser;
  };

  std::shared_ptr<TlsContext> tls;  // keeps the SSL_CTX alive for this connection
  std::string path;
  websocket::stream<NextLayer> ws;
  std::unique_ptr<Request> request;  // only during the upgrade
  std::vector<asio::const_buffer> write_buffers;
};

WsStream::WsStream(tcp::socket socket, std::shared_ptr<TlsContext> tls, std::string path) {
  if (tls) {
    auto& context = tls->asio_context();
    impl_ = std::make_unique<ImplFor<asio::ssl::stream<tcp::socket>>>(std::move(tls), std::move(path),
                                                                       std::move(socket), context);
  } else {
    impl_ = std::make_unique<ImplFor<tcp::socket>>(nullptr, std::move(path), std::move(socket));
  }
}

WsStream::~WsStream() = default;

void WsStream::async_handshake(HandshakeHandler handler) { impl_->async_handshake(std::move(handler)); }
std::optional<std::string> WsStream::identity() const { return impl_->identity(); }
void WsStream::async_wait_readable(Handler handler) { impl_->async_wait_readable(std::move(handler)); }

std::size_t WsStream::read_some(asio::mutable_buffer buffer, error_code& ec) {
  if (impl_->ready == 0) {
    ec = asio::error::would_block;
    return 0;
  }
  const std::size_t n = std::min(impl_->ready, buffer.size());
  std::memcpy(buffer.data(), impl_->buffer.data(), n);
  std::memmove(impl_->buffer.data(), impl_->buffer.data() + n, impl_->ready - n);
  impl_->ready -= n;
  ec = {};
  return n;
}

void WsStream::async_write(const std::vector<broker::SharedBytes>& buffers, Handler handler) {
  impl_->async_write(buffers, std::move(handler));
}
void WsStream::async_close(Handler handler) { impl_->async_close(std::move(handler)); }
void WsStream::close(error_code& ec) { impl_->close(ec); }

}  // namespace tern::net
