// Errors reach callers as std::error_code values in the `tern` category; when the broker
// refused something, the MQTT reason code travels beside it.
#pragma once

#include <cstdint>
#include <system_error>

namespace tern {

enum class Errc {
  not_connected = 1,      // the call needs a connection and there is none
  connection_failed,      // TCP connect or name resolution failed
  connection_refused,     // CONNACK with an error reason code
  connection_lost,        // the socket closed or a keep-alive deadline passed
  protocol_error,         // the broker sent something the client cannot accept
  rejected,               // PUBACK/PUBREC/SUBACK/UNSUBACK carried an error reason code
  timeout,                // a request or connect deadline passed
  outbox_full,            // the pending queue is at capacity and the policy refuses new messages
  dropped,                // the message was evicted from a full outbox (drop_oldest policy)
  shutting_down,          // the client or service is stopping
  invalid_argument,       // e.g. a topic name with wildcards
  storage_failed,         // the on-disk outbox or state store failed
};

const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

}  // namespace tern

template <>
struct std::is_error_code_enum<tern::Errc> : std::true_type {};
