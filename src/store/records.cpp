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

}  // namespace tern::store::records
