#include "lib/alert_tracker.hpp"

namespace vibration {

std::string_view to_string(AlertState state) noexcept {
  switch (state) {
    case AlertState::none: return "none";
    case AlertState::raised: return "raised";
    case AlertState::acknowledged: return "acknowledged";
    case AlertState::cleared: return "cleared";
  }
  return "?";
}

std::optional<Alert> AlertTracker::observe(const Verdict& verdict, std::int64_t now_ms) {
  if (!verdict.anomalous) {
    anomalous_streak_ = 0;
    if (!open()) return std::nullopt;
    if (++normal_streak_ < config_.clear_after) return std::nullopt;
    normal_streak_ = 0;
    anomalous_in_episode_ = 0;
    alert_.state = AlertState::cleared;
    alert_.cleared_at_ms = now_ms;
    return alert_;
  }

  normal_streak_ = 0;
  ++anomalous_streak_;
  ++anomalous_in_episode_;
  if (!open()) {
    if (anomalous_streak_ < config_.raise_after) return std::nullopt;
    alert_ = Alert{};
    alert_.state = AlertState::raised;
    alert_.fault = verdict.fault;
    alert_.severity = verdict.severity;
    alert_.reason = verdict.reason;
    alert_.raised_at_ms = now_ms;
    alert_.anomalous_windows = anomalous_streak_;
    anomalous_in_episode_ = anomalous_streak_;
    return alert_;
  }

  alert_.anomalous_windows = anomalous_in_episode_;
  alert_.reason = verdict.reason;
  bool changed = false;
  if (verdict.severity > alert_.severity) {
    alert_.severity = verdict.severity;
    alert_.state = AlertState::raised;
    changed = true;
  }
  // A window without a clear diagnosis does not hide the fault found before.
  if (verdict.fault != alert_.fault && verdict.fault != kUnclassifiedFault) {
    alert_.fault = verdict.fault;
    changed = true;
  }
  if (!changed) return std::nullopt;
  return alert_;
}

std::optional<Alert> AlertTracker::acknowledge(std::int64_t now_ms) {
  if (!open()) return std::nullopt;
  if (alert_.state == AlertState::raised) {
    alert_.state = AlertState::acknowledged;
    alert_.acknowledged_at_ms = now_ms;
  }
  return alert_;
}

}  // namespace vibration
