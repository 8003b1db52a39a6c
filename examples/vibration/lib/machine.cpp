#include "lib/machine.hpp"

#include <array>
#include <cmath>
#include <numbers>
#include <utility>

namespace vibration {

namespace {
constexpr std::array<std::pair<Fault, std::string_view>, 5> kFaultNames{{
    {Fault::none, "none"},
    {Fault::imbalance, "imbalance"},
    {Fault::misalignment, "misalignment"},
    {Fault::bearing_outer, "bearing-outer"},
    {Fault::bearing_inner, "bearing-inner"},
}};
}  // namespace

std::string_view to_string(Fault fault) noexcept {
  for (const auto& [f, name] : kFaultNames) {
    if (f == fault) return name;
  }
  return "unknown";
}

std::optional<Fault> parse_fault(std::string_view name) noexcept {
  for (const auto& [f, n] : kFaultNames) {
    if (n == name) return f;
  }
  return std::nullopt;
}

DefectOrders defect_orders(const BearingGeometry& b) noexcept {
  const double ratio = b.ball_diameter_mm / b.pitch_diameter_mm * std::cos(b.contact_angle_deg * std::numbers::pi / 180.0);
  const double n = static_cast<double>(b.balls);
  DefectOrders o;
  o.bpfo = n / 2.0 * (1.0 - ratio);
  o.bpfi = n / 2.0 * (1.0 + ratio);
  o.bsf = b.pitch_diameter_mm / (2.0 * b.ball_diameter_mm) * (1.0 - ratio * ratio);
  o.ftf = 0.5 * (1.0 - ratio);
  return o;
}

}  // namespace vibration
