// The simulated accelerometer: a physical-enough model of a rotating machine, usable as a
// library by the simulator and by tests.
//
// A healthy machine vibrates at its shaft frequency and a few harmonics (residual
// imbalance, slight misalignment), plus broadband noise. Faults change that picture the
// way vibration analysts expect to see them:
//   imbalance      the 1x component grows (a heavy spot pulls once a revolution);
//   misalignment   2x and 3x grow relative to 1x (the coupling flexes twice a revolution);
//   bearing-outer  a spall on the stationary outer race is struck at BPFO; each strike
//                  rings the structure's resonance (a few kHz) and decays in a
//                  millisecond, so the raw signal gets sharp bursts (high kurtosis) and
//                  its envelope repeats at BPFO;
//   bearing-inner  the same at BPFI, but the spall rotates through the load zone, so the
//                  strikes are amplitude-modulated at 1x (sidebands at BPFI +- 1x).
// Samples are acceleration in m/s^2. Time runs on across windows, so consecutive
// windows join without a seam.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <random>
#include <vector>

#include "lib/machine.hpp"

namespace vibration {

struct MachineModel {
  double shaft_hz = 24.75;  // 1485 rpm: a 4-pole motor under load at 50 Hz
  // Healthy velocity amplitudes (peak, mm/s) of the shaft harmonics.
  double order1_mm_s = 1.0;
  double order2_mm_s = 0.3;
  double order3_mm_s = 0.15;
  double noise_rms_m_s2 = 0.05;
  double resonance_hz = 3000.0;     // structural resonance the bearing impacts excite
  double impact_m_s2 = 1.5;         // initial amplitude of one impact's ringing
  double impact_decay_s = 0.0005;   // time constant of that ringing
  BearingGeometry bearing;
};

class SignalGenerator {
 public:
  SignalGenerator(MachineModel model, double sample_rate_hz, std::uint64_t seed);

  // severity scales how far the fault has progressed; 1 is a clear, alert-worthy fault.
  void set_fault(Fault fault, double severity = 1.0);
  Fault fault() const noexcept { return fault_; }
  double severity() const noexcept { return severity_; }
  const MachineModel& model() const noexcept { return model_; }
  double sample_rate_hz() const noexcept { return sample_rate_; }

  // The next `samples` samples.
  std::vector<float> next_window(std::size_t samples);

 private:
  double impact_amplitude(double t) const;

  MachineModel model_;
  double sample_rate_;
  std::mt19937_64 random_;
  std::normal_distribution<double> noise_;
  double phase2_ = 0;
  double phase3_ = 0;
  Fault fault_ = Fault::none;
  double severity_ = 1.0;
  std::uint64_t next_sample_ = 0;
  double next_impact_s_ = 0;
  std::deque<double> impacts_;  // times of impacts whose ringing may still be audible
};

}  // namespace vibration
