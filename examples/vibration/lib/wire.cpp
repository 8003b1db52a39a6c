#include "lib/wire.hpp"

#include <bit>
#include <cstring>

// Boost.JSON's compiled part comes with tern_sdk (see CMakeLists.txt): one copy per program.
#include <boost/json.hpp>
#include <fmt/format.h>

namespace vibration {

namespace json = boost::json;

std::string machine_topic(const MachineId& id, std::string_view leaf) {
  return fmt::format("plant/{}/{}/{}", id.line, id.machine, leaf);
}

std::string alert_topic(const MachineId& id) { return fmt::format("plant/alerts/{}/{}", id.line, id.machine); }

std::optional<MachineId> parse_machine_topic(std::string_view topic, std::string_view leaf) {
  constexpr std::string_view root = "plant/";
  if (!topic.starts_with(root)) return std::nullopt;
  topic.remove_prefix(root.size());
  const auto first = topic.find('/');
  if (first == std::string_view::npos || first == 0) return std::nullopt;
  const auto second = topic.find('/', first + 1);
  if (second == std::string_view::npos || second == first + 1) return std::nullopt;
  if (topic.substr(second + 1) != leaf) return std::nullopt;
  return MachineId{std::string(topic.substr(0, first)), std::string(topic.substr(first + 1, second - first - 1))};
}

std::string encode_samples(std::span<const float> samples) {
  std::string out(samples.size() * 4, '\0');
  for (std::size_t i = 0; i < samples.size(); ++i) {
    auto bits = std::bit_cast<std::uint32_t>(samples[i]);
    for (std::size_t b = 0; b < 4; ++b) {
      out[4 * i + b] = static_cast<char>(bits & 0xffu);
      bits >>= 8;
    }
  }
  return out;
}

std::expected<std::vector<float>, std::string> decode_samples(std::string_view payload) {
  if (payload.size() % 4 != 0) return std::unexpected(fmt::format("payload of {} bytes is not float32 samples", payload.size()));
  std::vector<float> samples(payload.size() / 4);
  for (std::size_t i = 0; i < samples.size(); ++i) {
    std::uint32_t bits = 0;
    for (std::size_t b = 0; b < 4; ++b) bits |= static_cast<std::uint32_t>(static_cast<unsigned char>(payload[4 * i + b])) << (8 * b);
    samples[i] = std::bit_cast<float>(bits);
  }
  return samples;
}

std::string json_quote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('"');
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
  return out;
}

std::string fault_name(const Diagnosis& diagnosis) {
  if (!diagnosis.anomalous) return "none";
  if (diagnosis.fault == Fault::none) return std::string(kUnclassifiedFault);
  return std::string(to_string(diagnosis.fault));
}

namespace {

std::string evidence_json(const Features& f) {
  return fmt::format(
      R"({{"velocity_rms_mm_s":{:.3f},"zone":"{}","1x_mm_s":{:.3f},"2x_mm_s":{:.3f},"3x_mm_s":{:.3f},)"
      R"("kurtosis":{:.2f},"crest_factor":{:.2f},"bpfo_snr":{:.1f},"bpfi_snr":{:.1f}}})",
      f.velocity_rms_mm_s, to_string(f.zone), f.order1_mm_s, f.order2_mm_s, f.order3_mm_s, f.kurtosis, f.crest_factor,
      f.bpfo_snr, f.bpfi_snr);
}

}  // namespace

std::string features_json(const WindowInfo& w, const Features& f, MachineGroup group, const Diagnosis& d) {
  return fmt::format(
      R"({{"line":{},"machine":{},"sequence":{},"time_ms":{},"samples":{},"sample_rate_hz":{},"shaft_hz":{:.3f},)"
      R"("velocity_rms_mm_s":{:.3f},"zone":"{}","machine_group":"{}","peak_m_s2":{:.4f},"acceleration_rms_m_s2":{:.4f},)"
      R"("crest_factor":{:.2f},"kurtosis":{:.2f},)"
      R"("bands":{{"1x_mm_s":{:.3f},"2x_mm_s":{:.3f},"3x_mm_s":{:.3f},"envelope_band_rms_m_s2":{:.4f},)"
      R"("bpfo":{{"hz":{:.2f},"snr":{:.1f},"harmonics":{}}},"bpfi":{{"hz":{:.2f},"snr":{:.1f},"harmonics":{}}}}},)"
      R"("anomalous":{},"fault":"{}","severity":"{}","reason":{}}})",
      json_quote(w.id.line), json_quote(w.id.machine), w.sequence, w.time_ms, f.samples, f.sample_rate_hz, f.shaft_hz,
      f.velocity_rms_mm_s, to_string(f.zone), to_string(group), f.peak_m_s2, f.acceleration_rms_m_s2, f.crest_factor,
      f.kurtosis, f.order1_mm_s, f.order2_mm_s, f.order3_mm_s, f.envelope_band_rms_m_s2, f.bpfo_hz, f.bpfo_snr,
      f.bpfo_harmonics, f.bpfi_hz, f.bpfi_snr, f.bpfi_harmonics, d.anomalous, fault_name(d),
      d.anomalous ? to_string(d.severity) : "none", json_quote(d.reason));
}

std::string anomaly_json(const WindowInfo& w, const Features& f, const Diagnosis& d) {
  return fmt::format(R"({{"line":{},"machine":{},"sequence":{},"time_ms":{},"fault":"{}","severity":"{}","reason":{},"evidence":{}}})",
                     json_quote(w.id.line), json_quote(w.id.machine), w.sequence, w.time_ms, fault_name(d),
                     to_string(d.severity), json_quote(d.reason), evidence_json(f));
}

namespace {

std::expected<json::object, std::string> parse_object(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec) return std::unexpected("invalid JSON: " + ec.message());
  if (!v.is_object()) return std::unexpected(std::string("expected a JSON object"));
  return std::move(v.as_object());
}

std::optional<std::string> string_field(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(json::string_view(key.data(), key.size()));
  if (!v || !v->is_string()) return std::nullopt;
  return std::string(v->as_string());
}

}  // namespace

std::expected<Verdict, std::string> parse_verdict(std::string_view document) {
  auto o = parse_object(document);
  if (!o) return std::unexpected(o.error());
  const auto* anomalous = o->if_contains("anomalous");
  if (!anomalous || !anomalous->is_bool()) return std::unexpected(std::string("missing boolean \"anomalous\""));
  Verdict v;
  v.anomalous = anomalous->as_bool();
  if (!v.anomalous) return v;
  v.fault = string_field(*o, "fault").value_or(std::string(kUnclassifiedFault));
  v.reason = string_field(*o, "reason").value_or("");
  const auto severity = parse_severity(string_field(*o, "severity").value_or(""));
  if (!severity) return std::unexpected(std::string("missing or unknown \"severity\""));
  v.severity = *severity;
  return v;
}

std::string alert_json(const MachineId& id, const Alert& a) {
  return fmt::format(
      R"({{"line":{},"machine":{},"state":"{}","fault":{},"severity":"{}","reason":{},"raised_at_ms":{},)"
      R"("acknowledged_at_ms":{},"cleared_at_ms":{},"anomalous_windows":{}}})",
      json_quote(id.line), json_quote(id.machine), to_string(a.state), json_quote(a.fault), to_string(a.severity),
      json_quote(a.reason), a.raised_at_ms, a.acknowledged_at_ms, a.cleared_at_ms, a.anomalous_windows);
}

std::expected<AckRequest, std::string> parse_ack_request(std::string_view text) {
  auto o = parse_object(text);
  if (!o) return std::unexpected(o.error());
  AckRequest r;
  auto machine = string_field(*o, "machine");
  if (!machine || machine->empty()) return std::unexpected(std::string("missing \"machine\""));
  r.machine = std::move(*machine);
  r.line = string_field(*o, "line");
  return r;
}

std::expected<FaultCommand, std::string> parse_fault_command(std::string_view text) {
  auto o = parse_object(text);
  if (!o) return std::unexpected(o.error());
  FaultCommand c;
  auto machine = string_field(*o, "machine");
  if (!machine || machine->empty()) return std::unexpected(std::string("missing \"machine\""));
  c.machine = std::move(*machine);
  c.line = string_field(*o, "line");
  const auto name = string_field(*o, "fault");
  if (!name) return std::unexpected(std::string("missing \"fault\""));
  const auto fault = parse_fault(*name);
  if (!fault) return std::unexpected(fmt::format("unknown fault \"{}\"", *name));
  c.fault = *fault;
  if (const auto* s = o->if_contains("severity")) {
    if (!s->is_number()) return std::unexpected(std::string("\"severity\" must be a number"));
    c.severity = s->to_number<double>();
    if (!(c.severity >= 0.0) || c.severity > 10.0) return std::unexpected(std::string("\"severity\" must be within 0..10"));
  }
  return c;
}

}  // namespace vibration
