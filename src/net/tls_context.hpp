// TlsContext: one listener's OpenSSL configuration (certificates, client verification,
// CRL, PSK table), built from its ListenerConfig. SIGHUP builds a new one; connections
// keep the context they started with (they hold a shared_ptr), so replacing it drops none.
//
// Thread-safety: built and replaced on the server's thread; OpenSSL reads it from there.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <boost/asio/ssl/context.hpp>

#include "core/expected.hpp"
#include "net/listener_config.hpp"
#include "net/psk_file.hpp"

namespace tern::net {

class TlsContext {
 public:
  // Reads every file the listener names. The error names the file and OpenSSL's reason.
  static Expected<std::shared_ptr<TlsContext>, std::string> create(const ListenerConfig& config);

  boost::asio::ssl::context& asio_context() { return context_; }
  SSL_CTX* native() { return context_.native_handle(); }

  // Where the PSK callback records the identity a client used (per SSL object).
  static void set_psk_identity_slot(SSL* ssl, std::string* slot);

  explicit TlsContext(boost::asio::ssl::context context) : context_(std::move(context)) {}

 private:
  boost::asio::ssl::context context_;
  PskTable psk_;
};

// The identity of a verified client certificate: its subject CN, else the first DNS or
// e-mail subject alternative name; nullopt without a verified certificate or when the
// name holds characters that do not belong in an identity.
std::optional<std::string> certificate_identity(SSL* ssl);

// The reason of the last OpenSSL failure on `ssl` (and the certificate verification
// result, when that is what failed), for log lines. Clears OpenSSL's error queue.
std::string tls_failure_reason(SSL* ssl);

}  // namespace tern::net
