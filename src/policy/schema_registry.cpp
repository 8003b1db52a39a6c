#include "policy/schema_registry.hpp"

// valijson aborts the process on a malformed schema unless told to throw.
#ifndef VALIJSON_USE_EXCEPTIONS
#define VALIJSON_USE_EXCEPTIONS 1
#endif

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <valijson/adapters/boost_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "core/topic.hpp"

namespace tern::policy {

namespace json = boost::json;

struct Schema::Impl {
  json::value document;
  valijson::Schema schema;
  // Keeps compiled regular expressions between validations.
  mutable valijson::Validator validator;
};

std::optional<Compatibility> parse_compatibility(std::string_view name) {
  if (name == "none") return Compatibility::none;
  if (name == "backward") return Compatibility::backward;
  if (name == "forward") return Compatibility::forward;
  if (name == "full") return Compatibility::full;
  return std::nullopt;
}

Expected<Schema, std::string> Schema::compile(std::string_view json_text, std::string_view source_name) {
  boost::system::error_code ec;
  json::value document = json::parse(json_text, ec);
  if (ec) return make_unexpected(fmt::format("{}: not JSON: {}", source_name, ec.message()));
  if (!document.is_object() && !document.is_bool()) {
    return make_unexpected(fmt::format("{}: a schema must be a JSON object or a boolean", source_name));
  }
  Schema out;
  out.impl_ = std::make_shared<Impl>();
  out.impl_->document = std::move(document);
  try {
    valijson::SchemaParser parser;
    valijson::adapters::BoostJsonAdapter adapter(out.impl_->document);
    parser.populateSchema(adapter, out.impl_->schema);
  } catch (const std::exception& e) {
    return make_unexpected(fmt::format("{}: not a usable JSON Schema: {}", source_name, e.what()));
  }
  return out;
}

std::optional<std::string> Schema::validate(std::string_view payload) const {
  boost::system::error_code ec;
  const json::value document = json::parse(payload, ec);
  if (ec) return fmt::format("payload is not JSON: {}", ec.message());
  valijson::ValidationResults results;
  try {
    valijson::adapters::BoostJsonAdapter adapter(document);
    if (impl_->validator.validate(impl_->schema, adapter, &results)) return std::nullopt;
  } catch (const std::exception& e) {
    return fmt::format("validation failed: {}", e.what());
  }
  // Report the deepest error: the outer ones only say that a nested part failed.
  valijson::ValidationResults::Error error;
  std::string best;
  std::size_t best_depth = 0;
  while (results.popError(error)) {
    if (best.empty() || error.context.size() > best_depth) {
      std::string where;
      for (std::size_t i = 1; i < error.context.size(); ++i) where += error.context[i];
      best = fmt::format("{}: {}", where.empty() ? "/" : where, error.description);
      best_depth = error.context.size();
    }
  }
  return best.empty() ? std::string("payload does not match the schema") : best;
}

// ---- compatibility ----

namespace {

const json::value kAcceptAll = json::object{};

std::set<std::string> types_of(const json::object& s) {
  std::set<std::string> out;
  const auto* t = s.if_contains("type");
  if (t == nullptr) return out;  // empty: any type
  if (t->is_string()) out.emplace(t->get_string());
  if (t->is_array()) {
    for (const auto& v : t->get_array()) {
      if (v.is_string()) out.emplace(v.get_string());
    }
  }
  return out;
}

std::set<std::string> required_of(const json::object& s) {
  std::set<std::string> out;
  if (const auto* r = s.if_contains("required"); r != nullptr && r->is_array()) {
    for (const auto& v : r->get_array()) {
      if (v.is_string()) out.emplace(v.get_string());
    }
  }
  return out;
}

std::optional<double> number_of(const json::object& s, std::string_view key) {
  const auto* v = s.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return static_cast<double>(v->get_int64());
  if (v->is_uint64()) return static_cast<double>(v->get_uint64());
  if (v->is_double()) return v->get_double();
  return std::nullopt;
}

std::string join(const std::set<std::string>& s) {
  std::string out;
  for (const auto& v : s) out += (out.empty() ? "" : ", ") + v;
  return out.empty() ? "any" : out;
}

// Appends why `wide` may reject a document that `narrow` accepts.
struct Comparison {
  std::string_view narrow_name;
  std::string_view wide_name;
  std::vector<std::string>& problems;

  void problem(const std::string& path, const std::string& what) {
    problems.push_back(fmt::format("{}: {}", path.empty() ? "/" : path, what));
  }

  void compare(const json::value& narrow, const json::value& wide, const std::string& path) {
    if (wide.is_bool()) {
      if (!wide.get_bool() && !(narrow.is_bool() && !narrow.get_bool())) {
        problem(path, fmt::format("the {} schema accepts nothing here", wide_name));
      }
      return;
    }
    if (narrow.is_bool()) {
      if (!narrow.get_bool()) return;
      compare(kAcceptAll, wide, path);
      return;
    }
    if (!narrow.is_object() || !wide.is_object()) return;
    const auto& n = narrow.get_object();
    const auto& w = wide.get_object();

    for (const std::string_view key : {"allOf", "anyOf", "oneOf", "not", "$ref", "if", "then", "else",
                                       "dependencies", "patternProperties", "propertyNames", "contains"}) {
      const auto* a = n.if_contains(key);
      const auto* b = w.if_contains(key);
      if (b != nullptr && (a == nullptr || *a != *b)) {
        problem(path, fmt::format("'{}' differs; its compatibility cannot be checked", key));
      }
    }

    const auto nt = types_of(n);
    const auto wt = types_of(w);
    if (!wt.empty()) {
      bool covered = !nt.empty();
      for (const auto& t : nt) {
        if (!wt.contains(t) && !(t == "integer" && wt.contains("number"))) covered = false;
      }
      if (!covered) {
        problem(path, fmt::format("type is [{}] in the {} schema but [{}] in the {}", join(nt), narrow_name, join(wt),
                                  wide_name));
      }
    }

    const auto nr = required_of(n);
    for (const auto& r : required_of(w)) {
      if (!nr.contains(r)) {
        problem(path, fmt::format("'{}' is required by the {} schema but not by the {}", r, wide_name, narrow_name));
      }
    }

    enum_check(n, w, path);
    bound_check(n, w, path, "minimum", true);
    bound_check(n, w, path, "exclusiveMinimum", true);
    bound_check(n, w, path, "minLength", true);
    bound_check(n, w, path, "minItems", true);
    bound_check(n, w, path, "minProperties", true);
    bound_check(n, w, path, "maximum", false);
    bound_check(n, w, path, "exclusiveMaximum", false);
    bound_check(n, w, path, "maxLength", false);
    bound_check(n, w, path, "maxItems", false);
    bound_check(n, w, path, "maxProperties", false);
    for (const std::string_view key : {"pattern", "format", "multipleOf"}) {
      const auto* a = n.if_contains(key);
      const auto* b = w.if_contains(key);
      if (b != nullptr && (a == nullptr || *a != *b)) {
        problem(path, fmt::format("'{}' differs between the {} and the {} schema", key, narrow_name, wide_name));
      }
    }
    if (const auto* b = w.if_contains("uniqueItems"); b != nullptr && b->is_bool() && b->get_bool()) {
      const auto* a = n.if_contains("uniqueItems");
      if (a == nullptr || !a->is_bool() || !a->get_bool()) {
        problem(path, fmt::format("the {} schema requires unique items", wide_name));
      }
    }

    properties_check(n, w, path);

    const auto* ni = n.if_contains("items");
    const auto* wi = w.if_contains("items");
    if (wi != nullptr && (wi->is_object() || wi->is_bool())) {
      compare(ni != nullptr && (ni->is_object() || ni->is_bool()) ? *ni : kAcceptAll, *wi, path + "/items");
    } else if (wi != nullptr && (ni == nullptr || *ni != *wi)) {
      problem(path, "'items' as an array differs; its compatibility cannot be checked");
    }
  }

  void enum_check(const json::object& n, const json::object& w, const std::string& path) {
    const auto values = [](const json::object& s) -> std::optional<json::array> {
      if (const auto* c = s.if_contains("const")) return json::array{*c};
      if (const auto* e = s.if_contains("enum"); e != nullptr && e->is_array()) return e->get_array();
      return std::nullopt;
    };
    const auto wv = values(w);
    if (!wv) return;
    const auto nv = values(n);
    if (!nv) {
      problem(path, fmt::format("the {} schema restricts the values (enum/const), the {} does not", wide_name, narrow_name));
      return;
    }
    for (const auto& v : *nv) {
      if (std::find(wv->begin(), wv->end(), v) == wv->end()) {
        problem(path, fmt::format("value {} is allowed by the {} schema but not by the {}", json::serialize(v),
                                  narrow_name, wide_name));
      }
    }
  }

  void bound_check(const json::object& n, const json::object& w, const std::string& path, std::string_view key,
                   bool lower) {
    const auto b = number_of(w, key);
    if (!b) return;
    const auto a = number_of(n, key);
    if (!a || (lower ? *a < *b : *a > *b)) {
      problem(path, fmt::format("'{}' is tighter in the {} schema than in the {}", key, wide_name, narrow_name));
    }
  }

  void properties_check(const json::object& n, const json::object& w, const std::string& path) {
    static const json::object kNone;
    const auto* np_value = n.if_contains("properties");
    const auto* wp_value = w.if_contains("properties");
    const json::object& np = np_value != nullptr && np_value->is_object() ? np_value->get_object() : kNone;
    const json::object& wp = wp_value != nullptr && wp_value->is_object() ? wp_value->get_object() : kNone;
    const auto* wa = w.if_contains("additionalProperties");
    const auto* na = n.if_contains("additionalProperties");
    for (const auto& [key, schema] : np) {
      const std::string sub = fmt::format("{}/{}", path, std::string_view(key));
      if (const auto* other = wp.if_contains(key)) {
        compare(schema, *other, sub);
      } else if (wa != nullptr && wa->is_bool() && !wa->get_bool()) {
        problem(sub, fmt::format("declared in the {} schema, not allowed by the {} (additionalProperties false)",
                                 narrow_name, wide_name));
      } else if (wa != nullptr && wa->is_object()) {
        compare(schema, *wa, sub);
      }
    }
    // Undeclared properties are assumed absent, unless the narrow schema explicitly
    // allows them: then the wide one must accept whatever they hold.
    if (na != nullptr && !(na->is_bool() && !na->get_bool())) {
      if (wa != nullptr && wa->is_bool() && !wa->get_bool()) {
        problem(path, fmt::format("the {} schema allows additional properties, the {} does not", narrow_name, wide_name));
      }
      for (const auto& [key, schema] : wp) {
        if (!np.contains(key)) compare(*na, schema, fmt::format("{}/{}", path, std::string_view(key)));
      }
    }
  }
};

}  // namespace

std::vector<std::string> compatibility_problems(const Schema& previous, const Schema& next, Compatibility rule) {
  std::vector<std::string> problems;
  const auto& old_doc = previous.impl().document;
  const auto& new_doc = next.impl().document;
  // Backward: consumers using the new schema read what was written under the old one.
  if (rule == Compatibility::backward || rule == Compatibility::full) {
    std::vector<std::string> found;
    Comparison{"old", "new", found}.compare(old_doc, new_doc, "");
    for (auto& p : found) problems.push_back("backward: " + p);
  }
  if (rule == Compatibility::forward || rule == Compatibility::full) {
    std::vector<std::string> found;
    Comparison{"new", "old", found}.compare(new_doc, old_doc, "");
    for (auto& p : found) problems.push_back("forward: " + p);
  }
  return problems;
}

// ---- bindings and the folder ----

bool is_valid_subject(std::string_view subject) noexcept {
  if (subject.empty() || subject.size() > 128 || subject.front() == '.') return false;
  return std::all_of(subject.begin(), subject.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
  });
}

namespace {
std::optional<int> parse_version(std::string_view text) {
  int v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v < 1 || text.front() == '0') return std::nullopt;
  return v;
}

Expected<std::string, std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_unexpected(fmt::format("cannot read {}: {}", path.string(), std::strerror(errno)));
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}
}  // namespace

Expected<std::vector<SchemaBinding>, std::string> parse_bindings(std::string_view json_text,
                                                                 std::string_view source_name) {
  boost::system::error_code ec;
  const json::value doc = json::parse(json_text, ec);
  if (ec) return make_unexpected(fmt::format("{}: not JSON: {}", source_name, ec.message()));
  if (!doc.is_object()) {
    return make_unexpected(fmt::format("{}: expected an object from topic filter to \"subject[@version]\"", source_name));
  }
  std::vector<SchemaBinding> out;
  for (const auto& [key, value] : doc.get_object()) {
    const std::string_view filter = key;
    if (!is_valid_topic_filter(filter)) {
      return make_unexpected(fmt::format("{}: invalid topic filter '{}'", source_name, filter));
    }
    if (!value.is_string()) {
      return make_unexpected(fmt::format("{}: '{}' must map to a string \"subject[@version]\"", source_name, filter));
    }
    const std::string_view target = value.get_string();
    SchemaBinding b;
    b.filter = std::string(filter);
    const auto at = target.find('@');
    b.subject = std::string(target.substr(0, at));
    if (!is_valid_subject(b.subject)) {
      return make_unexpected(fmt::format("{}: '{}': invalid subject '{}'", source_name, filter, b.subject));
    }
    if (at != std::string_view::npos) {
      b.version = parse_version(target.substr(at + 1));
      if (!b.version) return make_unexpected(fmt::format("{}: '{}': invalid version", source_name, filter));
    }
    out.push_back(std::move(b));
  }
  return out;
}

Expected<SchemaRegistry, std::string> SchemaRegistry::load(const std::string& folder) {
  namespace fs = std::filesystem;
  SchemaRegistry registry;
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return make_unexpected(fmt::format("{}: not a folder", folder));
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    if (!entry.is_directory()) continue;
    const std::string subject = entry.path().filename().string();
    if (!is_valid_subject(subject)) continue;
    for (const auto& file : fs::directory_iterator(entry.path(), ec)) {
      if (file.path().extension() != ".json") continue;
      const auto version = parse_version(file.path().stem().string());
      if (!version) {
        return make_unexpected(fmt::format("{}: schema files are named VERSION.json (1, 2, ...)", file.path().string()));
      }
      auto text = read_file(file.path());
      if (!text) return make_unexpected(text.error());
      auto schema = Schema::compile(*text, file.path().string());
      if (!schema) return make_unexpected(schema.error());
      registry.subjects_[subject].emplace(*version, std::move(*schema));
    }
  }
  if (ec) return make_unexpected(fmt::format("{}: {}", folder, ec.message()));
  const fs::path bindings_path = fs::path(folder) / "bindings.json";
  if (fs::exists(bindings_path, ec)) {
    auto text = read_file(bindings_path);
    if (!text) return make_unexpected(text.error());
    auto bindings = parse_bindings(*text, bindings_path.string());
    if (!bindings) return make_unexpected(bindings.error());
    for (const auto& b : *bindings) {
      const auto it = registry.subjects_.find(b.subject);
      if (it == registry.subjects_.end() || (b.version && !it->second.contains(*b.version))) {
        return make_unexpected(fmt::format("{}: '{}' is bound to {}{}, which the registry does not hold",
                                           bindings_path.string(), b.filter, b.subject,
                                           b.version ? fmt::format("@{}", *b.version) : std::string()));
      }
    }
    registry.bindings_ = std::move(*bindings);
  }
  return registry;
}

std::optional<SchemaRegistry::Match> SchemaRegistry::schema_for(std::string_view topic) const {
  for (const auto& b : bindings_) {
    if (!topic_matches(b.filter, topic)) continue;
    const auto& versions = subjects_.at(b.subject);
    const auto it = b.version ? versions.find(*b.version) : std::prev(versions.end());
    return Match{&it->second, b.subject, it->first};
  }
  return std::nullopt;
}

}  // namespace tern::policy
