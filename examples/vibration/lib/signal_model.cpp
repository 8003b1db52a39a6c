#include "lib/signal_model.hpp"

#include <cmath>
#include <numbers>

namespace vibration {

namespace {
constexpr double kTwoPi = 2.0 * std::numbers::pi;
// Rolling elements slip a little, so the strikes are not exactly periodic; analysts
// allow for 1-2 %.
constexpr double kSlipJitter = 0.01;
}  // namespace

SignalGenerator::SignalGenerator(MachineModel model, double sample_rate_hz, std::uint64_t seed)
    : model_(model), sample_rate_(sample_rate_hz), random_(seed), noise_(0.0, model.noise_rms_m_s2) {
  std::uniform_real_distribution<double> phase(0.0, kTwoPi);
  phase2_ = phase(random_);
  phase3_ = phase(random_);
}

void SignalGenerator::set_fault(Fault fault, double severity) {
  fault_ = fault;
  severity_ = severity;
  impacts_.clear();
  next_impact_s_ = static_cast<double>(next_sample_) / sample_rate_;
}

double SignalGenerator::impact_amplitude(double t) const {
  const double base = model_.impact_m_s2 * severity_;
  if (fault_ == Fault::bearing_inner) {
    // The spall passes through the load zone once a revolution.
    return base * (0.6 + 0.4 * std::cos(kTwoPi * model_.shaft_hz * t));
  }
  return base;
}

std::vector<float> SignalGenerator::next_window(std::size_t samples) {
  double v1 = model_.order1_mm_s;
  double v2 = model_.order2_mm_s;
  double v3 = model_.order3_mm_s;
  if (fault_ == Fault::imbalance) {
    v1 *= 1.0 + 4.0 * severity_;
  } else if (fault_ == Fault::misalignment) {
    v1 *= 1.0 + 0.2 * severity_;
    v2 += 1.2 * severity_ * model_.order1_mm_s;
    v3 += 0.65 * severity_ * model_.order1_mm_s;
  }
  const double f1 = model_.shaft_hz;
  // Velocity amplitude v (mm/s) at f is acceleration amplitude v * 2 pi f / 1000 (m/s^2).
  const double a1 = v1 * kTwoPi * f1 / 1000.0;
  const double a2 = v2 * kTwoPi * 2.0 * f1 / 1000.0;
  const double a3 = v3 * kTwoPi * 3.0 * f1 / 1000.0;

  const bool bearing = fault_ == Fault::bearing_outer || fault_ == Fault::bearing_inner;
  const DefectOrders orders = defect_orders(model_.bearing);
  const double defect_hz = f1 * (fault_ == Fault::bearing_inner ? orders.bpfi : orders.bpfo);
  const double ring_s = 10.0 * model_.impact_decay_s;
  std::uniform_real_distribution<double> slip(-kSlipJitter, kSlipJitter);

  std::vector<float> out(samples);
  for (std::size_t i = 0; i < samples; ++i) {
    const double t = static_cast<double>(next_sample_ + i) / sample_rate_;
    double a = a1 * std::sin(kTwoPi * f1 * t) + a2 * std::sin(kTwoPi * 2.0 * f1 * t + phase2_) +
               a3 * std::sin(kTwoPi * 3.0 * f1 * t + phase3_) + noise_(random_);
    if (bearing) {
      while (next_impact_s_ <= t) {
        impacts_.push_back(next_impact_s_);
        next_impact_s_ += (1.0 + slip(random_)) / defect_hz;
      }
      while (!impacts_.empty() && t - impacts_.front() > ring_s) impacts_.pop_front();
      for (const double ti : impacts_) {
        const double dt = t - ti;
        a += impact_amplitude(ti) * std::exp(-dt / model_.impact_decay_s) * std::sin(kTwoPi * model_.resonance_hz * dt);
      }
    }
    out[i] = static_cast<float>(a);
  }
  next_sample_ += samples;
  return out;
}

}  // namespace vibration
