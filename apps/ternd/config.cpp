#include "config.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <toml++/toml.h>
#include <utility>

#include "config_security.hpp"
#include "core/topic.hpp"

namespace tern::ternd {
namespace {

using Result = Expected<void, std::string>;

std::string_view type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

// Where a key or value is, for error messages: "FILE:LINE".
class Source {
 public:
  explicit Source(std::string_view name) : name_(name) {}
  std::string at(const toml::source_region& region) const {
    return fmt::format("{}:{}", name_, region.begin.line);
  }
  std::string at(const toml::node& node) const { return at(node.source()); }

 private:
  std::string_view name_;
};

using FieldReader = std::function<Result(const toml::node&)>;
struct Field {
  std::string_view key;
  FieldReader read;
};

std::string allowed_keys(const std::vector<Field>& fields) {
  std::string out;
  for (const auto& f : fields) {
    if (!out.empty()) out += ", ";
    out += f.key;
  }
  return out;
}

std::string join_path(std::string_view prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : fmt::format("{}.{}", prefix, key);
}

Result read_fields(const Source& src, const toml::table& table, std::string_view prefix,
                   const std::vector<Field>& fields) {
  for (auto&& [key, node] : table) {
    const auto it = std::find_if(fields.begin(), fields.end(),
                                 [&key = key](const Field& f) { return f.key == key.str(); });
    if (it == fields.end()) {
      return make_unexpected(fmt::format("{}: unknown key '{}' (allowed keys: {})", src.at(key.source()),
                                         join_path(prefix, key.str()), allowed_keys(fields)));
    }
    if (auto r = it->read(node); !r) return r;
  }
  return {};
}

Result wrong_type(const Source& src, const toml::node& node, std::string_view path, std::string_view expected) {
  return make_unexpected(
      fmt::format("{}: {} must be {} (got {})", src.at(node), path, expected, type_name(node)));
}

template <class T>
FieldReader integer_field(const Source& src, std::string path, std::int64_t min, std::int64_t max, T& out) {
  return [&src, path = std::move(path), min, max, &out](const toml::node& node) -> Result {
    const auto* value = node.as_integer();
    if (value == nullptr) return wrong_type(src, node, path, "an integer");
    const std::int64_t v = value->get();
    if (v < min || v > max) {
      return make_unexpected(
          fmt::format("{}: {} must be between {} and {} (got {})", src.at(node), path, min, max, v));
    }
    out = static_cast<T>(v);
    return {};
  };
}

FieldReader bool_field(const Source& src, std::string path, bool& out) {
  return [&src, path = std::move(path), &out](const toml::node& node) -> Result {
    const auto* value = node.as_boolean();
    if (value == nullptr) return wrong_type(src, node, path, "true or false");
    out = value->get();
    return {};
  };
}

// Reads a string and hands it to `accept`, which stores it or returns what is wrong with
// it (the text after the key's path, e.g. "must not be empty").
using StringAcceptor = std::function<std::optional<std::string>(const std::string&)>;
FieldReader string_field(const Source& src, std::string path, StringAcceptor accept) {
  return [&src, path = std::move(path), accept = std::move(accept)](const toml::node& node) -> Result {
    const auto* value = node.as_string();
    if (value == nullptr) return wrong_type(src, node, path, "a string");
    if (auto problem = accept(value->get())) {
      return make_unexpected(fmt::format("{}: {} {}", src.at(node), path, *problem));
    }
    return {};
  };
}

// A table-valued key: `read` receives the table.
FieldReader table_field(const Source& src, std::string path, std::function<Result(const toml::table&)> read) {
  return [&src, path = std::move(path), read = std::move(read)](const toml::node& node) -> Result {
    const auto* table = node.as_table();
    if (table == nullptr) return wrong_type(src, node, path, "a table");
    return read(*table);
  };
}

constexpr std::int64_t kMaxBytes = std::int64_t{1} << 40;  // 1 TiB: beyond any edge device
constexpr std::int64_t kMaxThreads = 64;  // net::Server's limit
constexpr std::string_view kLogLevels = "debug, info, warning, error";
constexpr std::string_view kQueueFullPolicies = "drop_new, drop_oldest, disconnect";

std::optional<std::string> check_node_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return "must be 1 to 64 characters long";
  for (const char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7E || c == '/' || c == '+' || c == '#') {
      return fmt::format("must be printable ASCII without spaces, '/', '+' or '#' (got \"{}\")", name);
    }
  }
  return std::nullopt;
}

std::optional<broker::QueueFullPolicy> parse_queue_full_policy(std::string_view text) {
  if (text == "drop_new") return broker::QueueFullPolicy::drop_new;
  if (text == "drop_oldest") return broker::QueueFullPolicy::drop_oldest;
  if (text == "disconnect") return broker::QueueFullPolicy::disconnect;
  return std::nullopt;
}

std::string_view queue_full_policy_name(broker::QueueFullPolicy policy) {
  switch (policy) {
    case broker::QueueFullPolicy::drop_new: return "drop_new";
    case broker::QueueFullPolicy::drop_oldest: return "drop_oldest";
    case broker::QueueFullPolicy::disconnect: return "disconnect";
  }
  return "drop_oldest";
}

bool is_hostname(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

bool is_ip_literal(int family, const std::string& host) {
  std::array<unsigned char, 16> out{};
  return ::inet_pton(family, host.c_str(), out.data()) == 1;
}

std::optional<net::Transport> parse_transport(std::string_view text) {
  if (text == "tcp") return net::Transport::tcp;
  if (text == "tls") return net::Transport::tls;
  if (text == "ws") return net::Transport::ws;
  if (text == "wss") return net::Transport::wss;
  return std::nullopt;
}

std::optional<net::ClientCertificates> parse_client_certificates(std::string_view text) {
  if (text == "none") return net::ClientCertificates::none;
  if (text == "optional") return net::ClientCertificates::optional;
  if (text == "required") return net::ClientCertificates::required;
  return std::nullopt;
}

// What a listener's keys must agree on, e.g. a TLS listener needs a certificate or PSKs.
std::optional<std::string> check_listener(const net::ListenerConfig& l) {
  const bool tls = net::uses_tls(l.transport);
  const auto name = net::transport_name(l.transport);
  if (!tls) {
    if (!l.cert_file.empty() || !l.key_file.empty() || !l.ca_file.empty() || !l.crl_file.empty() ||
        !l.psk_file.empty() || l.client_certificates != net::ClientCertificates::none) {
      return fmt::format("is a {} listener: cert, key, ca, crl, psk_file and client_certificates need "
                         "transport = \"tls\" or \"wss\"",
                         name);
    }
  }
  if (!net::uses_websocket(l.transport) && l.ws_path != "/mqtt") {
    return "ws_path needs transport = \"ws\" or \"wss\"";
  }
  if (l.cert_file.empty() != l.key_file.empty()) return "needs both cert and key, or neither";
  if (tls && l.cert_file.empty() && l.psk_file.empty()) {
    return fmt::format("is a {} listener and needs cert and key{}", name,
                       l.transport == net::Transport::tls ? " (or psk_file)" : "");
  }
  if (l.transport == net::Transport::wss && !l.psk_file.empty()) return "psk_file needs transport = \"tls\"";
  if (l.client_certificates != net::ClientCertificates::none && l.ca_file.empty()) {
    return "client_certificates needs ca (the CA file that client certificates must chain to)";
  }
  if (l.client_certificates != net::ClientCertificates::none && l.cert_file.empty()) {
    return "client_certificates needs cert and key";
  }
  if (!l.crl_file.empty() && l.client_certificates == net::ClientCertificates::none) {
    return "crl needs client_certificates = \"optional\" or \"required\"";
  }
  return std::nullopt;
}

Result read_listeners(const Source& src, const toml::node& node, std::vector<net::ListenerConfig>& out) {
  const auto* array = node.as_array();
  if (array == nullptr) return wrong_type(src, node, "listener", "an array of tables ([[listener]])");
  if (array->empty()) return make_unexpected(fmt::format("{}: listener must not be empty", src.at(node)));
  std::vector<net::ListenerConfig> listeners;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    const std::string path = fmt::format("listener[{}]", i);
    const auto* table = element.as_table();
    if (table == nullptr) return wrong_type(src, element, path, "a table");
    net::ListenerConfig listener;
    bool has_address = false;
    const auto file_field = [&src, &path](std::string_view key, std::string& target) {
      return string_field(src, fmt::format("{}.{}", path, key), [&target](const std::string& text) -> std::optional<std::string> {
        if (text.empty()) return "must not be empty (leave the key out instead)";
        target = text;
        return std::nullopt;
      });
    };
    const std::vector<Field> fields{
        {"address", string_field(src, path + ".address", [&](const std::string& text) -> std::optional<std::string> {
           auto parsed = parse_listen_address(text);
           if (!parsed) return parsed.error();
           listener.host = parsed->host;
           listener.port = parsed->port;
           has_address = true;
           return std::nullopt;
         })},
        {"transport", string_field(src, path + ".transport", [&listener](const std::string& text) -> std::optional<std::string> {
           const auto t = parse_transport(text);
           if (!t) return fmt::format("must be one of tcp, tls, ws, wss (got \"{}\")", text);
           listener.transport = *t;
           return std::nullopt;
         })},
        {"cert", file_field("cert", listener.cert_file)},
        {"key", file_field("key", listener.key_file)},
        {"ca", file_field("ca", listener.ca_file)},
        {"crl", file_field("crl", listener.crl_file)},
        {"psk_file", file_field("psk_file", listener.psk_file)},
        {"client_certificates",
         string_field(src, path + ".client_certificates", [&listener](const std::string& text) -> std::optional<std::string> {
           const auto c = parse_client_certificates(text);
           if (!c) return fmt::format("must be one of none, optional, required (got \"{}\")", text);
           listener.client_certificates = *c;
           return std::nullopt;
         })},
        {"handshake_timeout_ms", integer_field(src, path + ".handshake_timeout_ms", 100, 300000, listener.handshake_timeout_ms)},
        {"ws_path", string_field(src, path + ".ws_path", [&listener](const std::string& text) -> std::optional<std::string> {
           if (text.empty() || text.front() != '/' || text.size() > 256 ||
               std::any_of(text.begin(), text.end(), [](char c) { return c <= ' ' || c == '?' || c == 0x7F; })) {
             return fmt::format("must be an HTTP path starting with '/', without spaces or '?' (got \"{}\")", text);
           }
           listener.ws_path = text;
           return std::nullopt;
         })},
    };
    if (auto r = read_fields(src, *table, path, fields); !r) return r;
    if (!has_address) {
      return make_unexpected(fmt::format("{}: {} needs an address, e.g. address = \"127.0.0.1:1883\"",
                                         src.at(element), path));
    }
    if (auto problem = check_listener(listener)) {
      return make_unexpected(fmt::format("{}: {} {}", src.at(element), path, *problem));
    }
    listeners.push_back(std::move(listener));
  }
  out = std::move(listeners);
  return {};
}

// A stream's name is one topic level of "$tern/streams/{name}/read".
std::optional<std::string> check_stream_name(const std::string& name) { return check_node_name(name); }

Result read_streams(const Source& src, const toml::node& node, std::vector<broker::StreamConfig>& out) {
  const auto* array = node.as_array();
  if (array == nullptr) return wrong_type(src, node, "stream", "an array of tables ([[stream]])");
  std::vector<broker::StreamConfig> streams;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    const std::string path = fmt::format("stream[{}]", i);
    const auto* table = element.as_table();
    if (table == nullptr) return wrong_type(src, element, path, "a table");
    broker::StreamConfig stream;
    std::int64_t max_age_s = 0;
    const std::vector<Field> fields{
        {"name", string_field(src, path + ".name", [&](const std::string& text) -> std::optional<std::string> {
           if (auto problem = check_stream_name(text)) return problem;
           for (const auto& other : streams) {
             if (other.name == text) return fmt::format("\"{}\" is already the name of another stream", text);
           }
           stream.name = text;
           return std::nullopt;
         })},
        {"filter", string_field(src, path + ".filter", [&stream](const std::string& text) -> std::optional<std::string> {
           if (!is_valid_topic_filter(text)) return fmt::format("\"{}\" is not a valid MQTT topic filter", text);
           stream.filter = text;
           return std::nullopt;
         })},
        {"max_age_s", integer_field(src, path + ".max_age_s", 0, 100LL * 365 * 24 * 3600, max_age_s)},
        {"max_bytes", integer_field(src, path + ".max_bytes", 0, kMaxBytes, stream.max_bytes)},
    };
    if (auto r = read_fields(src, *table, path, fields); !r) return r;
    if (stream.name.empty() || stream.filter.empty()) {
      return make_unexpected(fmt::format("{}: {} needs a name and a filter, e.g. name = \"sensors\" and "
                                         "filter = \"sensors/#\"",
                                         src.at(element), path));
    }
    stream.max_age = std::chrono::seconds(max_age_s);
    streams.push_back(std::move(stream));
  }
  out = std::move(streams);
  return {};
}

}  // namespace

std::optional<Durability> parse_durability_name(std::string_view text) {
  if (text == "fsync") return Durability::fsync;
  if (text == "batch") return Durability::batch;
  if (text == "memory") return Durability::memory;
  return std::nullopt;
}

std::string_view durability_name(Durability d) {
  switch (d) {
    case Durability::fsync: return "fsync";
    case Durability::batch: return "batch";
    case Durability::memory: return "memory";
  }
  return "fsync";
}

std::optional<log::Level> parse_log_level_name(std::string_view text) {
  if (text == "debug") return log::Level::debug;
  if (text == "info") return log::Level::info;
  if (text == "warning") return log::Level::warning;
  if (text == "error") return log::Level::error;
  return std::nullopt;
}

std::string_view log_level_name(log::Level level) {
  switch (level) {
    case log::Level::debug: return "debug";
    case log::Level::info: return "info";
    case log::Level::warning: return "warning";
    case log::Level::error: return "error";
    case log::Level::off: return "off";
  }
  return "info";
}

Expected<net::ListenerConfig, std::string> parse_listen_address(std::string_view text) {
  const auto bad = [&text] {
    return make_unexpected(
        fmt::format("'{}' is not HOST:PORT (e.g. 127.0.0.1:1883, [::1]:1883, localhost:1883)", text));
  };
  std::string host;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return bad();
    host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
    if (!is_ip_literal(AF_INET6, host)) {
      return make_unexpected(fmt::format("'{}' in '{}' is not an IPv6 address", host, text));
    }
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad();
    host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) {
      return make_unexpected(fmt::format("'{}': an IPv6 address needs brackets, e.g. [::1]:1883", text));
    }
    if (!is_ip_literal(AF_INET, host) && !is_hostname(host)) {
      return make_unexpected(fmt::format("'{}' in '{}' is neither an IPv4 address nor a host name", host, text));
    }
  }
  std::uint32_t value = 0;
  const bool digits = !port.empty() && port.size() <= 5 &&
                      std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits) {
    for (const char c : port) value = value * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (!digits || value > 65535) {
    return make_unexpected(
        fmt::format("port '{}' in '{}' must be a number between 0 and 65535", port, text));
  }
  net::ListenerConfig listener;
  listener.host = std::move(host);
  listener.port = static_cast<std::uint16_t>(value);
  return listener;
}

std::string format_listen_address(const net::ListenerConfig& listener) {
  if (listener.host.find(':') != std::string::npos) return fmt::format("[{}]:{}", listener.host, listener.port);
  return fmt::format("{}:{}", listener.host, listener.port);
}

Expected<Config, std::string> parse_config(std::string_view text, std::string_view source_name) {
  // TOML allows no raw control character but tab and line ends anywhere; saying which one
  // and where is clearer than the parser's message about whatever it was parsing.
  std::size_t line = 1;
  std::size_t column = 1;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t' && c != '\n' && c != '\r') || u == 0x7F) {
      return make_unexpected(fmt::format("{}:{}:{}: control character U+{:04X} is not allowed in TOML",
                                         source_name, line, column, static_cast<unsigned>(u)));
    }
    if (c == '\n') {
      ++line;
      column = 1;
    } else if ((u & 0xC0) != 0x80) {  // count code points, not UTF-8 continuation bytes
      ++column;
    }
  }

  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    return make_unexpected(fmt::format("{}:{}:{}: {}", source_name, e.source().begin.line,
                                       e.source().begin.column, e.description()));
  }

  Config config;
  const Source src(source_name);
  broker::BrokerConfig& b = config.broker;
  std::int64_t connect_timeout_ms = b.connect_timeout.count();
  std::int64_t sys_interval_s = b.sys_interval.count();

  std::int64_t threads = config.threads;
  StoreSettings& st = config.store;
  const std::vector<Field> store_fields{
      {"commit_interval_ms", integer_field(src, "store.commit_interval_ms", 0, 10'000, st.commit_interval_ms)},
      {"commit_bytes", integer_field(src, "store.commit_bytes", 1024, 64LL * 1024 * 1024, st.commit_bytes)},
      {"commit_delay_ms", integer_field(src, "store.commit_delay_ms", 0, 1'000, st.commit_delay_ms)},
      {"page_size", integer_field(src, "store.page_size", 512, 65536, st.page_size)},
  };
  const std::vector<Field> limits{
      {"max_connections", integer_field(src, "limits.max_connections", 1, 10'000'000, b.max_connections)},
      {"max_packet_size", integer_field(src, "limits.max_packet_size", 16, 268'435'455, b.max_packet_size)},
      {"receive_maximum", integer_field(src, "limits.receive_maximum", 1, 65535, b.receive_maximum)},
      {"max_inflight_out", integer_field(src, "limits.max_inflight_out", 1, 65535, b.max_inflight_out)},
      {"max_queued_messages", integer_field(src, "limits.max_queued_messages", 1, 100'000'000, b.max_queued_messages)},
      {"max_queued_bytes", integer_field(src, "limits.max_queued_bytes", 1024, kMaxBytes, b.max_queued_bytes)},
      {"queue_full_policy",
       string_field(src, "limits.queue_full_policy", [&b](const std::string& s) -> std::optional<std::string> {
         const auto policy = parse_queue_full_policy(s);
         if (!policy) return fmt::format("must be one of {} (got \"{}\")", kQueueFullPolicies, s);
         b.queue_full_policy = *policy;
         return std::nullopt;
       })},
      {"max_keep_alive", integer_field(src, "limits.max_keep_alive", 1, 65535, b.max_keep_alive)},
      {"topic_alias_maximum", integer_field(src, "limits.topic_alias_maximum", 0, 65535, b.topic_alias_maximum)},
      {"max_session_expiry", integer_field(src, "limits.max_session_expiry", 0, 4'294'967'295, b.max_session_expiry)},
      {"connect_timeout_ms", integer_field(src, "limits.connect_timeout_ms", 100, 3'600'000, connect_timeout_ms)},
      {"max_write_queue_bytes", integer_field(src, "limits.max_write_queue_bytes", 1024, kMaxBytes, b.max_write_queue_bytes)},
      {"max_stream_read", integer_field(src, "limits.max_stream_read", 1, 1'000'000, b.max_stream_read)},
  };
  const std::vector<Field> features{
      {"retain_available", bool_field(src, "features.retain_available", b.retain_available)},
      {"wildcard_subscriptions", bool_field(src, "features.wildcard_subscriptions", b.wildcard_subscriptions)},
      {"shared_subscriptions", bool_field(src, "features.shared_subscriptions", b.shared_subscriptions)},
      {"subscription_identifiers", bool_field(src, "features.subscription_identifiers", b.subscription_identifiers)},
  };
  const std::vector<Field> sys{
      {"interval_s", integer_field(src, "sys.interval_s", 1, 86400, sys_interval_s)},
  };
  AdminSettings& a = config.admin;
  std::int64_t queue_depth = 0, store_latency_ms = 0, memory_mb = 0;
  double drop_rate = 0;
  bool has_queue_depth = false, has_drop_rate = false, has_store_latency = false, has_memory = false;
  const std::vector<Field> admin{
      {"listen", string_field(src, "admin.listen", [&a](const std::string& s) -> std::optional<std::string> {
         if (!s.empty()) {
           if (auto parsed = parse_listen_address(s); !parsed) return parsed.error();
         }
         a.listen = s;
         return std::nullopt;
       })},
      {"token", string_field(src, "admin.token", [&a](const std::string& s) -> std::optional<std::string> {
         a.token = s;
         return std::nullopt;
       })},
      {"max_connections", integer_field(src, "admin.max_connections", 1, 1024, a.max_connections)},
      {"cert", string_field(src, "admin.cert", [&a](const std::string& s) -> std::optional<std::string> {
         if (s.empty()) return "must not be empty (leave out cert and key to serve plain HTTP)";
         a.cert_file = s;
         return std::nullopt;
       })},
      {"key", string_field(src, "admin.key", [&a](const std::string& s) -> std::optional<std::string> {
         if (s.empty()) return "must not be empty (leave out cert and key to serve plain HTTP)";
         a.key_file = s;
         return std::nullopt;
       })},
  };
  const std::vector<Field> log_fields{
      {"ring_lines", integer_field(src, "log.ring_lines", 0, 1'000'000, a.log_ring_lines)},
      {"error_file", string_field(src, "log.error_file", [&a](const std::string& s) -> std::optional<std::string> {
         if (s.empty()) return "must not be empty (leave it out to keep error lines in RAM only)";
         a.log_error_file = s;
         return std::nullopt;
       })},
      {"error_file_max_bytes", integer_field(src, "log.error_file_max_bytes", 4096, kMaxBytes, a.log_error_file_max_bytes)},
      {"error_file_keep", integer_field(src, "log.error_file_keep", 0, 100, a.log_error_file_keep)},
      {"forward_level", string_field(src, "log.forward_level", [&a](const std::string& s) -> std::optional<std::string> {
         const auto level = parse_log_level_name(s);
         if (!level) return fmt::format("must be one of {} (got \"{}\")", kLogLevels, s);
         a.log_forward_level = *level;
         return std::nullopt;
       })},
  };
  const std::vector<Field> alerts{
      {"interval_ms", integer_field(src, "alerts.interval_ms", 10, 3'600'000, a.alert_interval_ms)},
      {"queue_depth", [&](const toml::node& n) { has_queue_depth = true; return integer_field(src, "alerts.queue_depth", 0, kMaxBytes, queue_depth)(n); }},
      {"store_latency_ms", [&](const toml::node& n) { has_store_latency = true; return integer_field(src, "alerts.store_latency_ms", 0, 3'600'000, store_latency_ms)(n); }},
      {"memory_mb", [&](const toml::node& n) { has_memory = true; return integer_field(src, "alerts.memory_mb", 1, 1'000'000, memory_mb)(n); }},
      {"drop_rate", [&](const toml::node& n) -> Result {
         has_drop_rate = true;
         const auto v = n.value<double>();
         if (!v || !(n.is_integer() || n.is_floating_point())) return wrong_type(src, n, "alerts.drop_rate", "a number");
         if (!std::isfinite(*v) || *v < 0) {
           return make_unexpected(
               fmt::format("{}: alerts.drop_rate must be a number of at least 0 (got {})", src.at(n), *v));
         }
         drop_rate = *v;
         return {};
       }},
  };
  const std::vector<Field> top{
      {"node_name", string_field(src, "node_name", [&b](const std::string& s) -> std::optional<std::string> {
         if (auto problem = check_node_name(s)) return problem;
         b.node_name = s;
         return std::nullopt;
       })},
      {"log_level", string_field(src, "log_level", [&config](const std::string& s) -> std::optional<std::string> {
         const auto level = parse_log_level_name(s);
         if (!level) return fmt::format("must be one of {} (got \"{}\")", kLogLevels, s);
         config.log_level = *level;
         return std::nullopt;
       })},
      {"durability", string_field(src, "durability", [&config](const std::string& s) -> std::optional<std::string> {
         const auto d = parse_durability_name(s);
         if (!d) return fmt::format("must be one of fsync, batch, memory (got \"{}\")", s);
         config.durability = *d;
         return std::nullopt;
       })},
      {"data_dir", string_field(src, "data_dir", [&config](const std::string& s) -> std::optional<std::string> {
         if (s.empty()) return "must not be empty (leave it out to keep everything in memory)";
         config.data_dir = s;
         return std::nullopt;
       })},
      {"threads", integer_field(src, "threads", 1, kMaxThreads, threads)},
      {"listener", [&src, &config](const toml::node& node) { return read_listeners(src, node, config.listeners); }},
      {"stream", [&src, &b](const toml::node& node) { return read_streams(src, node, b.streams); }},
      {"limits", table_field(src, "limits", [&](const toml::table& t) { return read_fields(src, t, "limits", limits); })},
      {"store", table_field(src, "store", [&](const toml::table& t) -> Result {
         if (auto r = read_fields(src, t, "store", store_fields); !r) return r;
         if ((st.page_size & (st.page_size - 1)) != 0)
           return make_unexpected(fmt::format("{}: store.page_size must be a power of two from 512 to 65536 (got {})",
                                              src.at(t), st.page_size));
         return {};
       })},
      {"features",
       table_field(src, "features", [&](const toml::table& t) { return read_fields(src, t, "features", features); })},
      {"sys", table_field(src, "sys", [&](const toml::table& t) { return read_fields(src, t, "sys", sys); })},
      {"admin", table_field(src, "admin", [&](const toml::table& t) -> Result {
         if (auto r = read_fields(src, t, "admin", admin); !r) return r;
         if (a.cert_file.empty() != a.key_file.empty()) {
           return make_unexpected(fmt::format("{}: admin needs both cert and key (HTTPS), or neither (HTTP)", src.at(t)));
         }
         return {};
       })},
      {"log", table_field(src, "log", [&](const toml::table& t) { return read_fields(src, t, "log", log_fields); })},
      {"alerts", table_field(src, "alerts", [&](const toml::table& t) { return read_fields(src, t, "alerts", alerts); })},
      {"tracing", [&](const toml::node& node) { return read_tracing_config(node, source_name, config.tracing); }},
      {"security", [&](const toml::node& node) { return read_security_table(node, source_name, config.security); }},
  };
  if (auto r = read_fields(src, root, "", top); !r) return make_unexpected(r.error());
  b.connect_timeout = std::chrono::milliseconds(connect_timeout_ms);
  config.threads = static_cast<unsigned>(threads);
  b.sys_interval = std::chrono::seconds(sys_interval_s);
  if (has_queue_depth) a.alert_queue_depth = static_cast<std::uint64_t>(queue_depth);
  if (has_drop_rate) a.alert_drop_rate = drop_rate;
  if (has_store_latency) a.alert_store_latency_ms = static_cast<std::uint64_t>(store_latency_ms);
  if (has_memory) a.alert_memory_mb = static_cast<std::uint64_t>(memory_mb);
  return config;
}

Expected<Config, std::string> load_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_unexpected(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return make_unexpected(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  return parse_config(text.str(), path);
}

Expected<void, std::string> apply_overrides(Config& config, const Overrides& overrides) {
  if (!overrides.listen.empty()) {
    std::vector<net::ListenerConfig> listeners;
    for (const auto& text : overrides.listen) {
      auto parsed = parse_listen_address(text);
      if (!parsed) return make_unexpected("--listen: " + parsed.error());
      listeners.push_back(*parsed);
    }
    config.listeners = std::move(listeners);
  }
  if (overrides.admin) {
    if (!overrides.admin->empty()) {
      if (auto parsed = parse_listen_address(*overrides.admin); !parsed) return make_unexpected("--admin: " + parsed.error());
    }
    config.admin.listen = *overrides.admin;
  }
  if (overrides.admin_cert || overrides.admin_key) {
    if (overrides.admin_cert && overrides.admin_cert->empty()) return make_unexpected(std::string("--admin-cert must not be empty"));
    if (overrides.admin_key && overrides.admin_key->empty()) return make_unexpected(std::string("--admin-key must not be empty"));
    if (overrides.admin_cert) config.admin.cert_file = *overrides.admin_cert;
    if (overrides.admin_key) config.admin.key_file = *overrides.admin_key;
    if (config.admin.cert_file.empty() != config.admin.key_file.empty()) {
      return make_unexpected(std::string("the admin endpoint needs both a certificate and a key for HTTPS "
                                         "(--admin-cert and --admin-key, or [admin] cert and key)"));
    }
  }
  if (overrides.threads) {
    if (*overrides.threads < 1 || *overrides.threads > kMaxThreads) {
      return make_unexpected(fmt::format("--threads must be between 1 and {} (got {})", kMaxThreads, *overrides.threads));
    }
    config.threads = static_cast<unsigned>(*overrides.threads);
  }
  if (overrides.data_dir) {
    if (overrides.data_dir->empty()) return make_unexpected(std::string("--data-dir must not be empty"));
    config.data_dir = *overrides.data_dir;
  }
  if (overrides.durability) {
    const auto d = parse_durability_name(*overrides.durability);
    if (!d) {
      return make_unexpected(
          fmt::format("--durability must be one of fsync, batch, memory (got \"{}\")", *overrides.durability));
    }
    config.durability = *d;
  }
  if (overrides.log_level) {
    const auto level = parse_log_level_name(*overrides.log_level);
    if (!level) {
      return make_unexpected(
          fmt::format("--log-level must be one of {} (got \"{}\")", kLogLevels, *overrides.log_level));
    }
    config.log_level = *level;
  }
  return {};
}

Expected<Config, std::string> resolve_config(const Overrides& overrides) {
  Config config;
  if (overrides.config_file) {
    auto loaded = load_config_file(*overrides.config_file);
    if (!loaded) return make_unexpected(loaded.error());
    config = std::move(*loaded);
  }
  if (auto r = apply_overrides(config, overrides); !r) return make_unexpected(r.error());
  return config;
}

namespace {

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7F) {
      out += fmt::format("\\u{:04X}", static_cast<unsigned>(u));
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

std::string listener_toml(const net::ListenerConfig& listener) {
  std::string out = fmt::format("\n[[listener]]\naddress = {}\n", quoted(format_listen_address(listener)));
  if (listener.transport == net::Transport::tcp) return out;
  out += fmt::format("transport = {}\n", quoted(net::transport_name(listener.transport)));
  const auto file = [&out](std::string_view key, const std::string& value) {
    if (!value.empty()) out += fmt::format("{} = {}\n", key, quoted(value));
  };
  file("cert", listener.cert_file);
  file("key", listener.key_file);
  file("ca", listener.ca_file);
  file("crl", listener.crl_file);
  file("psk_file", listener.psk_file);
  if (net::uses_tls(listener.transport)) {
    out += fmt::format("client_certificates = {}\n", quoted(net::client_certificates_name(listener.client_certificates)));
  }
  out += fmt::format("handshake_timeout_ms = {}\n", listener.handshake_timeout_ms);
  if (net::uses_websocket(listener.transport)) out += fmt::format("ws_path = {}\n", quoted(listener.ws_path));
  return out;
}

}  // namespace

std::string to_toml(const Config& config) {
  const broker::BrokerConfig& b = config.broker;
  std::string out;
  out += fmt::format("node_name = {}\n", quoted(b.node_name));
  out += fmt::format("log_level = {}\n", quoted(log_level_name(config.log_level)));
  if (!config.data_dir.empty()) out += fmt::format("data_dir = {}\n", quoted(config.data_dir));
  out += fmt::format("durability = {}\n", quoted(durability_name(config.durability)));
  out += fmt::format("threads = {}\n", config.threads);
  for (const auto& listener : config.listeners) out += listener_toml(listener);
  for (const auto& stream : b.streams) {
    out += fmt::format("\n[[stream]]\nname = {}\nfilter = {}\nmax_age_s = {}\nmax_bytes = {}\n", quoted(stream.name),
                       quoted(stream.filter), stream.max_age.count(), stream.max_bytes);
  }
  out += fmt::format("\n[store]\ncommit_interval_ms = {}\ncommit_bytes = {}\ncommit_delay_ms = {}\npage_size = {}\n",
                     config.store.commit_interval_ms, config.store.commit_bytes, config.store.commit_delay_ms,
                     config.store.page_size);
  out += "\n[limits]\n";
  out += fmt::format("max_connections = {}\n", b.max_connections);
  out += fmt::format("max_packet_size = {}\n", b.max_packet_size);
  out += fmt::format("receive_maximum = {}\n", b.receive_maximum);
  out += fmt::format("max_inflight_out = {}\n", b.max_inflight_out);
  out += fmt::format("max_queued_messages = {}\n", b.max_queued_messages);
  out += fmt::format("max_queued_bytes = {}\n", b.max_queued_bytes);
  out += fmt::format("queue_full_policy = {}\n", quoted(queue_full_policy_name(b.queue_full_policy)));
  out += fmt::format("max_keep_alive = {}\n", b.max_keep_alive);
  out += fmt::format("topic_alias_maximum = {}\n", b.topic_alias_maximum);
  out += fmt::format("max_session_expiry = {}\n", b.max_session_expiry);
  out += fmt::format("connect_timeout_ms = {}\n", b.connect_timeout.count());
  out += fmt::format("max_write_queue_bytes = {}\n", b.max_write_queue_bytes);
  out += fmt::format("max_stream_read = {}\n", b.max_stream_read);
  out += "\n[features]\n";
  out += fmt::format("retain_available = {}\n", b.retain_available);
  out += fmt::format("wildcard_subscriptions = {}\n", b.wildcard_subscriptions);
  out += fmt::format("shared_subscriptions = {}\n", b.shared_subscriptions);
  out += fmt::format("subscription_identifiers = {}\n", b.subscription_identifiers);
  out += "\n[sys]\n";
  out += fmt::format("interval_s = {}\n", b.sys_interval.count());
  const AdminSettings& a = config.admin;
  out += "\n[admin]\n";
  out += fmt::format("listen = {}\n", quoted(a.listen));
  if (!a.token.empty()) out += fmt::format("token = {}\n", quoted(a.token));
  if (!a.cert_file.empty()) out += fmt::format("cert = {}\nkey = {}\n", quoted(a.cert_file), quoted(a.key_file));
  out += fmt::format("max_connections = {}\n", a.max_connections);
  out += "\n[log]\n";
  out += fmt::format("ring_lines = {}\n", a.log_ring_lines);
  if (a.log_forward_level) out += fmt::format("forward_level = {}\n", quoted(log_level_name(*a.log_forward_level)));
  if (!a.log_error_file.empty()) {
    out += fmt::format("error_file = {}\nerror_file_max_bytes = {}\nerror_file_keep = {}\n", quoted(a.log_error_file),
                       a.log_error_file_max_bytes, a.log_error_file_keep);
  }
  out += "\n[alerts]\n";
  out += fmt::format("interval_ms = {}\n", a.alert_interval_ms);
  if (a.alert_queue_depth) out += fmt::format("queue_depth = {}\n", *a.alert_queue_depth);
  if (a.alert_drop_rate) {
    std::string rate = fmt::format("{}", *a.alert_drop_rate);
    if (rate.find_first_of(".e") == std::string::npos) rate += ".0";  // a TOML float, not an integer
    out += fmt::format("drop_rate = {}\n", rate);
  }
  if (a.alert_store_latency_ms) out += fmt::format("store_latency_ms = {}\n", *a.alert_store_latency_ms);
  if (a.alert_memory_mb) out += fmt::format("memory_mb = {}\n", *a.alert_memory_mb);
  out += tracing_toml(config.tracing);
  out += security_to_toml(config.security);
  return out;
}

}  // namespace tern::ternd
