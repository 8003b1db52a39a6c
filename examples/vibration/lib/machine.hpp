// What the simulator and the analyzer agree on about a machine: its shaft speed, its
// rolling-element bearing and the faults the simulator can inject.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace vibration {

enum class Fault { none, imbalance, misalignment, bearing_outer, bearing_inner };

std::string_view to_string(Fault fault) noexcept;
// Accepts the names to_string produces ("none", "imbalance", "misalignment",
// "bearing-outer", "bearing-inner").
std::optional<Fault> parse_fault(std::string_view name) noexcept;

// Geometry of a deep-groove ball bearing. The default is a 6205 (the drive-end bearing
// of many small motors): 9 balls of 7.94 mm on a 39.04 mm pitch circle.
struct BearingGeometry {
  int balls = 9;
  double ball_diameter_mm = 7.94;
  double pitch_diameter_mm = 39.04;
  double contact_angle_deg = 0.0;
};

// Defect frequencies as multiples of the shaft frequency (orders): a defect on the outer
// race is struck `bpfo` times a revolution, one on the inner race `bpfi` times.
struct DefectOrders {
  double bpfo = 0;  // ball pass frequency, outer race
  double bpfi = 0;  // ball pass frequency, inner race
  double bsf = 0;   // ball spin frequency
  double ftf = 0;   // fundamental train (cage) frequency
};

DefectOrders defect_orders(const BearingGeometry& bearing) noexcept;

}  // namespace vibration
