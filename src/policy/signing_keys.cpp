#include "policy/signing_keys.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "policy/password_file.hpp"
#include "policy/text.hpp"

namespace tern::policy {

Expected<SigningKeys, std::string> SigningKeys::parse(std::string_view text_in, std::string_view source_name) {
  SigningKeys keys;
  std::size_t number = 0;
  for (const std::string_view raw : text::lines(text_in)) {
    ++number;
    const std::string_view line = text::trim(raw);
    if (line.empty() || line.front() == '#') continue;
    const auto fail = [&](std::string_view what) {
      return make_unexpected(fmt::format("{}:{}: {}", source_name, number, what));
    };
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return fail("expected producer-id:hexkey");
    const std::string_view producer = line.substr(0, colon);
    if (!is_valid_password_user(producer)) return fail("invalid producer id");
    auto key = text::hex_decode(line.substr(colon + 1));
    if (!key || key->size() < 16) return fail("the key must be at least 16 bytes in hexadecimal");
    if (!keys.keys_.emplace(std::string(producer), std::move(*key)).second) {
      return fail(fmt::format("producer '{}' appears twice", producer));
    }
  }
  return keys;
}

Expected<SigningKeys, std::string> SigningKeys::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_unexpected(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  std::ostringstream content;
  content << in.rdbuf();
  return parse(content.str(), path);
}

const std::string* SigningKeys::find(std::string_view producer) const {
  const auto it = keys_.find(producer);
  return it == keys_.end() ? nullptr : &it->second;
}

}  // namespace tern::policy
