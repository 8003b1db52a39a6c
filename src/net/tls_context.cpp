#include "net/tls_context.hpp"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>

namespace tern::net {
namespace {

namespace ssl = boost::asio::ssl;

std::string openssl_reason() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    const std::string text = reason != nullptr ? reason : fmt::format("error {:#x}", e);
    if (out.find(text) == std::string::npos) out += out.empty() ? text : "; " + text;
  }
  return out.empty() ? "unknown error" : out;
}

int table_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int identity_slot_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// TLS 1.2 PSK, and TLS 1.3 PSK through OpenSSL's compatibility path (a session is made
// from the key, with TLS_AES_128_GCM_SHA256).
unsigned int psk_server_callback(SSL* ssl, const char* identity, unsigned char* psk, unsigned int max_psk_len) {
  const auto* table = static_cast<const PskTable*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), table_index()));
  if (table == nullptr || identity == nullptr) return 0;
  const PskEntry* entry = table->find(identity);
  if (auto* slot = static_cast<std::string*>(SSL_get_ex_data(ssl, identity_slot_index()))) {
    *slot = identity;  // even when unknown: the failure's log line names it
  }
  if (entry == nullptr || entry->key.size() > max_psk_len) return 0;
  std::memcpy(psk, entry->key.data(), entry->key.size());
  return static_cast<unsigned int>(entry->key.size());
}

Expected<void, std::string> load_crl(SSL_CTX* ctx, const std::string& path) {
  BIO* bio = BIO_new_file(path.c_str(), "r");
  if (bio == nullptr) return make_unexpected(fmt::format("cannot read the CRL {}: {}", path, openssl_reason()));
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int loaded = 0;
  while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio, nullptr, nullptr, nullptr)) {
    const int ok = X509_STORE_add_crl(store, crl);
    X509_CRL_free(crl);
    if (ok != 1) {
      BIO_free(bio);
      return make_unexpected(fmt::format("cannot use the CRL {}: {}", path, openssl_reason()));
    }
    ++loaded;
  }
  BIO_free(bio);
  ERR_clear_error();  // the end of the file
  if (loaded == 0) return make_unexpected(fmt::format("the CRL file {} holds no PEM CRL", path));
  X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  return {};
}

bool acceptable_identity(std::string_view text) {
  if (text.empty() || text.size() > 256) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u != 0x7F;
  });
}

}  // namespace

void TlsContext::set_psk_identity_slot(SSL* ssl, std::string* slot) {
  SSL_set_ex_data(ssl, identity_slot_index(), slot);
}

Expected<std::shared_ptr<TlsContext>, std::string> TlsContext::create(const ListenerConfig& config) {
  ERR_clear_error();
  auto tls = std::make_shared<TlsContext>(ssl::context(ssl::context::tls_server));
  SSL_CTX* ctx = tls->native();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
  // Idle connections give their record buffers back; writes may be retried from another
  // buffer (the server stages writes in a shared buffer and copies only what blocks).
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  static constexpr unsigned char kSessionContext[] = "ternd";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  // Resumption uses stateless tickets: a server-side session cache would keep every
  // client's session in memory.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

  if (!config.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, config.cert_file.c_str()) != 1) {
      return make_unexpected(
          fmt::format("cannot load the certificate {}: {}", config.cert_file, openssl_reason()));
    }
    // The key's contents never reach a message: only its path and OpenSSL's reason.
    if (SSL_CTX_use_PrivateKey_file(ctx, config.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return make_unexpected(fmt::format("cannot load the private key {}: {}", config.key_file, openssl_reason()));
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      return make_unexpected(fmt::format("the private key {} does not match the certificate {}", config.key_file,
                                         config.cert_file));
    }
  }
  if (!config.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, config.ca_file.c_str(), nullptr) != 1) {
      return make_unexpected(fmt::format("cannot load the CA file {}: {}", config.ca_file, openssl_reason()));
    }
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config.ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(ctx, names);
    }
    ERR_clear_error();
  }
  if (!config.crl_file.empty()) {
    if (auto r = load_crl(ctx, config.crl_file); !r) return make_unexpected(r.error());
  }
  switch (config.client_certificates) {
    case ClientCertificates::none: SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr); break;
    case ClientCertificates::optional: SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr); break;
    case ClientCertificates::required:
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
      break;
  }
  if (!config.psk_file.empty()) {
    auto table = load_psk_file(config.psk_file);
    if (!table) return make_unexpected(table.error());
    tls->psk_.entries = std::move(table->entries);
    SSL_CTX_set_ex_data(ctx, table_index(), &tls->psk_);
    SSL_CTX_set_psk_server_callback(ctx, psk_server_callback);
    // TLS 1.2 PSK suites are not in OpenSSL's default list.
    const char* ciphers = config.cert_file.empty() ? "ECDHE-PSK:PSK:!aNULL:!eNULL:!MD5:!3DES:!RC4"
                                                   : "HIGH:ECDHE-PSK:PSK:!aNULL:!eNULL:!MD5:!3DES:!RC4";
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
      return make_unexpected(fmt::format("cannot enable the TLS-PSK cipher suites: {}", openssl_reason()));
    }
  }
  ERR_clear_error();
  return tls;
}

std::optional<std::string> certificate_identity(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return std::nullopt;
  const auto accept = [](const unsigned char* data, int length) -> std::optional<std::string> {
    if (data == nullptr || length <= 0) return std::nullopt;
    std::string text(reinterpret_cast<const char*>(data), static_cast<std::size_t>(length));
    if (!acceptable_identity(text)) return std::nullopt;
    return text;
  };
  X509_NAME* subject = X509_get_subject_name(cert);
  const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index >= 0) {
    unsigned char* utf8 = nullptr;
    const int length = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index)));
    auto identity = accept(utf8, length);
    OPENSSL_free(utf8);
    if (identity) return identity;
  }
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  std::optional<std::string> identity;
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names) && !identity; ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type == GEN_DNS || name->type == GEN_EMAIL) {
      const ASN1_IA5STRING* text = name->type == GEN_DNS ? name->d.dNSName : name->d.rfc822Name;
      identity = accept(ASN1_STRING_get0_data(text), ASN1_STRING_length(text));
    }
  }
  GENERAL_NAMES_free(names);
  return identity;
}

std::string tls_failure_reason(SSL* ssl) {
  std::string reason = openssl_reason();
  if (ssl != nullptr) {
    const long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) reason += fmt::format(" (certificate: {})", X509_verify_cert_error_string(verify));
  }
  return reason;
}

}  // namespace tern::net
