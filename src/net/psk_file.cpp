#include "net/psk_file.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace tern::net {
namespace {

std::string_view trim(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool printable_identity(std::string_view identity) {
  for (const char c : identity) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return false;
  }
  return true;
}

}  // namespace

const PskEntry* PskTable::find(std::string_view identity) const {
  for (const auto& entry : entries) {
    if (entry.identity == identity) return &entry;
  }
  return nullptr;
}

Expected<PskTable, std::string> parse_psk_file(std::string_view text) {
  PskTable table;
  std::size_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const auto end = text.find('\n');
    std::string_view line = trim(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (line.empty() || line.front() == '#') continue;
    const auto bad = [line_number](std::string_view what) {
      return make_unexpected(fmt::format("line {}: {}", line_number, what));
    };
    const auto colon = line.rfind(':');
    if (colon == std::string_view::npos) return bad("expected identity:hexkey");
    const std::string_view identity = trim(line.substr(0, colon));
    const std::string_view hex = trim(line.substr(colon + 1));
    if (identity.empty()) return bad("the identity is empty");
    if (identity.size() > kMaxPskIdentityBytes) {
      return bad(fmt::format("the identity is longer than {} bytes", kMaxPskIdentityBytes));
    }
    if (!printable_identity(identity)) return bad("the identity contains a control character");
    if (hex.size() % 2 != 0) return bad("the key must be an even number of hexadecimal digits");
    if (hex.size() / 2 < kMinPskKeyBytes || hex.size() / 2 > kMaxPskKeyBytes) {
      return bad(fmt::format("the key must be {} to {} bytes ({} to {} hexadecimal digits)", kMinPskKeyBytes,
                             kMaxPskKeyBytes, kMinPskKeyBytes * 2, kMaxPskKeyBytes * 2));
    }
    std::string key;
    key.reserve(hex.size() / 2);
    for (std::size_t i = 0; i < hex.size(); i += 2) {
      const int high = hex_value(hex[i]);
      const int low = hex_value(hex[i + 1]);
      if (high < 0 || low < 0) return bad("the key has a character that is not a hexadecimal digit");
      key.push_back(static_cast<char>(high * 16 + low));
    }
    if (table.find(identity) != nullptr) {
      return bad(fmt::format("identity '{}' appears more than once", identity));
    }
    table.entries.push_back(PskEntry{std::string(identity), std::move(key)});
  }
  return table;
}

Expected<PskTable, std::string> load_psk_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_unexpected(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return make_unexpected(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  auto parsed = parse_psk_file(text.str());
  if (!parsed) return make_unexpected(fmt::format("{}: {}", path, parsed.error()));
  return parsed;
}

}  // namespace tern::net
