#include "policy/password_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "policy/text.hpp"

namespace tern::policy {

namespace {
constexpr std::string_view kScheme = "pbkdf2-sha512";
constexpr std::size_t kHashBytes = 64;
}  // namespace

bool is_valid_password_user(std::string_view user) noexcept {
  if (user.empty() || user.size() > 256) return false;
  return std::none_of(user.begin(), user.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return c == ':' || u <= 0x20 || u == 0x7F;
  });
}

Expected<PasswordFile, std::string> PasswordFile::parse(std::string_view text, std::string_view source_name) {
  auto entries = text::colon_entries(text, source_name, "user:$pbkdf2-sha512$iterations$salt$hash");
  if (!entries) return make_unexpected(entries.error());
  PasswordFile file;
  for (const text::ColonEntry& e : *entries) {
    const auto fail = [&](std::string_view what) {
      return make_unexpected(fmt::format("{}:{}: {}", source_name, e.line, what));
    };
    const std::string_view user = e.name;
    if (!is_valid_password_user(user)) return fail("invalid user name");
    // "$scheme$iterations$salt$hash"
    std::string_view rest = e.value;
    std::vector<std::string_view> parts;
    while (!rest.empty() && rest.front() == '$') {
      rest.remove_prefix(1);
      const auto next = rest.find('$');
      parts.push_back(rest.substr(0, next));
      rest = next == std::string_view::npos ? std::string_view{} : rest.substr(next);
    }
    if (!rest.empty() || parts.size() != 4) return fail("expected user:$pbkdf2-sha512$iterations$salt$hash");
    if (parts[0] != kScheme) return fail(fmt::format("unknown hash scheme (only {} is supported)", kScheme));
    std::uint32_t iterations = 0;
    const auto [end, ec] = std::from_chars(parts[1].data(), parts[1].data() + parts[1].size(), iterations);
    if (ec != std::errc{} || end != parts[1].data() + parts[1].size() || iterations < kMinIterations ||
        iterations > kMaxIterations) {
      return fail(fmt::format("iterations must be a number between {} and {}", kMinIterations, kMaxIterations));
    }
    auto salt = text::base64_decode(parts[2]);
    if (!salt || salt->size() < 8 || salt->size() > 64) return fail("salt must be 8 to 64 bytes in base64");
    auto hash = text::base64_decode(parts[3]);
    if (!hash || hash->size() != kHashBytes) return fail("hash must be 64 bytes in base64");
    if (file.find(user) != nullptr) return fail(fmt::format("user '{}' appears twice", user));
    file.entries_.push_back(PasswordEntry{std::string(user), iterations, std::move(*salt), std::move(*hash)});
  }
  return file;
}

Expected<PasswordFile, std::string> PasswordFile::load(const std::string& path) {
  auto content = text::read_file(path);
  if (!content) return make_unexpected(content.error());
  return parse(*content, path);
}

const PasswordEntry* PasswordFile::find(std::string_view user) const noexcept {
  const auto it = std::find_if(entries_.begin(), entries_.end(), [&](const PasswordEntry& e) { return e.user == user; });
  return it == entries_.end() ? nullptr : &*it;
}

void PasswordFile::set(PasswordEntry entry) {
  for (auto& e : entries_) {
    if (e.user == entry.user) {
      e = std::move(entry);
      return;
    }
  }
  entries_.push_back(std::move(entry));
}

bool PasswordFile::remove(std::string_view user) {
  const auto it = std::find_if(entries_.begin(), entries_.end(), [&](const PasswordEntry& e) { return e.user == user; });
  if (it == entries_.end()) return false;
  entries_.erase(it);
  return true;
}

std::string PasswordFile::to_text() const {
  std::string out;
  for (const auto& e : entries_) {
    out += format_password_entry(e);
    out += '\n';
  }
  return out;
}

std::string format_password_entry(const PasswordEntry& e) {
  return fmt::format("{}:${}${}${}${}", e.user, kScheme, e.iterations, text::base64_encode(e.salt),
                     text::base64_encode(e.hash));
}

}  // namespace tern::policy
