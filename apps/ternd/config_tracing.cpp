#include "config_tracing.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <type_traits>
#include <toml++/toml.h>

namespace tern::ternd {
namespace {

using Result = Expected<void, std::string>;

std::string at(std::string_view source_name, const toml::source_region& region) {
  return fmt::format("{}:{}", source_name, region.begin.line);
}

// The part of an OTLP/HTTP URL a configuration can get wrong without a network: the
// exporter parses it again when it starts.
std::optional<std::string> check_endpoint(const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0) {
    return fmt::format("must be an http:// URL such as \"http://127.0.0.1:4318/v1/traces\" (got \"{}\"; https is not "
                       "supported: use a local collector)",
                       url);
  }
  const std::string_view rest = std::string_view(url).substr(kScheme.size());
  if (rest.empty() || rest.front() == '/' || rest.front() == ':') return fmt::format("has no host (got \"{}\")", url);
  if (std::any_of(url.begin(), url.end(), [](char c) { return c <= ' ' || c == 0x7F; })) {
    return fmt::format("must not contain spaces or control characters (got \"{}\")", url);
  }
  return std::nullopt;
}

Result read_tracing_node(const toml::node& node, std::string_view source_name, TracingSettings& out) {
  const auto* table = node.as_table();
  if (table == nullptr) {
    return make_unexpected(fmt::format("{}: tracing must be a table ([tracing])", at(source_name, node.source())));
  }
  TracingSettings settings = out;
  bool has_endpoint = false;
  for (auto&& entry : *table) {
    // Named, not structured bindings: clang 14 (the fuzz build) cannot capture those.
    const toml::key& key = entry.first;
    const toml::node& value = entry.second;
    const std::string_view name = key.str();
    const std::string where = at(source_name, value.source());
    const auto integer = [&](std::int64_t min, std::int64_t max, auto& target) -> Result {
      const auto* v = value.as_integer();
      if (v == nullptr) return make_unexpected(fmt::format("{}: tracing.{} must be an integer", where, name));
      if (v->get() < min || v->get() > max) {
        return make_unexpected(
            fmt::format("{}: tracing.{} must be between {} and {} (got {})", where, name, min, max, v->get()));
      }
      target = static_cast<std::remove_reference_t<decltype(target)>>(v->get());
      return {};
    };
    Result r;
    if (name == "endpoint") {
      const auto* v = value.as_string();
      if (v == nullptr) return make_unexpected(fmt::format("{}: tracing.endpoint must be a string", where));
      if (auto problem = check_endpoint(v->get())) {
        return make_unexpected(fmt::format("{}: tracing.endpoint {}", where, *problem));
      }
      settings.endpoint = v->get();
      has_endpoint = true;
    } else if (name == "sample_ratio") {
      const auto v = value.value<double>();
      if (!v || !(value.is_integer() || value.is_floating_point())) {
        return make_unexpected(fmt::format("{}: tracing.sample_ratio must be a number", where));
      }
      if (!std::isfinite(*v) || *v < 0.0 || *v > 1.0) {
        return make_unexpected(fmt::format("{}: tracing.sample_ratio must be between 0.0 and 1.0 (got {})", where, *v));
      }
      settings.sample_ratio = *v;
    } else if (name == "service_name") {
      const auto* v = value.as_string();
      if (v == nullptr) return make_unexpected(fmt::format("{}: tracing.service_name must be a string", where));
      if (v->get().empty() || v->get().size() > 128) {
        return make_unexpected(fmt::format("{}: tracing.service_name must be 1 to 128 characters long", where));
      }
      settings.service_name = v->get();
    } else if (name == "max_queue_spans") {
      r = integer(1, 1'000'000, settings.max_queue_spans);
    } else if (name == "max_batch_spans") {
      r = integer(1, 100'000, settings.max_batch_spans);
    } else if (name == "flush_ms") {
      r = integer(1, 3'600'000, settings.flush_ms);
    } else {
      return make_unexpected(fmt::format("{}: unknown key 'tracing.{}' (allowed keys: endpoint, sample_ratio, "
                                         "service_name, max_queue_spans, max_batch_spans, flush_ms)",
                                         at(source_name, key.source()), name));
    }
    if (!r) return r;
  }
  if (!has_endpoint) {
    return make_unexpected(fmt::format("{}: [tracing] needs an endpoint, e.g. endpoint = "
                                       "\"http://127.0.0.1:4318/v1/traces\" (leave the table out to turn tracing off)",
                                       at(source_name, node.source())));
  }
  out = std::move(settings);
  return {};
}

}  // namespace

template <class TomlNode>
Expected<void, std::string> read_tracing_config(const TomlNode& node, std::string_view source_name,
                                                TracingSettings& out) {
  return read_tracing_node(node, source_name, out);
}

template Expected<void, std::string> read_tracing_config<toml::node>(const toml::node&, std::string_view,
                                                                     TracingSettings&);

std::string tracing_toml(const TracingSettings& s) {
  if (!s.enabled()) return {};
  std::string ratio = fmt::format("{}", s.sample_ratio);
  if (ratio.find_first_of(".e") == std::string::npos) ratio += ".0";  // a TOML float
  // endpoint and service_name were checked to hold no control characters or quotes that
  // matter to TOML except '"' and '\\', which are escaped here.
  const auto quoted = [](std::string_view text) {
    std::string q = "\"";
    for (const char c : text) {
      if (c == '"' || c == '\\') q += '\\';
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
        q += fmt::format("\\u{:04X}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        continue;
      }
      q += c;
    }
    return q + "\"";
  };
  return fmt::format(
      "\n[tracing]\nendpoint = {}\nsample_ratio = {}\nservice_name = {}\nmax_queue_spans = {}\nmax_batch_spans = {}\n"
      "flush_ms = {}\n",
      quoted(s.endpoint), ratio, quoted(s.service_name), s.max_queue_spans, s.max_batch_spans, s.flush_ms);
}

}  // namespace tern::ternd
