// What travels over the broker: topics, the raw sample payload, and the JSON documents
// the three services exchange (documented in docs/examples.md).
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lib/alert_tracker.hpp"
#include "lib/analysis.hpp"
#include "lib/machine.hpp"

namespace vibration {

// plant/{line}/{machine}/vibration   raw windows (sensor-sim)
// plant/{line}/{machine}/features    one document a window (vibration-analyzer)
// plant/{line}/{machine}/anomaly     anomalous windows only (vibration-analyzer)
// plant/alerts/{line}/{machine}      alert state changes, retained (alerter)
// plant/alerts/ack                   request/reply: acknowledge an alert (alerter)
// plant/sim/fault                    request/reply or plain publish: inject a fault (sensor-sim)
inline constexpr std::string_view kVibrationFilter = "plant/+/+/vibration";
inline constexpr std::string_view kFeaturesFilter = "plant/+/+/features";
inline constexpr std::string_view kAckTopic = "plant/alerts/ack";
inline constexpr std::string_view kFaultControlTopic = "plant/sim/fault";

// User properties on a raw window.
inline constexpr std::string_view kSampleRateProperty = "sample-rate-hz";
inline constexpr std::string_view kShaftProperty = "shaft-hz";
inline constexpr std::string_view kSequenceProperty = "sequence";
inline constexpr std::string_view kSamplesContentType = "application/x-float32le; unit=m/s^2";

struct MachineId {
  std::string line;
  std::string machine;
  bool operator==(const MachineId&) const = default;
  auto operator<=>(const MachineId&) const = default;
};

std::string machine_topic(const MachineId& id, std::string_view leaf);
std::string alert_topic(const MachineId& id);
// plant/{line}/{machine}/{leaf} -> the machine, if the topic has that shape.
std::optional<MachineId> parse_machine_topic(std::string_view topic, std::string_view leaf);

// Samples as little-endian IEEE 754 float32, whatever the host's byte order.
std::string encode_samples(std::span<const float> samples);
std::expected<std::vector<float>, std::string> decode_samples(std::string_view payload);

// JSON string literal with the escapes RFC 8259 requires.
std::string json_quote(std::string_view text);

struct WindowInfo {
  MachineId id;
  std::uint64_t sequence = 0;
  std::int64_t time_ms = 0;  // when the analyzer processed it
};

std::string features_json(const WindowInfo& window, const Features& features, MachineGroup group, const Diagnosis& diagnosis);
std::string anomaly_json(const WindowInfo& window, const Features& features, const Diagnosis& diagnosis);
// The fault name a diagnosis reports (kUnclassifiedFault for high vibration without a pattern).
std::string fault_name(const Diagnosis& diagnosis);

// The verdict a features document carries.
std::expected<Verdict, std::string> parse_verdict(std::string_view features_document);

std::string alert_json(const MachineId& id, const Alert& alert);

// {"machine": "m2", "line": "line1"}; line is optional.
struct AckRequest {
  std::string machine;
  std::optional<std::string> line;
};
std::expected<AckRequest, std::string> parse_ack_request(std::string_view json);

// {"machine": "m2", "fault": "imbalance", "severity": 1.0, "line": "line1"}; severity and
// line are optional.
struct FaultCommand {
  std::string machine;
  std::optional<std::string> line;
  Fault fault = Fault::none;
  double severity = 1.0;
};
std::expected<FaultCommand, std::string> parse_fault_command(std::string_view json);

}  // namespace vibration
