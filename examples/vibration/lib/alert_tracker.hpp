// Debouncing per-window verdicts into alerts, per machine. Pure: time comes in as an
// argument, output is the alert to publish (if it changed).
//
// States: none -> (raise_after consecutive anomalous windows) -> raised
//         raised -> (acknowledge) -> acknowledged
//         raised | acknowledged -> (clear_after consecutive normal windows) -> cleared
// A cleared alert behaves like none. While an alert is open, a worse severity escalates
// it (published again, and an acknowledged alert is raised again: the operator has not
// seen the worse state); a new fault replaces the reported one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "lib/analysis.hpp"

namespace vibration {

enum class AlertState { none, raised, acknowledged, cleared };
std::string_view to_string(AlertState state) noexcept;

// The fault name of an anomalous window without a diagnosis (high vibration, no pattern).
inline constexpr std::string_view kUnclassifiedFault = "excessive-vibration";

struct Verdict {
  bool anomalous = false;
  std::string fault;  // e.g. "imbalance"; empty for normal windows
  Severity severity = Severity::warning;
  std::string reason;
};

struct Alert {
  AlertState state = AlertState::none;
  std::string fault;
  Severity severity = Severity::warning;
  std::string reason;                 // of the latest anomalous window
  std::int64_t raised_at_ms = 0;
  std::int64_t acknowledged_at_ms = 0;
  std::int64_t cleared_at_ms = 0;
  std::uint64_t anomalous_windows = 0;  // since the streak that raised it began
};

struct DebounceConfig {
  unsigned raise_after = 3;
  unsigned clear_after = 5;
};

class AlertTracker {
 public:
  explicit AlertTracker(DebounceConfig config = {}) : config_(config) {}

  // Returns the alert when it was raised, changed (fault, escalation) or cleared.
  std::optional<Alert> observe(const Verdict& verdict, std::int64_t now_ms);
  // Returns the alert after acknowledging it, or nullopt when no alert is open. Acknowledging
  // an acknowledged alert is harmless and returns it unchanged.
  std::optional<Alert> acknowledge(std::int64_t now_ms);

  const Alert& alert() const noexcept { return alert_; }
  bool open() const noexcept { return alert_.state == AlertState::raised || alert_.state == AlertState::acknowledged; }

 private:
  DebounceConfig config_;
  Alert alert_;
  unsigned anomalous_streak_ = 0;
  unsigned normal_streak_ = 0;
  std::uint64_t anomalous_in_episode_ = 0;
};

}  // namespace vibration
