#include "trace/context.hpp"

#include <algorithm>
#include <random>

namespace tern::trace {
namespace {

constexpr char kHex[] = "0123456789abcdef";

bool is_lower_hex(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool all_zero(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '0'; });
}

int hex_value(char c) noexcept { return c <= '9' ? c - '0' : c - 'a' + 10; }

std::mt19937_64& generator() {
  // Seeded per thread from the OS: ids must not repeat across restarts or threads.
  thread_local std::mt19937_64 engine = [] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device()};
    return std::mt19937_64(seed);
  }();
  return engine;
}

std::string random_hex(std::size_t digits) {
  std::string out;
  out.reserve(digits);
  while (out.size() < digits) {
    std::uint64_t bits = generator()();
    for (int i = 0; i < 16 && out.size() < digits; ++i, bits >>= 4) out.push_back(kHex[bits & 0xF]);
  }
  return out;
}

std::string random_nonzero_hex(std::size_t digits) {
  for (;;) {
    std::string id = random_hex(digits);
    if (!all_zero(id)) return id;
  }
}

}  // namespace

bool is_valid_trace_id(std::string_view id) noexcept { return id.size() == 32 && is_lower_hex(id) && !all_zero(id); }

bool is_valid_span_id(std::string_view id) noexcept { return id.size() == 16 && is_lower_hex(id) && !all_zero(id); }

std::optional<TraceContext> parse_traceparent(std::string_view h) noexcept {
  // "vv-" + 32 + "-" + 16 + "-" + "ff" = 55 characters.
  if (h.size() < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-') return std::nullopt;
  const std::string_view version = h.substr(0, 2);
  if (!is_lower_hex(version) || version == "ff") return std::nullopt;
  if (version == "00" ? h.size() != 55 : (h.size() > 55 && h[55] != '-')) return std::nullopt;
  const std::string_view trace_id = h.substr(3, 32);
  const std::string_view span_id = h.substr(36, 16);
  const std::string_view flags = h.substr(53, 2);
  if (!is_valid_trace_id(trace_id) || !is_valid_span_id(span_id) || !is_lower_hex(flags)) return std::nullopt;
  TraceContext c;
  c.trace_id = std::string(trace_id);
  c.span_id = std::string(span_id);
  c.flags = static_cast<std::uint8_t>(hex_value(flags[0]) * 16 + hex_value(flags[1]));
  return c;
}

std::string format_traceparent(const TraceContext& c) {
  std::string out;
  out.reserve(55);
  out.append("00-").append(c.trace_id).append("-").append(c.span_id).append("-");
  out.push_back(kHex[c.flags >> 4]);
  out.push_back(kHex[c.flags & 0xF]);
  return out;
}

std::string new_trace_id() { return random_nonzero_hex(32); }

std::string new_span_id() { return random_nonzero_hex(16); }

TraceContext new_root(bool sampled) {
  return TraceContext{new_trace_id(), new_span_id(), static_cast<std::uint8_t>(sampled ? kSampledFlag : 0)};
}

TraceContext child_of(const TraceContext& parent) { return TraceContext{parent.trace_id, new_span_id(), parent.flags}; }

}  // namespace tern::trace
