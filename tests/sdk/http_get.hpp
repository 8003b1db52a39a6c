// A blocking HTTP/1.1 GET for tests, run on a thread of its own while the test's
// io_context serves the request.
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <chrono>
#include <functional>
#include <future>
#include <string>

namespace tern::test {

struct HttpResult {
  unsigned status = 0;  // 0: no answer
  std::string content_type;
  std::string body;
};

inline HttpResult http_get_blocking(std::uint16_t port, const std::string& path) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  using boost::asio::ip::tcp;
  HttpResult result;
  try {
    boost::asio::io_context io;
    tcp::socket socket(io);
    socket.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
    http::request<http::string_body> request(http::verb::get, path, 11);
    request.set(http::field::host, "127.0.0.1");
    http::write(socket, request);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(socket, buffer, response);
    result.status = response.result_int();
    result.content_type = std::string(response[http::field::content_type]);
    result.body = response.body();
  } catch (const std::exception&) {
  }
  return result;
}

// Sends the request from another thread and runs `io` until the answer is there.
inline HttpResult http_get(boost::asio::io_context& io, std::uint16_t port, const std::string& path,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto future = std::async(std::launch::async, [port, path] { return http_get_blocking(port, path); });
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (future.wait_for(std::chrono::seconds(0)) != std::future_status::ready &&
         std::chrono::steady_clock::now() < deadline) {
    if (io.stopped()) io.restart();
    io.run_one_for(std::chrono::milliseconds(20));
  }
  if (future.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return {};
  return future.get();
}

}  // namespace tern::test
