// Private building blocks of the codec: a bounds-checked reader over a packet body, the
// byte sinks the encoder writes through, and the property block codec.
//
// Why two sinks: every encoder is written once as a template over its sink. Run with a
// SizeCounter it yields the exact size (remaining length, property length,
// encoded_size); run with a StringAppender it writes the bytes. Size and bytes cannot
// drift apart.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mqtt/codec.hpp"
#include "mqtt/packets.hpp"

namespace tern::mqtt::wire {

// Success is an empty optional; internal steps return this, decode() turns it into an
// Expected at the end.
using MaybeError = std::optional<CodecError>;

inline CodecError malformed(const char* what) noexcept { return {ReasonCode::malformed_packet, what}; }
inline CodecError protocol_error(const char* what) noexcept { return {ReasonCode::protocol_error, what}; }


enum class VarintStatus : std::uint8_t { ok, incomplete, malformed };

// Decodes a variable byte integer (§1.5.5) at the start of `in`. Non-minimal encodings
// (a last byte of 0 after a continuation) are malformed: the specification requires the
// minimum number of bytes, and accepting them would let two encodings mean one packet.
inline VarintStatus decode_varint(std::string_view in, std::uint32_t& value, std::size_t& used) noexcept {
  value = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    if (i >= in.size()) return VarintStatus::incomplete;
    const auto b = static_cast<std::uint8_t>(in[i]);
    value |= static_cast<std::uint32_t>(b & 0x7F) << (7 * i);
    if ((b & 0x80) == 0) {
      used = i + 1;
      return (b == 0 && i > 0) ? VarintStatus::malformed : VarintStatus::ok;
    }
  }
  return VarintStatus::malformed;
}

class Reader {
 public:
  explicit Reader(std::string_view data) noexcept : data_(data) {}

  bool empty() const noexcept { return pos_ == data_.size(); }
  std::size_t remaining() const noexcept { return data_.size() - pos_; }
  std::size_t position() const noexcept { return pos_; }

  bool read_u8(std::uint8_t& out) noexcept {
    if (remaining() < 1) return false;
    out = static_cast<std::uint8_t>(data_[pos_++]);
    return true;
  }
  bool read_u16(std::uint16_t& out) noexcept {
    if (remaining() < 2) return false;
    out = detail::read_u16(data_.data() + pos_);
    pos_ += 2;
    return true;
  }
  bool read_u32(std::uint32_t& out) noexcept {
    if (remaining() < 4) return false;
    out = 0;
    for (int i = 0; i < 4; ++i) out = (out << 8) | static_cast<std::uint8_t>(data_[pos_++]);
    return true;
  }
  // Truncated and over-long integers alike are malformed inside a packet body.
  bool read_varint(std::uint32_t& out) noexcept {
    std::size_t used = 0;
    if (decode_varint(data_.substr(pos_), out, used) != VarintStatus::ok) return false;
    pos_ += used;
    return true;
  }
  bool read_bytes(std::size_t n, std::string_view& out) noexcept {
    if (remaining() < n) return false;
    out = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  // Two-byte length, then that many bytes: Binary Data and the raw form of a UTF-8 string.
  bool read_binary(std::string_view& out) noexcept {
    std::uint16_t n = 0;
    const std::size_t start = pos_;
    if (!read_u16(n) || !read_bytes(n, out)) {
      pos_ = start;
      return false;
    }
    return true;
  }
  std::string_view read_rest() noexcept {
    std::string_view out = data_.substr(pos_);
    pos_ = data_.size();
    return out;
  }

 private:
  std::string_view data_;
  std::size_t pos_ = 0;
};

// Strings longer than a two-byte length can say are cut at 65535 bytes, so that a
// caller's mistake yields a well-framed (if wrong) packet instead of a corrupt stream.
constexpr std::size_t max_string = 65'535;

class SizeCounter {
 public:
  void u8(std::uint8_t) noexcept { size += 1; }
  void u16(std::uint16_t) noexcept { size += 2; }
  void u32(std::uint32_t) noexcept { size += 4; }
  void varint(std::uint32_t v) noexcept { size += varint_size(v); }
  void raw(std::string_view s) noexcept { size += s.size(); }
  void string(std::string_view s) noexcept { size += 2 + std::min(s.size(), max_string); }
  std::size_t size = 0;
};

class StringAppender {
 public:
  explicit StringAppender(std::string& out) noexcept : out_(out) {}
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v) {
    out_.push_back(static_cast<char>(v >> 8));
    out_.push_back(static_cast<char>(v & 0xFF));
  }
  void u32(std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out_.push_back(static_cast<char>((v >> shift) & 0xFF));
  }
  void varint(std::uint32_t v) { append_varint(out_, v); }
  void raw(std::string_view s) { out_.append(s); }
  void string(std::string_view s) {
    const std::size_t n = std::min(s.size(), max_string);
    u16(static_cast<std::uint16_t>(n));
    out_.append(s.substr(0, n));
  }

 private:
  std::string& out_;
};

// Where a property block sits; decides which properties are allowed (§2.2.2.2).
enum class PropertyContext : std::uint8_t {
  connect, connack, publish, will, puback, pubrec, pubrel, pubcomp,
  subscribe, suback, unsubscribe, unsuback, disconnect, auth,
};

// Reads a property length and the block it announces into `out`. Checks identifiers,
// the packet each is allowed in, repetitions and values that can be judged alone.
MaybeError decode_properties(Reader& r, PropertyContext context, Properties& out) noexcept;

// Copies the properties of kind `id` out of an encoded span that may hold other kinds.
template <class Sink>
void write_entries_of_kind(Sink& sink, std::string_view encoded, std::uint8_t id) {
  std::size_t run_start = 0;
  std::size_t run_end = 0;  // a run of consecutive entries of kind `id` is copied at once
  for (std::size_t i = 0; i < encoded.size();) {
    const std::size_t n = detail::property_size(encoded, i);
    if (n == 0) break;
    if (static_cast<std::uint8_t>(encoded[i]) == id) {
      if (run_end != i) {
        sink.raw(encoded.substr(run_start, run_end - run_start));
        run_start = i;
      }
      run_end = i + n;
    }
    i += n;
  }
  sink.raw(encoded.substr(run_start, run_end - run_start));
}

template <class Sink>
void write_property_entries(Sink& s, const Properties& p) {
  auto byte = [&s](PropertyId id, const std::optional<std::uint8_t>& v) {
    if (v) { s.u8(static_cast<std::uint8_t>(id)); s.u8(*v); }
  };
  auto two = [&s](PropertyId id, const std::optional<std::uint16_t>& v) {
    if (v) { s.u8(static_cast<std::uint8_t>(id)); s.u16(*v); }
  };
  auto four = [&s](PropertyId id, const std::optional<std::uint32_t>& v) {
    if (v) { s.u8(static_cast<std::uint8_t>(id)); s.u32(*v); }
  };
  auto str = [&s](PropertyId id, const std::optional<std::string_view>& v) {
    if (v) { s.u8(static_cast<std::uint8_t>(id)); s.string(*v); }
  };
  byte(PropertyId::payload_format_indicator, p.payload_format_indicator);
  four(PropertyId::message_expiry_interval, p.message_expiry_interval);
  str(PropertyId::content_type, p.content_type);
  str(PropertyId::response_topic, p.response_topic);
  str(PropertyId::correlation_data, p.correlation_data);
  write_entries_of_kind(s, p.subscription_identifiers, static_cast<std::uint8_t>(PropertyId::subscription_identifier));
  four(PropertyId::session_expiry_interval, p.session_expiry_interval);
  str(PropertyId::assigned_client_identifier, p.assigned_client_identifier);
  two(PropertyId::server_keep_alive, p.server_keep_alive);
  str(PropertyId::authentication_method, p.authentication_method);
  str(PropertyId::authentication_data, p.authentication_data);
  byte(PropertyId::request_problem_information, p.request_problem_information);
  four(PropertyId::will_delay_interval, p.will_delay_interval);
  byte(PropertyId::request_response_information, p.request_response_information);
  str(PropertyId::response_information, p.response_information);
  str(PropertyId::server_reference, p.server_reference);
  str(PropertyId::reason_string, p.reason_string);
  two(PropertyId::receive_maximum, p.receive_maximum);
  two(PropertyId::topic_alias_maximum, p.topic_alias_maximum);
  two(PropertyId::topic_alias, p.topic_alias);
  byte(PropertyId::maximum_qos, p.maximum_qos);
  byte(PropertyId::retain_available, p.retain_available);
  four(PropertyId::maximum_packet_size, p.maximum_packet_size);
  byte(PropertyId::wildcard_subscription_available, p.wildcard_subscription_available);
  byte(PropertyId::subscription_identifier_available, p.subscription_identifier_available);
  byte(PropertyId::shared_subscription_available, p.shared_subscription_available);
  write_entries_of_kind(s, p.user_properties, static_cast<std::uint8_t>(PropertyId::user_property));
}

// Property length followed by the properties.
template <class Sink>
void write_properties(Sink& s, const Properties& p) {
  SizeCounter counter;
  write_property_entries(counter, p);
  s.varint(static_cast<std::uint32_t>(counter.size));
  write_property_entries(s, p);
}

inline bool has_properties(const Properties& p) {
  SizeCounter counter;
  write_property_entries(counter, p);
  return counter.size != 0;
}

}  // namespace tern::mqtt::wire
