// The schema registry: a folder holding `{subject}/{version}.json` (JSON Schema, draft 7
// as valijson implements it) and `bindings.json`, an object from topic filter to
// "subject" (latest version) or "subject@version". docs/security.md describes it.
//
// Compatibility (tern schema add/check) is a structural comparison of two schemas, a
// documented approximation of "every document one accepts, the other accepts too":
// types, required properties, removed properties under additionalProperties false, enums,
// numeric and length bounds, patterns, recursively through properties and items. What it
// cannot compare (allOf, anyOf, oneOf, not, $ref, if/then/else changes) is reported as a
// problem rather than assumed compatible. Undeclared properties are assumed absent, so an
// optional property can be added under backward compatibility.
//
// Thread-safety: a loaded registry is used from one thread (the validator keeps a regex
// cache); load a new one to reload.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"

namespace tern::policy {

enum class Compatibility { none, backward, forward, full };
std::optional<Compatibility> parse_compatibility(std::string_view name);

class Schema {
 public:
  // `source_name` appears in errors.
  static Expected<Schema, std::string> compile(std::string_view json_text, std::string_view source_name);
  // Nothing when the payload is a JSON document the schema accepts; else the first error,
  // e.g. "/temperature: value type not permitted by 'type' constraint".
  std::optional<std::string> validate(std::string_view payload) const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  std::shared_ptr<Impl> impl_;
};

// What stops `next` from replacing `previous` under the rule; empty when it may.
std::vector<std::string> compatibility_problems(const Schema& previous, const Schema& next, Compatibility rule);

struct SchemaBinding {
  std::string filter;
  std::string subject;
  std::optional<int> version;  // unset: the latest
};
Expected<std::vector<SchemaBinding>, std::string> parse_bindings(std::string_view json_text,
                                                                 std::string_view source_name);
bool is_valid_subject(std::string_view subject) noexcept;

class SchemaRegistry {
 public:
  static Expected<SchemaRegistry, std::string> load(const std::string& folder);

  struct Match {
    const Schema* schema = nullptr;
    std::string_view subject;
    int version = 0;
  };
  // The first binding (in file order) whose filter matches the topic.
  std::optional<Match> schema_for(std::string_view topic) const;

  // subject -> version -> schema
  const std::map<std::string, std::map<int, Schema>>& subjects() const noexcept { return subjects_; }
  const std::vector<SchemaBinding>& bindings() const noexcept { return bindings_; }

 private:
  std::map<std::string, std::map<int, Schema>> subjects_;
  std::vector<SchemaBinding> bindings_;
};

}  // namespace tern::policy
