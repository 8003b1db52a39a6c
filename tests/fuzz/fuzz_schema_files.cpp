// libFuzzer target: schema files, bindings and payload validation. The input is split at
// the first NUL byte: a JSON Schema before it, a payload (or bindings) after it.
#include <boost/json/src.hpp>  // Boost.JSON's implementation, once in this program

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "policy/schema_registry.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto nul = input.find('\0');
  const std::string_view schema_text = input.substr(0, nul);
  const std::string_view rest = nul == std::string_view::npos ? std::string_view{} : input.substr(nul + 1);
  (void)tern::policy::parse_bindings(rest, "fuzz");
  auto schema = tern::policy::Schema::compile(schema_text, "fuzz");
  if (!schema) return 0;
  (void)schema->validate(rest);
  static const auto reference = tern::policy::Schema::compile(
      R"({"type":"object","required":["a"],"properties":{"a":{"type":"number","maximum":5}}})", "ref");
  (void)tern::policy::compatibility_problems(*reference, *schema, tern::policy::Compatibility::full);
  return 0;
}
