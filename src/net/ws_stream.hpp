// WsStream: MQTT over WebSocket (RFC 6455, subprotocol "mqtt", binary frames), plain or
// over TLS, with Boost.Beast. The server sees the same readiness-then-read interface as
// for TCP: a wait completes when a frame's bytes are ready, read_some hands them over.
//
// What it costs: Beast keeps a small frame buffer per connection and this class a 1.5 KB
// read buffer, and a wss connection the 34 KB of asio::ssl::stream: WebSocket is for
// browsers and dashboards, not for the thousands of devices (they use tcp or tls).
//
// Thread-safety: one connection, one thread (the server's).
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "broker/interfaces.hpp"

namespace tern::net {

class TlsContext;

class WsStream {
 public:
  using error_code = boost::system::error_code;
  using Handler = std::function<void(error_code)>;
  using HandshakeHandler = std::function<void(error_code, std::string reason)>;

  // `tls` null: plain ws.
  WsStream(boost::asio::ip::tcp::socket socket, std::shared_ptr<TlsContext> tls, std::string path);
  ~WsStream();
  WsStream(const WsStream&) = delete;
  WsStream& operator=(const WsStream&) = delete;

  // TLS handshake (wss), then the HTTP upgrade on the configured path.
  void async_handshake(HandshakeHandler handler);
  std::optional<std::string> identity() const;

  void async_wait_readable(Handler handler);
  std::size_t read_some(boost::asio::mutable_buffer buffer, error_code& ec);
  // Sends the buffers as one binary message (MQTT packets may share or span messages).
  void async_write(const std::vector<broker::SharedBytes>& buffers, Handler handler);
  // The WebSocket close handshake; the handler runs once it is over.
  void async_close(Handler handler);
  void close(error_code& ec);

 private:
  struct Impl;
  template <class NextLayer>
  struct ImplFor;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::net
