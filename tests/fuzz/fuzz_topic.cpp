// Topic validation, matching and shared-subscription parsing on arbitrary bytes.
//
// The input is split at its first NUL byte into a filter and a topic (or in halves when
// there is none). Besides running every function on both, the target checks properties
// that must hold for any input and compares matching with a plain level-list reference.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/topic.hpp"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

std::vector<std::string_view> split_levels(std::string_view s) {
  std::vector<std::string_view> levels;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t end = s.find('/', pos);
    if (end == std::string_view::npos) {
      levels.push_back(s.substr(pos));
      return levels;
    }
    levels.push_back(s.substr(pos, end - pos));
    pos = end + 1;
  }
}

bool reference_matches(std::string_view filter, std::string_view topic) {
  if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#')) return false;
  const auto f = split_levels(filter);
  const auto t = split_levels(topic);
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") return true;
    if (i >= t.size()) return false;
    if (f[i] != "+" && f[i] != t[i]) return false;
  }
  return f.size() == t.size();
}

bool reference_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t len = 1;
    std::uint32_t cp = b;
    std::uint32_t min = 0;
    if (b >= 0x80) {
      if ((b & 0xE0) == 0xC0) {
        len = 2, cp = b & 0x1Fu, min = 0x80;
      } else if ((b & 0xF0) == 0xE0) {
        len = 3, cp = b & 0x0Fu, min = 0x800;
      } else if ((b & 0xF8) == 0xF0) {
        len = 4, cp = b & 0x07u, min = 0x10000;
      } else {
        return false;
      }
    }
    if (s.size() - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3Fu);
    }
    if (cp < min || cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

void check_one(std::string_view s) {
  const bool utf8 = tern::is_valid_mqtt_utf8(s);
  check(utf8 == reference_utf8(s));
  const bool name = tern::is_valid_topic_name(s);
  const bool filter = tern::is_valid_topic_filter(s);
  if (name) check(filter);
  if (filter) check(utf8 && !s.empty() && s.size() <= 65535);

  if (name) {
    // A name is a filter that matches exactly itself.
    check(tern::topic_matches(s, s));
    check(tern::topic_matches("#", s) == (s[0] != '$'));
  }

  tern::SharedSubscription shared;
  bool ok = false;
  if (tern::parse_shared_subscription(s, shared, ok)) {
    check(s.substr(0, 7) == "$share/");
    if (ok) {
      check(!shared.group.empty());
      check(shared.group.find_first_of("/+#") == std::string_view::npos);
      check(tern::is_valid_topic_filter(shared.filter));
      check(s.size() == 7 + shared.group.size() + 1 + shared.filter.size());
      check(s.substr(7, shared.group.size()) == shared.group);
      check(s.substr(s.size() - shared.filter.size()) == shared.filter);
    }
  }
}

// Turns chosen levels of a valid topic into '+' (and maybe truncates it with '#'):
// the result must match the topic unless the topic is a '$' topic and the first level
// became a wildcard.
void check_generalised(std::string_view topic, std::string_view choices) {
  const auto levels = split_levels(topic);
  std::string filter;
  bool wildcard_first = false;
  for (std::size_t i = 0; i < levels.size(); ++i) {
    const auto choice = choices.empty() ? 0u : static_cast<unsigned char>(choices[i % choices.size()]);
    if (i > 0) filter += '/';
    if ((choice & 0x0F) == 1) {
      filter += '#';
      if (i == 0) wildcard_first = true;
      break;
    }
    if ((choice & 0x03) == 2) {
      filter += '+';
      if (i == 0) wildcard_first = true;
    } else {
      filter.append(levels[i]);
    }
  }
  if (!tern::is_valid_topic_filter(filter)) return;  // over 65535 bytes after a '#' was appended
  check(tern::topic_matches(filter, topic) == !(wildcard_first && topic[0] == '$'));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::size_t cut = input.find('\0');
  std::string_view filter;
  std::string_view topic;
  if (cut == std::string_view::npos) {
    cut = size / 2;
    filter = input.substr(0, cut);
    topic = input.substr(cut);
  } else {
    filter = input.substr(0, cut);
    topic = input.substr(cut + 1);
  }
  check_one(input);
  check_one(filter);
  check_one(topic);

  const bool filter_ok = tern::is_valid_topic_filter(filter);
  const bool topic_ok = tern::is_valid_topic_name(topic);
  if (filter_ok && topic_ok) {
    check(tern::topic_matches(filter, topic) == reference_matches(filter, topic));
  }
  if (topic_ok) check_generalised(topic, filter);
  return 0;
}
