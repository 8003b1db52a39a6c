#include "policy/signing_keys.hpp"

#include <fmt/format.h>

#include "policy/password_file.hpp"
#include "policy/text.hpp"

namespace tern::policy {

Expected<SigningKeys, std::string> SigningKeys::parse(std::string_view text_in, std::string_view source_name) {
  auto entries = text::colon_entries(text_in, source_name, "producer-id:hexkey");
  if (!entries) return make_unexpected(entries.error());
  SigningKeys keys;
  for (const text::ColonEntry& e : *entries) {
    const auto fail = [&](std::string_view what) {
      return make_unexpected(fmt::format("{}:{}: {}", source_name, e.line, what));
    };
    const std::string_view producer = e.name;
    if (!is_valid_password_user(producer)) return fail("invalid producer id");
    auto key = text::hex_decode(e.value);
    if (!key || key->size() < 16) return fail("the key must be at least 16 bytes in hexadecimal");
    if (!keys.keys_.emplace(std::string(producer), std::move(*key)).second) {
      return fail(fmt::format("producer '{}' appears twice", producer));
    }
  }
  return keys;
}

Expected<SigningKeys, std::string> SigningKeys::load(const std::string& path) {
  auto content = text::read_file(path);
  if (!content) return make_unexpected(content.error());
  return parse(*content, path);
}

const std::string* SigningKeys::find(std::string_view producer) const {
  const auto it = keys_.find(producer);
  return it == keys_.end() ? nullptr : &it->second;
}

}  // namespace tern::policy
