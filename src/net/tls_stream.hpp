// TlsStream: TLS on a non-blocking TCP socket, driven by readiness like the plain TCP path.
//
// Why not asio::ssl::stream: it keeps two 17 KB buffers per connection for its whole life.
// Here OpenSSL reads and writes the socket itself (SSL_set_fd) with SSL_MODE_RELEASE_BUFFERS,
// so an idle TLS connection holds only OpenSSL's session state; the server's scratch
// buffers serve every connection. Reads: wait for readability, then SSL_read until it
// wants more. Writes: the queue is staged into the server's shared write buffer one record
// (16 KB) at a time; only when the socket blocks are the staged bytes copied into the
// connection (OpenSSL needs the same bytes again, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets
// them move).
//
// Thread-safety: one connection, one thread (the server's).
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "broker/interfaces.hpp"
#include "net/tls_context.hpp"

namespace tern::net {

class TlsStream {
 public:
  using tcp = boost::asio::ip::tcp;
  using error_code = boost::system::error_code;
  static constexpr std::size_t kRecordBytes = 16 * 1024;

  // `write_scratch` (at least kRecordBytes) is shared by every connection of the server.
  TlsStream(tcp::socket socket, std::shared_ptr<TlsContext> context, std::vector<char>& write_scratch)
      : socket_(std::move(socket)), context_(std::move(context)), write_scratch_(&write_scratch),
        ssl_(SSL_new(context_->native())) {
    if (ssl_ == nullptr) throw std::bad_alloc();
    SSL_set_fd(ssl_, static_cast<int>(socket_.native_handle()));
    SSL_set_accept_state(ssl_);
    TlsContext::set_psk_identity_slot(ssl_, &psk_identity_);
  }
  ~TlsStream() { SSL_free(ssl_); }
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  tcp::socket& socket() { return socket_; }

  // Completes with (error, reason for the log). The first byte is checked before OpenSSL
  // sees it, so that a plain MQTT client gets a clear line instead of a record-layer error.
  template <class Handler>
  void async_handshake(Handler handler) {
    socket_.async_wait(tcp::socket::wait_read, [this, handler = std::move(handler)](error_code ec) mutable {
      if (ec) return handler(ec, std::string("connection failed before the TLS handshake: ") + ec.message());
      unsigned char first = 0;
      const auto n = ::recv(socket_.native_handle(), &first, 1, MSG_PEEK);
      if (n == 0) return handler(boost::asio::error::eof, std::string("closed before the TLS handshake"));
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        return handler(error_code(errno, boost::system::system_category()),
                       std::string("connection failed before the TLS handshake"));
      }
      if (n == 1 && first != 0x16) {
        return handler(boost::asio::error::no_protocol_option,
                       first == 0x10 ? std::string("not TLS: the client sent a plain MQTT CONNECT")
                                     : fmt::format("not TLS: the first byte is {:#04x}, not a handshake record",
                                                   static_cast<unsigned>(first)));
      }
      handshake_step(std::move(handler));
    });
  }

  bool handshake_done() const { return handshake_done_; }
  // The client certificate's identity, else the PSK identity it connected with.
  std::optional<std::string> identity() const {
    if (auto id = certificate_identity(ssl_)) return id;
    if (!psk_identity_.empty()) return psk_identity_;
    return std::nullopt;
  }
  std::string version() const { return SSL_get_version(ssl_); }

  template <class Handler>
  void async_wait_readable(Handler handler) {
    if (SSL_has_pending(ssl_) == 1) {
      boost::asio::post(socket_.get_executor(), [handler = std::move(handler)]() mutable { handler(error_code()); });
      return;
    }
    after_wait_ = true;
    socket_.async_wait(read_wants_write_ ? tcp::socket::wait_write : tcp::socket::wait_read, std::move(handler));
  }

  // Non-blocking: would_block when OpenSSL needs more from the socket.
  std::size_t read_some(boost::asio::mutable_buffer buffer, error_code& ec) {
    // An SSL_read that finds nothing allocates OpenSSL's 16 KB read buffer and keeps it
    // until the next record: only ask OpenSSL when the socket has bytes (or just woke us,
    // which may also mean end of file).
    if (!after_wait_ && SSL_has_pending(ssl_) == 0) {
      error_code available_ec;
      if (socket_.available(available_ec) == 0 && !available_ec) {
        ec = boost::asio::error::would_block;
        return 0;
      }
    }
    after_wait_ = false;
    ERR_clear_error();
    std::size_t n = 0;
    if (SSL_read_ex(ssl_, buffer.data(), buffer.size(), &n) == 1) {
      read_wants_write_ = false;
      ec = {};
      return n;
    }
    const int error = SSL_get_error(ssl_, 0);
    read_wants_write_ = error == SSL_ERROR_WANT_WRITE;
    ec = to_error(error);
    return 0;
  }

  // Writes every buffer of `buffers` (which must stay unchanged until the handler runs).
  template <class Handler>
  void async_write(const std::vector<broker::SharedBytes>& buffers, Handler handler) {
    buffers_ = &buffers;
    next_buffer_ = 0;
    next_offset_ = 0;
    write_more(std::move(handler));
  }

  // Sends close_notify (best effort) and shuts the TCP send side down.
  void shutdown_send(error_code& ec) {
    if (handshake_done_) {
      ERR_clear_error();
      SSL_shutdown(ssl_);
      ERR_clear_error();
    }
    socket_.shutdown(tcp::socket::shutdown_send, ec);
  }

  void close(error_code& ec) { socket_.close(ec); }

 private:
  template <class Handler>
  void handshake_step(Handler handler) {
    ERR_clear_error();
    const int result = SSL_do_handshake(ssl_);
    if (result == 1) {
      handshake_done_ = true;
      return handler(error_code(), std::string());
    }
    const int error = SSL_get_error(ssl_, result);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
      socket_.async_wait(error == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write,
                         [this, handler = std::move(handler)](error_code ec) mutable {
                           if (ec) return handler(ec, "connection failed during the TLS handshake: " + ec.message());
                           handshake_step(std::move(handler));
                         });
      return;
    }
    std::string reason;
    if (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
      reason = errno != 0 && errno != EAGAIN ? fmt::format("connection failed during the TLS handshake: {}",
                                                           std::strerror(errno))
                                             : std::string("the client closed the connection during the TLS handshake");
    } else {
      reason = tls_failure_reason(ssl_);
    }
    if (!psk_identity_.empty()) reason += fmt::format(" (PSK identity '{}')", psk_identity_);
    handler(to_error(error), std::move(reason));
  }

  template <class Handler>
  void write_more(Handler handler) {
    for (;;) {
      const char* data = nullptr;
      std::size_t size = 0;
      if (!retry_.empty()) {
        data = retry_.data();
        size = retry_.size();
      } else {
        size = stage();
        data = write_scratch_->data();
        if (size == 0) {
          boost::asio::post(socket_.get_executor(),
                            [handler = std::move(handler)]() mutable { handler(error_code()); });
          return;
        }
      }
      ERR_clear_error();
      std::size_t written = 0;
      if (SSL_write_ex(ssl_, data, size, &written) == 1) {
        if (!retry_.empty()) std::string().swap(retry_);
        continue;
      }
      const int error = SSL_get_error(ssl_, 0);
      if (error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ) {
        if (retry_.empty()) retry_.assign(data, size);
        socket_.async_wait(error == SSL_ERROR_WANT_WRITE ? tcp::socket::wait_write : tcp::socket::wait_read,
                           [this, handler = std::move(handler)](error_code ec) mutable {
                             if (ec) return handler(ec);
                             write_more(std::move(handler));
                           });
        return;
      }
      std::string().swap(retry_);
      const error_code ec = to_error(error);
      boost::asio::post(socket_.get_executor(), [handler = std::move(handler), ec]() mutable { handler(ec); });
      return;
    }
  }

  // Copies the next record's worth of queued bytes into the shared write buffer.
  std::size_t stage() {
    std::size_t size = 0;
    const std::size_t capacity = std::min(write_scratch_->size(), kRecordBytes);
    while (size < capacity && next_buffer_ < buffers_->size()) {
      const std::string& bytes = *(*buffers_)[next_buffer_];
      const std::size_t n = std::min(bytes.size() - next_offset_, capacity - size);
      std::memcpy(write_scratch_->data() + size, bytes.data() + next_offset_, n);
      size += n;
      next_offset_ += n;
      if (next_offset_ == bytes.size()) {
        ++next_buffer_;
        next_offset_ = 0;
      }
    }
    return size;
  }

  error_code to_error(int ssl_error) const {
    switch (ssl_error) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE: return boost::asio::error::would_block;
      case SSL_ERROR_ZERO_RETURN: return boost::asio::error::eof;
      case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
          return errno != 0 && errno != EAGAIN ? error_code(errno, boost::system::system_category())
                                               : error_code(boost::asio::error::eof);
        }
        break;
      default: break;
    }
    const unsigned long e = ERR_peek_last_error();
    return error_code(static_cast<int>(e != 0 ? e : 1), boost::asio::error::get_ssl_category());
  }

  tcp::socket socket_;
  std::shared_ptr<TlsContext> context_;  // keeps the SSL_CTX's PSK table alive
  std::vector<char>* write_scratch_;
  SSL* ssl_;
  std::string psk_identity_;             // set by the PSK callback
  std::string retry_;                    // staged bytes OpenSSL must be offered again; empty when idle
  const std::vector<broker::SharedBytes>* buffers_ = nullptr;
  std::size_t next_buffer_ = 0;
  std::size_t next_offset_ = 0;
  bool read_wants_write_ = false;
  bool after_wait_ = false;  // the next read follows a readiness wait
  bool handshake_done_ = false;
};

}  // namespace tern::net
