#include "policy/schema_registry.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace tern::policy {
namespace {

Schema compile(std::string_view text) {
  auto s = Schema::compile(text, "schema");
  EXPECT_TRUE(s) << s.error();
  return std::move(*s);
}

constexpr std::string_view kTemperature = R"({
  "type": "object",
  "properties": {"celsius": {"type": "number", "minimum": -60}, "sensor": {"type": "string"}},
  "required": ["celsius"]
})";

TEST(Schema, ValidatesPayloads) {
  const Schema s = compile(kTemperature);
  EXPECT_EQ(s.validate(R"({"celsius": 21.5})"), std::nullopt);
  const auto wrong_type = s.validate(R"({"celsius": "warm"})");
  ASSERT_TRUE(wrong_type);
  EXPECT_NE(wrong_type->find("celsius"), std::string::npos) << *wrong_type;
  EXPECT_TRUE(s.validate(R"({"sensor": "a"})"));
  EXPECT_TRUE(s.validate(R"({"celsius": -80})"));
  const auto not_json = s.validate("{celsius");
  ASSERT_TRUE(not_json);
  EXPECT_EQ(not_json->rfind("payload is not JSON", 0), 0u);
}

TEST(Schema, RejectsNonSchemas) {
  EXPECT_FALSE(Schema::compile("[1,2]", "s"));
  EXPECT_FALSE(Schema::compile("{", "s"));
  EXPECT_FALSE(Schema::compile(R"({"type": 12})", "s"));
}

TEST(Compatibility, AddingAnOptionalPropertyIsBackwardCompatible) {
  const Schema v1 = compile(kTemperature);
  const Schema v2 = compile(R"({"type": "object",
    "properties": {"celsius": {"type": "number", "minimum": -60}, "sensor": {"type": "string"}, "room": {"type": "string"}},
    "required": ["celsius"]})");
  EXPECT_TRUE(compatibility_problems(v1, v2, Compatibility::backward).empty());
  EXPECT_TRUE(compatibility_problems(v1, v2, Compatibility::full).empty());
}

TEST(Compatibility, NewRequiredFieldBreaksBackwardNotForward) {
  const Schema v1 = compile(kTemperature);
  const Schema v2 = compile(R"({"type": "object",
    "properties": {"celsius": {"type": "number", "minimum": -60}, "sensor": {"type": "string"}},
    "required": ["celsius", "sensor"]})");
  const auto backward = compatibility_problems(v1, v2, Compatibility::backward);
  ASSERT_EQ(backward.size(), 1u);
  EXPECT_EQ(backward[0], "backward: /: 'sensor' is required by the new schema but not by the old");
  EXPECT_TRUE(compatibility_problems(v1, v2, Compatibility::forward).empty());
  EXPECT_EQ(compatibility_problems(v1, v2, Compatibility::full).size(), 1u);
  EXPECT_TRUE(compatibility_problems(v1, v2, Compatibility::none).empty());
}

TEST(Compatibility, NarrowingATypeBreaksBackwardWideningBreaksForward) {
  const Schema number = compile(R"({"properties": {"v": {"type": "number"}}})");
  const Schema integer = compile(R"({"properties": {"v": {"type": "integer"}}})");
  EXPECT_FALSE(compatibility_problems(number, integer, Compatibility::backward).empty());
  EXPECT_TRUE(compatibility_problems(number, integer, Compatibility::forward).empty());
  EXPECT_TRUE(compatibility_problems(integer, number, Compatibility::backward).empty());
}

TEST(Compatibility, RemovingAPropertyUnderClosedContentBreaksBackward) {
  const Schema v1 = compile(R"({"properties": {"a": {}, "b": {}}, "additionalProperties": false})");
  const Schema v2 = compile(R"({"properties": {"a": {}}, "additionalProperties": false})");
  EXPECT_FALSE(compatibility_problems(v1, v2, Compatibility::backward).empty());
  EXPECT_TRUE(compatibility_problems(v1, v2, Compatibility::forward).empty());
}

TEST(Compatibility, TighterBoundsAndEnumsAndUnknownKeywords) {
  const Schema loose = compile(R"({"properties": {"n": {"maximum": 10}, "e": {"enum": ["a", "b"]}}})");
  const Schema tight = compile(R"({"properties": {"n": {"maximum": 5}, "e": {"enum": ["a"]}}})");
  EXPECT_EQ(compatibility_problems(loose, tight, Compatibility::backward).size(), 2u);
  EXPECT_TRUE(compatibility_problems(loose, tight, Compatibility::forward).empty());
  const Schema any_of = compile(R"({"anyOf": [{"type": "string"}, {"type": "number"}]})");
  EXPECT_FALSE(compatibility_problems(compile("{}"), any_of, Compatibility::backward).empty());
}

TEST(Bindings, ParseFiltersAndVersions) {
  auto b = parse_bindings(R"({"sensors/+/temperature": "temperature", "orders/#": "order@2"})", "bindings.json");
  ASSERT_TRUE(b) << b.error();
  ASSERT_EQ(b->size(), 2u);
  EXPECT_EQ((*b)[0].subject, "temperature");
  EXPECT_FALSE((*b)[0].version);
  EXPECT_EQ((*b)[1].version, 2);
  EXPECT_FALSE(parse_bindings(R"({"a/#/b": "x"})", "b"));
  EXPECT_FALSE(parse_bindings(R"({"a": "x@0"})", "b"));
  EXPECT_FALSE(parse_bindings(R"({"a": "../x"})", "b"));
  EXPECT_FALSE(parse_bindings(R"(["a"])", "b"));
}

TEST(Registry, LoadsFolderAndMatchesTopics) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("tern-registry-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "temperature");
  std::ofstream(dir / "temperature" / "1.json") << R"({"type": "object"})";
  std::ofstream(dir / "temperature" / "2.json") << kTemperature;
  std::ofstream(dir / "bindings.json") << R"({"sensors/+/temperature": "temperature", "old/#": "temperature@1"})";
  auto registry = SchemaRegistry::load(dir.string());
  ASSERT_TRUE(registry) << registry.error();
  auto m = registry->schema_for("sensors/k1/temperature");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->subject, "temperature");
  EXPECT_EQ(m->version, 2);
  EXPECT_EQ(registry->schema_for("old/x")->version, 1);
  EXPECT_FALSE(registry->schema_for("sensors/k1/humidity"));

  std::ofstream(dir / "bindings.json") << R"({"a": "missing"})";
  EXPECT_FALSE(SchemaRegistry::load(dir.string()));
  std::ofstream(dir / "temperature" / "x.json") << "{}";
  EXPECT_FALSE(SchemaRegistry::load(dir.string()));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tern::policy
