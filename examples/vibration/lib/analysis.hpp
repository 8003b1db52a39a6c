// Condition-monitoring features of one window of acceleration samples, the ISO 10816-3
// severity zone, and a rule-based diagnosis. Pure functions of their inputs (the Analyzer
// object only caches FFT plans), so they are tested without a broker.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "lib/fft.hpp"
#include "lib/machine.hpp"

namespace vibration {

// ISO 10816-3 evaluation zones: A newly commissioned, B unrestricted long-term operation,
// C restricted operation (plan a repair), D severe enough to cause damage.
enum class Zone { A, B, C, D };

// ISO 10816-3 machine groups: group 1 large machines (300 kW to 50 MW), group 2 medium
// machines (15 kW to 300 kW); each on a rigid or a flexible foundation.
enum class MachineGroup { group1_rigid, group1_flexible, group2_rigid, group2_flexible };

struct ZoneLimits {
  double ab = 0;  // mm/s RMS: zone A below, B from here
  double bc = 0;
  double cd = 0;
};

ZoneLimits zone_limits(MachineGroup group) noexcept;
Zone iso_zone(double velocity_rms_mm_s, MachineGroup group) noexcept;
std::string_view to_string(Zone zone) noexcept;
std::string_view to_string(MachineGroup group) noexcept;
std::optional<MachineGroup> parse_machine_group(std::string_view name) noexcept;

enum class Severity { warning, critical };
std::string_view to_string(Severity severity) noexcept;
std::optional<Severity> parse_severity(std::string_view name) noexcept;

struct AnalyzerConfig {
  MachineGroup group = MachineGroup::group2_rigid;
  BearingGeometry bearing;
  double velocity_band_low_hz = 10.0;  // ISO 10816-3 band for machines above 600 rpm
  double velocity_band_high_hz = 1000.0;
  // Band around the structural resonances that bearing impacts excite; demodulated to get
  // the envelope spectrum.
  double envelope_band_low_hz = 2000.0;
  double envelope_band_high_hz = 4500.0;
  // Diagnosis thresholds (see docs/examples.md for the reasoning).
  double misalignment_ratio = 0.75;        // 2x velocity / 1x velocity
  double misalignment_min_mm_s = 0.7;      // 2x velocity RMS must exceed this too
  double imbalance_share = 0.8;            // share of the velocity energy at 1x
  double envelope_snr = 6.0;               // defect line over the envelope spectrum's median
  std::size_t envelope_harmonics = 2;      // of the first 3 defect harmonics, how many above half that
};

struct Features {
  std::size_t samples = 0;
  double sample_rate_hz = 0;
  double shaft_hz = 0;
  double acceleration_rms_m_s2 = 0;
  double peak_m_s2 = 0;
  double crest_factor = 0;
  double kurtosis = 0;  // 3 for Gaussian noise, 1.5 for a pure sine
  double velocity_rms_mm_s = 0;  // in [velocity_band_low_hz, velocity_band_high_hz]
  Zone zone = Zone::A;
  // Velocity RMS in narrow bands around 1x, 2x, 3x the shaft frequency.
  double order1_mm_s = 0;
  double order2_mm_s = 0;
  double order3_mm_s = 0;
  double envelope_band_rms_m_s2 = 0;  // acceleration RMS in the envelope band
  double bpfo_hz = 0;
  double bpfi_hz = 0;
  // Envelope-spectrum line at the defect frequency over the spectrum's median, and how
  // many of the first three harmonics stand out.
  double bpfo_snr = 0;
  double bpfi_snr = 0;
  std::size_t bpfo_harmonics = 0;
  std::size_t bpfi_harmonics = 0;
};

struct Diagnosis {
  bool anomalous = false;
  Fault fault = Fault::none;  // none with anomalous: excessive vibration of unknown cause
  Severity severity = Severity::warning;
  std::string reason;  // one line a technician can act on
};

class Analyzer {
 public:
  explicit Analyzer(AnalyzerConfig config = {});
  ~Analyzer();

  const AnalyzerConfig& config() const noexcept { return config_; }
  // Needs at least 256 samples and a shaft frequency above 0.
  Features analyze(std::span<const float> samples, double sample_rate_hz, double shaft_hz);
  Diagnosis diagnose(const Features& features) const;

 private:
  Fft& fft(std::size_t size);

  AnalyzerConfig config_;
  std::map<std::size_t, std::unique_ptr<Fft>> ffts_;
};

}  // namespace vibration
