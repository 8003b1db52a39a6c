#include "store/records.hpp"

#include "core/topic.hpp"

namespace tern::store::records {
namespace {

void put_u16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}

void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}

void put_varint(std::string& out, std::size_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

std::size_t varint_size(std::size_t v) {
  std::size_t n = 1;
  for (; v >= 0x80; v >>= 7) ++n;
  return n;
}

void put_bytes(std::string& out, std::string_view bytes) {
  put_varint(out, bytes.size());
  out.append(bytes);
}

// Reads a blob front to back; every read checks the bytes left and fails for good once
// one does not fit.
class Cursor {
 public:
  explicit Cursor(std::string_view bytes) : bytes_(bytes) {}
  bool ok() const { return ok_; }
  bool at_end() const { return i_ == bytes_.size(); }
  std::uint8_t u8() {
    if (!need(1)) return 0;
    return static_cast<std::uint8_t>(bytes_[i_++]);
  }
  std::uint16_t u16() {
    if (!need(2)) return 0;
    const std::uint16_t v = mqtt::detail::read_u16(bytes_.data() + i_);
    i_ += 2;
    return v;
  }
  std::uint32_t u32() {
    if (!need(4)) return 0;
    const std::uint32_t v = get_u32(bytes_.data() + i_);
    i_ += 4;
    return v;
  }
  std::int64_t i64() {
    if (!need(8)) return 0;
    std::uint64_t v = 0;
    for (int k = 0; k < 8; ++k) v = (v << 8) | static_cast<std::uint8_t>(bytes_[i_ + k]);
    i_ += 8;
    return static_cast<std::int64_t>(v);
  }
  std::size_t varint() {
    std::size_t v = 0;
    for (int shift = 0; shift < 35; shift += 7) {
      if (!need(1)) return 0;
      const auto b = static_cast<std::uint8_t>(bytes_[i_++]);
      v |= static_cast<std::size_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return v;
    }
    ok_ = false;  // longer than 5 bytes
    return 0;
  }
  std::string bytes() {
    const std::size_t n = varint();
    if (!need(n)) return {};
    std::string out(bytes_.substr(i_, n));
    i_ += n;
    return out;
  }

 private:
  bool need(std::size_t n) {
    if (ok_ && bytes_.size() - i_ >= n) return true;
    ok_ = false;
    return false;
  }
  std::string_view bytes_;
  std::size_t i_ = 0;
  bool ok_ = true;
};

enum QueueEntryBits : std::uint8_t {
  kHasMessage = 0x01,
  kHasPayloadFormat = 0x02,
  kHasContentType = 0x04,
  kHasResponseTopic = 0x08,
  kHasCorrelationData = 0x10,
  kHasUserProperties = 0x20,
  kHasExpiry = 0x40,
};

std::uint8_t options_byte(const mqtt::SubscriptionOptions& o) {
  return static_cast<std::uint8_t>(static_cast<unsigned>(o.qos) | (o.no_local ? 0x04U : 0U) |
                                   (o.retain_as_published ? 0x08U : 0U) |
                                   (static_cast<unsigned>(o.retain_handling) << 4));
}

}  // namespace

bool valid_stored_filter(std::string_view filter) {
  SharedSubscription shared;
  bool ok = true;
  if (parse_shared_subscription(filter, shared, ok)) return ok && is_valid_topic_filter(shared.filter);
  return is_valid_topic_filter(filter);
}

std::string encode_subscriptions(const std::vector<broker::StoredSubscription>& subscriptions) {
  std::string out;
  std::size_t size = 1;
  for (const auto& s : subscriptions) size += 7 + s.filter.size();
  out.reserve(size);
  out.push_back(static_cast<char>(kSubscriptionsFormat));
  for (const auto& s : subscriptions) {
    // Filters longer than an MQTT string cannot come from a client; the length field
    // would wrap, so such an entry is not written at all.
    if (s.filter.size() > 0xFFFF) continue;
    put_u16(out, static_cast<std::uint16_t>(s.filter.size()));
    out.append(s.filter);
    out.push_back(static_cast<char>(options_byte(s.options)));
    put_u32(out, s.subscription_id);
  }
  return out;
}

std::optional<std::vector<broker::StoredSubscription>> decode_subscriptions(std::string_view bytes) {
  if (bytes.empty() || static_cast<std::uint8_t>(bytes[0]) != kSubscriptionsFormat) return std::nullopt;
  std::vector<broker::StoredSubscription> out;
  std::size_t i = 1;
  while (i < bytes.size()) {
    if (bytes.size() - i < 2) return std::nullopt;
    const std::size_t length = mqtt::detail::read_u16(bytes.data() + i);
    i += 2;
    if (bytes.size() - i < length + 5) return std::nullopt;
    broker::StoredSubscription s;
    s.filter.assign(bytes.substr(i, length));
    i += length;
    const auto options = static_cast<std::uint8_t>(bytes[i++]);
    const unsigned qos = options & 0x03U;
    const unsigned retain_handling = (options >> 4) & 0x03U;
    if (qos > 2 || retain_handling > 2 || (options & 0xC0U) != 0) return std::nullopt;
    s.options.qos = static_cast<mqtt::QoS>(qos);
    s.options.no_local = (options & 0x04U) != 0;
    s.options.retain_as_published = (options & 0x08U) != 0;
    s.options.retain_handling = static_cast<mqtt::RetainHandling>(retain_handling);
    s.subscription_id = get_u32(bytes.data() + i);
    i += 4;
    if (s.subscription_id > kMaxSubscriptionId || !valid_stored_filter(s.filter)) return std::nullopt;
    out.push_back(std::move(s));
  }
  return out;
}

std::string encode_subscription_ids(const std::vector<std::uint32_t>& ids) {
  std::string out;
  out.reserve(ids.size() * 4);
  for (std::uint32_t id : ids) put_u32(out, id);
  return out;
}

std::optional<std::vector<std::uint32_t>> decode_subscription_ids(std::string_view bytes) {
  if (bytes.size() % 4 != 0) return std::nullopt;
  std::vector<std::uint32_t> out;
  out.reserve(bytes.size() / 4);
  for (std::size_t i = 0; i < bytes.size(); i += 4) {
    const std::uint32_t id = get_u32(bytes.data() + i);
    if (id == 0 || id > kMaxSubscriptionId) return std::nullopt;
    out.push_back(id);
  }
  return out;
}

bool valid_user_properties(std::string_view bytes) {
  for (std::size_t i = 0; i < bytes.size();) {
    const std::size_t n = mqtt::detail::property_size(bytes, i);
    if (n == 0) return false;
    if (static_cast<std::uint8_t>(bytes[i]) == 0x26) {
      const std::size_t key_length = mqtt::detail::read_u16(bytes.data() + i + 1);
      const std::size_t value_length = mqtt::detail::read_u16(bytes.data() + i + 3 + key_length);
      if (!is_valid_mqtt_utf8(bytes.substr(i + 3, key_length)) ||
          !is_valid_mqtt_utf8(bytes.substr(i + 5 + key_length, value_length)))
        return false;
    }
    i += n;
  }
  return true;
}

std::string encode_queue_entry(const broker::QueuedRecord& r, std::optional<std::int64_t> expires_at_ms) {
  const broker::Message* m = r.message.get();
  std::uint8_t bits = 0;
  std::size_t size = 8 + varint_size(r.subscription_ids.size()) + 4 * r.subscription_ids.size();
  if (m != nullptr) {
    bits |= kHasMessage;
    size += 2 + varint_size(m->topic.size()) + m->topic.size() + varint_size(m->payload.size()) + m->payload.size();
    if (m->payload_format_indicator) bits |= kHasPayloadFormat, size += 1;
    if (m->content_type) bits |= kHasContentType, size += 5 + m->content_type->size();
    if (m->response_topic) bits |= kHasResponseTopic, size += 5 + m->response_topic->size();
    if (m->correlation_data) bits |= kHasCorrelationData, size += 5 + m->correlation_data->size();
    if (!m->user_properties.empty()) bits |= kHasUserProperties, size += 5 + m->user_properties.size();
    if (expires_at_ms) bits |= kHasExpiry, size += 8;
  }
  std::string out;
  out.reserve(size);
  out.push_back(static_cast<char>(kQueueEntryFormat));
  out.push_back(static_cast<char>(r.qos));
  out.push_back(static_cast<char>(r.retain ? 1 : 0));
  out.push_back(static_cast<char>(r.stage));
  put_u16(out, r.packet_id);
  out.push_back(static_cast<char>(bits));
  put_varint(out, r.subscription_ids.size());
  for (std::uint32_t id : r.subscription_ids) put_u32(out, id);
  if (m == nullptr) return out;
  out.push_back(static_cast<char>(m->qos));
  out.push_back(static_cast<char>(m->retain ? 1 : 0));
  put_bytes(out, m->topic);
  put_bytes(out, m->payload);
  if (m->payload_format_indicator) out.push_back(static_cast<char>(*m->payload_format_indicator));
  if (m->content_type) put_bytes(out, *m->content_type);
  if (m->response_topic) put_bytes(out, *m->response_topic);
  if (m->correlation_data) put_bytes(out, *m->correlation_data);
  if (!m->user_properties.empty()) put_bytes(out, m->user_properties);
  if (expires_at_ms) {
    const auto v = static_cast<std::uint64_t>(*expires_at_ms);
    put_u32(out, static_cast<std::uint32_t>(v >> 32));
    put_u32(out, static_cast<std::uint32_t>(v & 0xFFFFFFFFU));
  }
  return out;
}

std::optional<QueueEntry> decode_queue_entry(std::string_view bytes, std::string& problem) {
  using Stage = broker::QueuedRecord::Stage;
  auto fail = [&](const char* why) -> std::optional<QueueEntry> {
    problem = why;
    return std::nullopt;
  };
  Cursor in(bytes);
  if (in.u8() != kQueueEntryFormat) return fail("unknown queue entry format");
  QueueEntry e;
  broker::QueuedRecord& r = e.record;
  const std::uint8_t qos = in.u8();
  const std::uint8_t retain = in.u8();
  const std::uint8_t stage = in.u8();
  r.packet_id = in.u16();
  const std::uint8_t bits = in.u8();
  const std::size_t ids = in.varint();
  if (!in.ok()) return fail("queue entry is truncated");
  if (qos > 2) return fail("qos out of range");
  if (retain > 1) return fail("retain out of range");
  if (stage > 3) return fail("stage out of range");
  if ((bits & 0x80U) != 0) return fail("unknown fields in queue entry");
  r.qos = static_cast<mqtt::QoS>(qos);
  r.retain = retain != 0;
  r.stage = static_cast<Stage>(stage);
  // The stage, QoS and packet id must tell one consistent story, or the broker would
  // resume a flow that cannot exist.
  const bool consistent = r.stage == Stage::queued ? r.packet_id == 0
                          : r.stage == Stage::awaiting_puback
                              ? r.qos == mqtt::QoS::at_least_once && r.packet_id != 0
                              : r.qos == mqtt::QoS::exactly_once && r.packet_id != 0;
  if (!consistent) return fail("stage, qos and packet id disagree");
  if (ids > bytes.size() / 4) return fail("subscription ids are malformed");
  r.subscription_ids.reserve(ids);
  for (std::size_t i = 0; i < ids; ++i) {
    const std::uint32_t id = in.u32();
    if (id == 0 || id > kMaxSubscriptionId) return fail("subscription ids are malformed");
    r.subscription_ids.push_back(id);
  }
  if ((bits & kHasMessage) == 0) {
    if (bits != 0) return fail("message fields without a message");
    if (r.stage != Stage::awaiting_pubcomp) return fail("no message");
    if (!in.ok() || !in.at_end()) return fail("queue entry is malformed");
    return e;
  }
  auto m = std::make_shared<broker::Message>();
  const std::uint8_t message_qos = in.u8();
  const std::uint8_t message_retain = in.u8();
  m->topic = in.bytes();
  m->payload = in.bytes();
  if ((bits & kHasPayloadFormat) != 0) m->payload_format_indicator = in.u8();
  if ((bits & kHasContentType) != 0) m->content_type = in.bytes();
  if ((bits & kHasResponseTopic) != 0) m->response_topic = in.bytes();
  if ((bits & kHasCorrelationData) != 0) m->correlation_data = in.bytes();
  if ((bits & kHasUserProperties) != 0) m->user_properties = in.bytes();
  if ((bits & kHasExpiry) != 0) e.expires_at_ms = in.i64();
  if (!in.ok() || !in.at_end()) return fail("queue entry is malformed");
  if (message_qos > 2) return fail("message qos out of range");
  if (message_retain > 1) return fail("message retain out of range");
  m->qos = static_cast<mqtt::QoS>(message_qos);
  m->retain = message_retain != 0;
  if (!is_valid_mqtt_utf8(m->topic) || !is_valid_topic_name(m->topic)) return fail("topic is not a valid topic name");
  if (m->payload_format_indicator && *m->payload_format_indicator > 1) return fail("payload format out of range");
  if (m->content_type && !is_valid_mqtt_utf8(*m->content_type)) return fail("content type is not valid UTF-8");
  if (m->response_topic && (!is_valid_mqtt_utf8(*m->response_topic) || !is_valid_topic_name(*m->response_topic)))
    return fail("response topic is not a valid topic name");
  if (!valid_user_properties(m->user_properties)) return fail("user properties are malformed");
  r.message = std::move(m);
  return e;
}

}  // namespace tern::store::records
