// A tiny HTTP/1.1 server (Boost.Beast) for a service's /healthz, /readyz and /metrics.
//
// Bounded: at most kMaxConnections at once (more are closed on accept), requests larger
// than 8 KiB are refused, and a connection idle for 10 s is closed. Only GET and HEAD.
//
// Thread-safety: runs on the io_context it was started on; `route` is called there.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/expected.hpp"

namespace boost::asio {
class io_context;
}

namespace tern::sdk {

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// Maps a request path (query string removed) to a response.
using HttpRoute = std::function<HttpResponse(std::string_view path)>;

class HttpEndpoint {
 public:
  static constexpr std::size_t kMaxConnections = 16;

  // Binds `listen` ("host:port", "[v6]:port"; port 0 picks a free one) and accepts.
  static Expected<std::shared_ptr<HttpEndpoint>, std::string> start(boost::asio::io_context& io,
                                                                     std::string_view listen, HttpRoute route);
  ~HttpEndpoint();
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  std::uint16_t port() const noexcept;
  // Stops accepting and closes open connections.
  void close();

  struct Impl;
  explicit HttpEndpoint(std::shared_ptr<Impl> impl);

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace tern::sdk
