#include "core/topic.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace tern {
namespace {

constexpr std::size_t kMaxTopicLength = 65535;
constexpr std::string_view kSharePrefix = "$share/";

// True when none of the eight bytes has its high bit set and none is zero: the common
// case of plain ASCII text, checked a word at a time.
inline bool all_ascii_non_zero(std::uint64_t word) noexcept {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHighs = 0x8080808080808080ULL;
  const bool has_high = (word & kHighs) != 0;
  const bool has_zero = ((word - kOnes) & ~word & kHighs) != 0;
  return !has_high && !has_zero;
}

// Length of the topic level starting at `pos` (up to the next '/' or the end).
inline std::size_t level_end(std::string_view s, std::size_t pos) noexcept {
  const std::size_t end = s.find('/', pos);
  return end == std::string_view::npos ? s.size() : end;
}

}  // namespace

bool is_valid_mqtt_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    if (n - i >= 8) {
      std::uint64_t word;
      std::memcpy(&word, p + i, sizeof word);
      if (all_ascii_non_zero(word)) {
        i += 8;
        continue;
      }
    }
    const unsigned char b0 = p[i];
    if (b0 < 0x80) {
      if (b0 == 0) return false;
      ++i;
      continue;
    }
    // Lead bytes C0, C1 and F5..FF never start a well-formed sequence (RFC 3629 §4);
    // the second-byte ranges below exclude overlong forms, surrogates and > U+10FFFF.
    std::size_t len;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (n - i < len) return false;
    const unsigned char b1 = p[i + 1];
    if (b1 < lo || b1 > hi) return false;
    for (std::size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

bool is_valid_topic_name(std::string_view topic) noexcept {
  if (topic.empty() || topic.size() > kMaxTopicLength) return false;
  if (topic.find_first_of("+#") != std::string_view::npos) return false;
  return is_valid_mqtt_utf8(topic);
}

bool is_valid_topic_filter(std::string_view filter) noexcept {
  if (filter.empty() || filter.size() > kMaxTopicLength) return false;
  std::size_t pos = filter.find_first_of("+#");
  while (pos != std::string_view::npos) {
    const bool starts_level = pos == 0 || filter[pos - 1] == '/';
    if (!starts_level) return false;
    const bool ends_level = pos + 1 == filter.size() || filter[pos + 1] == '/';
    if (!ends_level) return false;
    if (filter[pos] == '#' && pos + 1 != filter.size()) return false;
    pos = filter.find_first_of("+#", pos + 1);
  }
  return is_valid_mqtt_utf8(filter);
}

bool topic_matches(std::string_view filter, std::string_view topic) noexcept {
  if (filter.empty() || topic.empty()) return false;
  if (topic.front() == '$' && (filter.front() == '+' || filter.front() == '#')) return false;

  std::size_t fpos = 0;
  std::size_t tpos = 0;
  bool topic_consumed = false;
  for (;;) {
    const std::size_t fend = level_end(filter, fpos);
    const std::string_view flevel = filter.substr(fpos, fend - fpos);
    // '#' is always the last filter level and also matches the parent level, so reaching
    // it (even with every topic level consumed) is a match.
    if (flevel == "#") return true;
    if (topic_consumed) return false;
    const std::size_t tend = level_end(topic, tpos);
    if (flevel != "+" && flevel != topic.substr(tpos, tend - tpos)) return false;
    const bool filter_last = fend == filter.size();
    const bool topic_last = tend == topic.size();
    if (filter_last) return topic_last;
    fpos = fend + 1;
    if (topic_last) {
      topic_consumed = true;
    } else {
      tpos = tend + 1;
    }
  }
}

bool parse_shared_subscription(std::string_view filter, SharedSubscription& out, bool& ok) noexcept {
  if (filter.substr(0, kSharePrefix.size()) != kSharePrefix) return false;
  ok = false;
  const std::string_view rest = filter.substr(kSharePrefix.size());
  const std::size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return true;
  const std::string_view group = rest.substr(0, slash);
  const std::string_view inner = rest.substr(slash + 1);
  if (group.empty() || group.find_first_of("+#") != std::string_view::npos) return true;
  if (inner.empty() || !is_valid_topic_filter(inner)) return true;
  out.group = group;
  out.filter = inner;
  ok = true;
  return true;
}

}  // namespace tern
