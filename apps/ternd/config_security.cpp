#include "config_security.hpp"

#include <fmt/format.h>

#include <cmath>
#include <algorithm>
#include <functional>
#include <sstream>
#include <vector>

#include "core/topic.hpp"

namespace tern::ternd {
namespace {

using Result = Expected<void, std::string>;

class Reader {
 public:
  explicit Reader(std::string_view source_name) : source_(source_name) {}

  std::string at(const toml::node& node) const { return fmt::format("{}:{}", source_, node.source().begin.line); }

  Result error(const toml::node& node, std::string_view path, std::string_view what) const {
    return make_unexpected(fmt::format("{}: {} {}", at(node), path, what));
  }
  Result wrong_type(const toml::node& node, std::string_view path, std::string_view expected) const {
    return error(node, path, fmt::format("must be {}", expected));
  }

  using Handler = std::function<Result(const toml::node&, const std::string& path)>;
  struct Key {
    std::string_view name;
    Handler read;
  };
  Result table(const toml::node& node, const std::string& path, const std::vector<Key>& keys) const {
    const auto* t = node.as_table();
    if (t == nullptr) return wrong_type(node, path, "a table");
    for (auto&& [key, value] : *t) {
      const auto it = std::find_if(keys.begin(), keys.end(), [&k = key](const Key& c) { return c.name == k.str(); });
      const std::string sub = fmt::format("{}.{}", path, key.str());
      if (it == keys.end()) {
        std::string allowed;
        for (const auto& k : keys) allowed += (allowed.empty() ? "" : ", ") + std::string(k.name);
        return make_unexpected(fmt::format("{}:{}: unknown key '{}' (allowed keys: {})", source_, key.source().begin.line,
                                           sub, allowed));
      }
      if (auto r = it->read(value, sub); !r) return r;
    }
    return {};
  }

  Handler string(std::string& out, bool may_be_empty = false) const {
    return [this, &out, may_be_empty](const toml::node& n, const std::string& path) -> Result {
      const auto* v = n.as_string();
      if (v == nullptr) return wrong_type(n, path, "a string");
      if (!may_be_empty && v->get().empty()) return error(n, path, "must not be empty");
      out = v->get();
      return {};
    };
  }
  Handler boolean(bool& out) const {
    return [this, &out](const toml::node& n, const std::string& path) -> Result {
      const auto* v = n.as_boolean();
      if (v == nullptr) return wrong_type(n, path, "true or false");
      out = v->get();
      return {};
    };
  }
  Handler count(std::uint64_t& out, std::int64_t max) const {
    return [this, &out, max](const toml::node& n, const std::string& path) -> Result {
      const auto* v = n.as_integer();
      if (v == nullptr) return wrong_type(n, path, "an integer");
      if (v->get() < 0 || v->get() > max) return error(n, path, fmt::format("must be between 0 and {} (got {})", max, v->get()));
      out = static_cast<std::uint64_t>(v->get());
      return {};
    };
  }
  Handler rate(double& out) const {
    return [this, &out](const toml::node& n, const std::string& path) -> Result {
      const auto v = n.value<double>();
      if (!v || !(n.is_integer() || n.is_floating_point())) return wrong_type(n, path, "a number");
      if (!std::isfinite(*v) || *v < 0 || *v > 1e12) return error(n, path, "must be a number between 0 and 1e12");
      out = *v;
      return {};
    };
  }

 private:
  std::string_view source_;
};

constexpr std::int64_t kMaxCount = std::int64_t{1} << 40;

}  // namespace

Expected<void, std::string> read_security_table(const toml::node& node, std::string_view source_name,
                                                policy::SecurityConfig& out) {
  const Reader r(source_name);
  policy::QuotaConfig& q = out.quotas;
  bool allow_anonymous = false;
  const std::vector<Reader::Key> quotas{
      {"messages_per_second", r.rate(q.messages_per_second)},
      {"message_burst", r.count(q.message_burst, kMaxCount)},
      {"bytes_per_second", r.rate(q.bytes_per_second)},
      {"byte_burst", r.count(q.byte_burst, kMaxCount)},
      {"max_payload_size", r.count(q.max_payload_size, 268'435'455)},
      {"max_subscriptions", r.count(q.max_subscriptions, kMaxCount)},
      {"max_connections_per_user", r.count(q.max_connections_per_user, kMaxCount)},
      {"throttle", r.boolean(q.throttle)},
  };
  const std::vector<Reader::Key> schemas{{"registry", r.string(out.schema_registry)}};
  const std::vector<Reader::Key> signatures{
      {"keys_file", r.string(out.signature_keys_file)},
      {"topics",
       [&r, &out](const toml::node& n, const std::string& path) -> Result {
         const auto* a = n.as_array();
         if (a == nullptr) return r.wrong_type(n, path, "an array of topic filters");
         out.signed_topics.clear();
         for (const auto& element : *a) {
           const auto* s = element.as_string();
           if (s == nullptr || !is_valid_topic_filter(s->get())) {
             return r.error(element, path, "must hold valid topic filters");
           }
           out.signed_topics.push_back(s->get());
         }
         return {};
       }},
  };
  const std::vector<Reader::Key> top{
      {"allow_anonymous",
       [&](const toml::node& n, const std::string& path) -> Result {
         if (auto res = r.boolean(allow_anonymous)(n, path); !res) return res;
         out.allow_anonymous = allow_anonymous;
         return {};
       }},
      {"password_file", r.string(out.password_file)},
      {"acl_file", r.string(out.acl_file)},
      {"quotas", [&](const toml::node& n, const std::string& path) { return r.table(n, path, quotas); }},
      {"schemas", [&](const toml::node& n, const std::string& path) { return r.table(n, path, schemas); }},
      {"signatures", [&](const toml::node& n, const std::string& path) { return r.table(n, path, signatures); }},
  };
  return r.table(node, "security", top);
}

std::string security_to_toml(const policy::SecurityConfig& c) {
  const auto quoted = [](const std::string& s) {
    std::ostringstream out;
    out << toml::value<std::string>(s);
    return out.str();
  };
  std::string out = "\n[security]\n";
  if (c.allow_anonymous) out += fmt::format("allow_anonymous = {}\n", *c.allow_anonymous);
  if (!c.password_file.empty()) out += fmt::format("password_file = {}\n", quoted(c.password_file));
  if (!c.acl_file.empty()) out += fmt::format("acl_file = {}\n", quoted(c.acl_file));
  const auto& q = c.quotas;
  out += "\n[security.quotas]\n";
  out += fmt::format("messages_per_second = {:.17g}\n", q.messages_per_second);
  out += fmt::format("message_burst = {}\n", q.message_burst);
  out += fmt::format("bytes_per_second = {:.17g}\n", q.bytes_per_second);
  out += fmt::format("byte_burst = {}\n", q.byte_burst);
  out += fmt::format("max_payload_size = {}\n", q.max_payload_size);
  out += fmt::format("max_subscriptions = {}\n", q.max_subscriptions);
  out += fmt::format("max_connections_per_user = {}\n", q.max_connections_per_user);
  out += fmt::format("throttle = {}\n", q.throttle);
  if (!c.schema_registry.empty()) out += fmt::format("\n[security.schemas]\nregistry = {}\n", quoted(c.schema_registry));
  if (!c.signature_keys_file.empty() || !c.signed_topics.empty()) {
    out += "\n[security.signatures]\n";
    if (!c.signature_keys_file.empty()) out += fmt::format("keys_file = {}\n", quoted(c.signature_keys_file));
    std::string topics;
    for (const auto& t : c.signed_topics) topics += (topics.empty() ? "" : ", ") + quoted(t);
    out += fmt::format("topics = [{}]\n", topics);
  }
  return out;
}

}  // namespace tern::ternd
