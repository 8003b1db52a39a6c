// Where a listener binds and what it speaks. Kept apart from server.hpp so that
// configuration code can use it without Asio or OpenSSL.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

namespace tern::net {

// tcp: plain MQTT; tls: MQTT over TLS 1.2/1.3; ws/wss: MQTT over WebSocket (subprotocol
// "mqtt", binary frames), plain or over TLS.
enum class Transport : std::uint8_t { tcp, tls, ws, wss };

// none: no client certificate is asked for; optional: one is asked for and, when given,
// must verify against `ca_file`; required: a connection without a valid one is refused.
enum class ClientCertificates : std::uint8_t { none, optional, required };

struct ListenerConfig {
  ListenerConfig() = default;
  // A plain TCP listener.
  ListenerConfig(std::string listen_host, std::uint16_t listen_port)
      : host(std::move(listen_host)), port(listen_port) {}

  std::string host = "127.0.0.1";
  std::uint16_t port = 1883;  // 0: any free port (see Server::bound_endpoints)
  Transport transport = Transport::tcp;
  // TLS (tls, wss). Files are PEM; all of them are read again on SIGHUP.
  std::string cert_file;  // server certificate chain (leaf first)
  std::string key_file;   // its private key
  std::string ca_file;    // CAs that client certificates must chain to
  std::string crl_file;   // revoked client certificates (needs ca_file)
  std::string psk_file;   // TLS-PSK identities and keys (tls only): see net/psk_file.hpp
  ClientCertificates client_certificates = ClientCertificates::none;
  std::uint32_t handshake_timeout_ms = 10000;  // TLS handshake and WebSocket upgrade
  std::string ws_path = "/mqtt";               // ws, wss: the HTTP path of the upgrade
};

// Whether a transport runs TLS.
constexpr bool uses_tls(Transport t) { return t == Transport::tls || t == Transport::wss; }
constexpr bool uses_websocket(Transport t) { return t == Transport::ws || t == Transport::wss; }

constexpr const char* transport_name(Transport t) {
  switch (t) {
    case Transport::tcp: return "tcp";
    case Transport::tls: return "tls";
    case Transport::ws: return "ws";
    case Transport::wss: return "wss";
  }
  return "tcp";
}

constexpr const char* client_certificates_name(ClientCertificates c) {
  switch (c) {
    case ClientCertificates::none: return "none";
    case ClientCertificates::optional: return "optional";
    case ClientCertificates::required: return "required";
  }
  return "none";
}

}  // namespace tern::net
