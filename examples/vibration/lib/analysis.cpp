// Design note. Velocity comes from acceleration in the frequency domain: a component
// A(f) of acceleration is a velocity A(f) / (2 pi f), so integrating is a division per
// bin, restricted to the ISO band (10 Hz - 1 kHz), which also removes the drift a
// time-domain integration would accumulate. RMS values come from the Hann-windowed
// spectrum through Parseval's theorem, with the window's energy correction, so a band
// RMS is the RMS of the components inside the band.
//
// Bearing defects show little in the velocity band: their energy sits at the structural
// resonance the impacts excite. The envelope method finds them: band-pass around the
// resonance, take the magnitude of the analytic signal (Hilbert transform: drop negative
// frequencies), and look at the envelope's spectrum, where the impact rate (BPFO, BPFI)
// and its harmonics stand out over a flat floor.
#include "lib/analysis.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace vibration {

namespace {

constexpr double kTwoPi = 2.0 * std::numbers::pi;

std::vector<double> hann(std::size_t n) {
  std::vector<double> w(n);
  for (std::size_t i = 0; i < n; ++i) w[i] = 0.5 * (1.0 - std::cos(kTwoPi * static_cast<double>(i) / static_cast<double>(n)));
  return w;
}

// Bins within `center` +- max(3 bins, 3 %): a Hann main lobe spans +-2 bins, and rolling
// elements slip by a percent or two.
std::pair<std::size_t, std::size_t> bins_around(double center_hz, double bin_hz, std::size_t last_bin) {
  const double half_width = std::max(3.0 * bin_hz, 0.03 * center_hz);
  const double low = std::max(1.0, std::ceil((center_hz - half_width) / bin_hz));
  const double high = std::min(static_cast<double>(last_bin), std::floor((center_hz + half_width) / bin_hz));
  if (high < low) return {1, 0};
  return {static_cast<std::size_t>(low), static_cast<std::size_t>(high)};
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  const auto mid = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  std::nth_element(values.begin(), mid, values.end());
  return *mid;
}

}  // namespace

ZoneLimits zone_limits(MachineGroup group) noexcept {
  switch (group) {
    case MachineGroup::group1_rigid: return {2.3, 4.5, 7.1};
    case MachineGroup::group1_flexible: return {3.5, 7.1, 11.0};
    case MachineGroup::group2_rigid: return {1.4, 2.8, 4.5};
    case MachineGroup::group2_flexible: return {2.3, 4.5, 7.1};
  }
  return {1.4, 2.8, 4.5};
}

Zone iso_zone(double velocity_rms_mm_s, MachineGroup group) noexcept {
  const ZoneLimits l = zone_limits(group);
  if (velocity_rms_mm_s < l.ab) return Zone::A;
  if (velocity_rms_mm_s < l.bc) return Zone::B;
  if (velocity_rms_mm_s < l.cd) return Zone::C;
  return Zone::D;
}

std::string_view to_string(Zone zone) noexcept {
  switch (zone) {
    case Zone::A: return "A";
    case Zone::B: return "B";
    case Zone::C: return "C";
    case Zone::D: return "D";
  }
  return "?";
}

namespace {
constexpr std::array<std::pair<MachineGroup, std::string_view>, 4> kGroupNames{{
    {MachineGroup::group1_rigid, "group1-rigid"},
    {MachineGroup::group1_flexible, "group1-flexible"},
    {MachineGroup::group2_rigid, "group2-rigid"},
    {MachineGroup::group2_flexible, "group2-flexible"},
}};
}  // namespace

std::string_view to_string(MachineGroup group) noexcept {
  for (const auto& [g, name] : kGroupNames) {
    if (g == group) return name;
  }
  return "?";
}

std::optional<MachineGroup> parse_machine_group(std::string_view name) noexcept {
  for (const auto& [g, n] : kGroupNames) {
    if (n == name) return g;
  }
  return std::nullopt;
}

std::string_view to_string(Severity severity) noexcept {
  return severity == Severity::critical ? "critical" : "warning";
}

std::optional<Severity> parse_severity(std::string_view name) noexcept {
  if (name == "warning") return Severity::warning;
  if (name == "critical") return Severity::critical;
  return std::nullopt;
}

Analyzer::Analyzer(AnalyzerConfig config) : config_(std::move(config)) {}
Analyzer::~Analyzer() = default;

Fft& Analyzer::fft(std::size_t size) {
  auto& slot = ffts_[size];
  if (!slot) slot = std::make_unique<Fft>(size);
  return *slot;
}

Features Analyzer::analyze(std::span<const float> samples, double sample_rate_hz, double shaft_hz) {
  if (samples.size() < 256) throw std::invalid_argument("a window needs at least 256 samples");
  if (!(sample_rate_hz > 0) || !(shaft_hz > 0)) throw std::invalid_argument("sample rate and shaft frequency must be positive");
  const std::size_t n = samples.size();
  const double dn = static_cast<double>(n);
  Features f;
  f.samples = n;
  f.sample_rate_hz = sample_rate_hz;
  f.shaft_hz = shaft_hz;

  // Time domain, around the mean (an accelerometer's DC offset is not vibration).
  double mean = 0;
  for (const float s : samples) mean += s;
  mean /= dn;
  std::vector<double> x(n);
  double m2 = 0;
  double m4 = 0;
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = samples[i] - mean;
    const double sq = x[i] * x[i];
    m2 += sq;
    m4 += sq * sq;
    f.peak_m_s2 = std::max(f.peak_m_s2, std::abs(x[i]));
  }
  m2 /= dn;
  m4 /= dn;
  f.acceleration_rms_m_s2 = std::sqrt(m2);
  f.crest_factor = f.acceleration_rms_m_s2 > 0 ? f.peak_m_s2 / f.acceleration_rms_m_s2 : 0;
  f.kurtosis = m2 > 0 ? m4 / (m2 * m2) : 0;

  Fft& transform = fft(n);
  const double bin_hz = sample_rate_hz / dn;
  const std::size_t nyquist_bin = n / 2;
  const std::size_t last_bin = nyquist_bin - 1;

  // Velocity spectrum (mean square per bin, (mm/s)^2) from the windowed spectrum.
  const std::vector<double> window = hann(n);
  double window_energy = 0;
  std::vector<double> windowed(n);
  for (std::size_t i = 0; i < n; ++i) {
    windowed[i] = x[i] * window[i];
    window_energy += window[i] * window[i];
  }
  const auto spectrum = transform.forward(windowed);
  std::vector<double> velocity_ms(nyquist_bin + 1, 0.0);
  double velocity_total = 0;
  for (std::size_t k = 1; k <= last_bin; ++k) {
    const double hz = static_cast<double>(k) * bin_hz;
    if (hz < config_.velocity_band_low_hz || hz > config_.velocity_band_high_hz) continue;
    const double acceleration_ms = 2.0 * std::norm(spectrum[k]) / (dn * window_energy);
    const double to_mm_s = 1000.0 / (kTwoPi * hz);
    velocity_ms[k] = acceleration_ms * to_mm_s * to_mm_s;
    velocity_total += velocity_ms[k];
  }
  f.velocity_rms_mm_s = std::sqrt(velocity_total);
  f.zone = iso_zone(f.velocity_rms_mm_s, config_.group);
  auto band_rms = [&](double center_hz) {
    const auto [lo, hi] = bins_around(center_hz, bin_hz, last_bin);
    double sum = 0;
    for (std::size_t k = lo; k <= hi; ++k) sum += velocity_ms[k];
    return std::sqrt(sum);
  };
  f.order1_mm_s = band_rms(shaft_hz);
  f.order2_mm_s = band_rms(2.0 * shaft_hz);
  f.order3_mm_s = band_rms(3.0 * shaft_hz);

  // Envelope: the analytic signal of the resonance band, from the unwindowed spectrum so
  // that the window does not modulate the envelope.
  const auto raw = transform.forward(x);
  const double band_low = config_.envelope_band_low_hz;
  const double band_high = std::min(config_.envelope_band_high_hz, 0.9 * sample_rate_hz / 2.0);
  std::vector<std::complex<double>> analytic(n, {0.0, 0.0});
  double band_energy = 0;
  for (std::size_t k = 1; k <= last_bin; ++k) {
    const double hz = static_cast<double>(k) * bin_hz;
    if (hz < band_low || hz > band_high) continue;
    analytic[k] = 2.0 * raw[k];
    band_energy += 2.0 * std::norm(raw[k]) / (dn * dn);
  }
  f.envelope_band_rms_m_s2 = std::sqrt(band_energy);
  const auto analytic_time = transform.inverse(analytic);
  std::vector<double> envelope(n);
  double envelope_mean = 0;
  for (std::size_t i = 0; i < n; ++i) {
    envelope[i] = std::abs(analytic_time[i]) / dn;
    envelope_mean += envelope[i];
  }
  envelope_mean /= dn;
  double window_sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    envelope[i] = (envelope[i] - envelope_mean) * window[i];
    window_sum += window[i];
  }
  const auto envelope_spectrum_bins = transform.forward(envelope);
  std::vector<double> envelope_amplitude(nyquist_bin + 1, 0.0);
  for (std::size_t k = 1; k <= last_bin; ++k) envelope_amplitude[k] = 2.0 * std::abs(envelope_spectrum_bins[k]) / window_sum;

  const DefectOrders orders = defect_orders(config_.bearing);
  f.bpfo_hz = orders.bpfo * shaft_hz;
  f.bpfi_hz = orders.bpfi * shaft_hz;
  // The floor: the median over the range where defect lines and their harmonics live.
  const double floor_high_hz = std::min(4.0 * f.bpfi_hz, sample_rate_hz / 4.0);
  std::vector<double> floor_bins;
  for (std::size_t k = 1; k <= last_bin && static_cast<double>(k) * bin_hz <= floor_high_hz; ++k) {
    if (static_cast<double>(k) * bin_hz >= 0.5 * shaft_hz) floor_bins.push_back(envelope_amplitude[k]);
  }
  const double floor = median(std::move(floor_bins));
  auto line_snr = [&](double hz) {
    if (floor <= 0) return 0.0;
    const auto [lo, hi] = bins_around(hz, bin_hz, last_bin);
    double peak = 0;
    for (std::size_t k = lo; k <= hi; ++k) peak = std::max(peak, envelope_amplitude[k]);
    return peak / floor;
  };
  auto harmonics = [&](double hz) {
    std::size_t count = 0;
    for (int h = 1; h <= 3; ++h) {
      if (line_snr(h * hz) >= config_.envelope_snr / 2.0) ++count;
    }
    return count;
  };
  f.bpfo_snr = line_snr(f.bpfo_hz);
  f.bpfi_snr = line_snr(f.bpfi_hz);
  f.bpfo_harmonics = harmonics(f.bpfo_hz);
  f.bpfi_harmonics = harmonics(f.bpfi_hz);
  return f;
}

Diagnosis Analyzer::diagnose(const Features& f) const {
  Diagnosis d;
  const bool zone_d = f.zone == Zone::D;
  d.severity = zone_d ? Severity::critical : Severity::warning;

  const bool outer = f.bpfo_snr >= config_.envelope_snr && f.bpfo_harmonics >= config_.envelope_harmonics;
  const bool inner = f.bpfi_snr >= config_.envelope_snr && f.bpfi_harmonics >= config_.envelope_harmonics;
  if (outer || inner) {
    // Harmonics of one can land near the other; the stronger fundamental decides.
    const bool is_outer = outer && (!inner || f.bpfo_snr >= f.bpfi_snr);
    d.anomalous = true;
    d.fault = is_outer ? Fault::bearing_outer : Fault::bearing_inner;
    const double hz = is_outer ? f.bpfo_hz : f.bpfi_hz;
    const double snr = is_outer ? f.bpfo_snr : f.bpfi_snr;
    d.reason = fmt::format("envelope spectrum line at {} ({:.1f} Hz) {:.1f}x the floor, kurtosis {:.1f}, crest factor {:.1f}",
                           is_outer ? "BPFO" : "BPFI", hz, snr, f.kurtosis, f.crest_factor);
    return d;
  }
  if (f.order1_mm_s > 0 && f.order2_mm_s >= config_.misalignment_ratio * f.order1_mm_s &&
      f.order2_mm_s >= config_.misalignment_min_mm_s) {
    d.anomalous = true;
    d.fault = Fault::misalignment;
    d.reason = fmt::format("2x ({:.2f} mm/s) is {:.0f} % of 1x ({:.2f} mm/s), 3x {:.2f} mm/s", f.order2_mm_s,
                           100.0 * f.order2_mm_s / f.order1_mm_s, f.order1_mm_s, f.order3_mm_s);
    return d;
  }
  if (f.zone >= Zone::C) {
    d.anomalous = true;
    const double share = f.velocity_rms_mm_s > 0 ? (f.order1_mm_s * f.order1_mm_s) / (f.velocity_rms_mm_s * f.velocity_rms_mm_s) : 0;
    if (share >= config_.imbalance_share) {
      d.fault = Fault::imbalance;
      d.reason = fmt::format("velocity {:.2f} mm/s RMS (zone {}), {:.0f} % of it at 1x ({:.2f} mm/s)", f.velocity_rms_mm_s,
                             to_string(f.zone), 100.0 * share, f.order1_mm_s);
    } else {
      d.reason = fmt::format("velocity {:.2f} mm/s RMS (zone {}) without a dominant 1x, 2x or bearing line",
                             f.velocity_rms_mm_s, to_string(f.zone));
    }
  }
  return d;
}

}  // namespace vibration
