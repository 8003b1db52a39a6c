#include "sdk/trace.hpp"

#include <algorithm>

#include "sdk/text.hpp"

namespace tern::sdk {
namespace {

bool is_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}
bool all_zero(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '0'; });
}
std::string nonzero_hex(std::size_t bytes) {
  for (;;) {
    std::string id = random_hex(bytes);
    if (!all_zero(id)) return id;
  }
}

}  // namespace

std::optional<TraceContext> parse_traceparent(std::string_view h) {
  // 2 + 1 + 32 + 1 + 16 + 1 + 2
  if (h.size() != 55 || h[2] != '-' || h[35] != '-' || h[52] != '-') return std::nullopt;
  const auto version = h.substr(0, 2);
  if (!is_lower_hex(version) || version == "ff" || version != "00") return std::nullopt;
  TraceContext c;
  c.trace_id = std::string(h.substr(3, 32));
  c.parent_id = std::string(h.substr(36, 16));
  const auto flags = h.substr(53, 2);
  if (!is_lower_hex(c.trace_id) || !is_lower_hex(c.parent_id) || !is_lower_hex(flags)) return std::nullopt;
  if (all_zero(c.trace_id) || all_zero(c.parent_id)) return std::nullopt;
  c.flags = static_cast<std::uint8_t>(std::stoi(std::string(flags), nullptr, 16));
  return c;
}

std::string format_traceparent(const TraceContext& c) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "00-" + c.trace_id + "-" + c.parent_id + "-";
  out.push_back(kHex[c.flags >> 4]);
  out.push_back(kHex[c.flags & 15]);
  return out;
}

TraceContext new_trace() { return TraceContext{nonzero_hex(16), nonzero_hex(8), 1}; }

TraceContext child_of(const TraceContext& parent) { return TraceContext{parent.trace_id, nonzero_hex(8), parent.flags}; }

}  // namespace tern::sdk
