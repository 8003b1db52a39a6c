// The analyzer against the simulator's signal model: each injected fault is found and
// named, a healthy machine stays quiet, and the numbers match what physics says they are.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "lib/analysis.hpp"
#include "lib/signal_model.hpp"

namespace vibration {
namespace {

constexpr double kSampleRate = 10000.0;
constexpr std::size_t kWindow = 4096;

// Shaft speeds of a 4-pole, a 2-pole and a slow machine: the defect and harmonic
// frequencies land on different bins for each.
const double kShaftSpeeds[] = {24.75, 29.6, 49.5, 12.0};

std::vector<float> sine(double amplitude, double hz, std::size_t n = kWindow) {
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = static_cast<float>(amplitude * std::sin(2.0 * std::numbers::pi * hz * static_cast<double>(i) / kSampleRate));
  }
  return out;
}

TEST(VelocityRms, SineOfKnownVelocityIsMeasuredWithinTwoPercent) {
  // 4.0 mm/s peak at 80 Hz is an acceleration of 4e-3 * 2 pi * 80 m/s^2; RMS 4 / sqrt 2.
  const double hz = 80.0;
  Analyzer analyzer;
  const Features f = analyzer.analyze(sine(4.0e-3 * 2.0 * std::numbers::pi * hz, hz), kSampleRate, 25.0);
  EXPECT_NEAR(f.velocity_rms_mm_s, 4.0 / std::sqrt(2.0), 0.02 * 4.0 / std::sqrt(2.0));
  EXPECT_NEAR(f.crest_factor, std::sqrt(2.0), 0.01);
  EXPECT_NEAR(f.kurtosis, 1.5, 0.02);  // a pure sine
}

TEST(VelocityRms, ComponentsOutsideTheIsoBandDoNotCount) {
  Analyzer analyzer;
  // Large accelerations at 5 Hz (below the band) and 2 kHz (above it).
  std::vector<float> signal = sine(0.2, 5.0);
  const std::vector<float> high = sine(20.0, 2000.0);
  for (std::size_t i = 0; i < signal.size(); ++i) signal[i] += high[i];
  const Features f = analyzer.analyze(signal, kSampleRate, 25.0);
  EXPECT_LT(f.velocity_rms_mm_s, 0.2);
  EXPECT_GT(f.acceleration_rms_m_s2, 10.0);
}

TEST(VelocityRms, OrderBandsSeparateTheHarmonics) {
  Analyzer analyzer;
  const double shaft = 24.75;
  std::vector<float> signal = sine(3.0e-3 * 2.0 * std::numbers::pi * shaft, shaft);
  const std::vector<float> second = sine(1.0e-3 * 2.0 * std::numbers::pi * 2.0 * shaft, 2.0 * shaft);
  for (std::size_t i = 0; i < signal.size(); ++i) signal[i] += second[i];
  const Features f = analyzer.analyze(signal, kSampleRate, shaft);
  EXPECT_NEAR(f.order1_mm_s, 3.0 / std::sqrt(2.0), 0.05);
  EXPECT_NEAR(f.order2_mm_s, 1.0 / std::sqrt(2.0), 0.03);
  EXPECT_LT(f.order3_mm_s, 0.02);
}

TEST(Analyzer, RejectsWindowsItCannotAnalyze) {
  Analyzer analyzer;
  EXPECT_THROW(analyzer.analyze(std::vector<float>(100, 0.0f), kSampleRate, 25.0), std::invalid_argument);
  EXPECT_THROW(analyzer.analyze(std::vector<float>(kWindow, 0.0f), kSampleRate, 0.0), std::invalid_argument);
}

TEST(Analyzer, SilenceIsNotAnAnomaly) {
  Analyzer analyzer;
  const Features f = analyzer.analyze(std::vector<float>(kWindow, 0.0f), kSampleRate, 25.0);
  EXPECT_EQ(f.velocity_rms_mm_s, 0.0);
  EXPECT_FALSE(analyzer.diagnose(f).anomalous);
}

class HealthyMachine : public ::testing::TestWithParam<double> {};

TEST_P(HealthyMachine, StaysQuietOverManyWindowsAndSeeds) {
  Analyzer analyzer;
  MachineModel model;
  model.shaft_hz = GetParam();
  int anomalies = 0;
  for (std::uint64_t seed = 1; seed <= 10; ++seed) {
    SignalGenerator generator(model, kSampleRate, seed);
    for (int w = 0; w < 10; ++w) {
      const Features f = analyzer.analyze(generator.next_window(kWindow), kSampleRate, model.shaft_hz);
      const Diagnosis d = analyzer.diagnose(f);
      if (d.anomalous) {
        ++anomalies;
        ADD_FAILURE() << "seed " << seed << " window " << w << ": " << d.reason;
      }
      EXPECT_EQ(f.zone, Zone::A);
      EXPECT_LT(f.kurtosis, 3.5);
    }
  }
  EXPECT_EQ(anomalies, 0);
}

INSTANTIATE_TEST_SUITE_P(ShaftSpeeds, HealthyMachine, ::testing::ValuesIn(kShaftSpeeds));

struct FaultCase {
  Fault fault;
  double shaft_hz;
};

class InjectedFault : public ::testing::TestWithParam<FaultCase> {};

TEST_P(InjectedFault, IsFoundAndNamedInEveryWindow) {
  const auto [fault, shaft] = GetParam();
  Analyzer analyzer;
  MachineModel model;
  model.shaft_hz = shaft;
  SignalGenerator generator(model, kSampleRate, 7);
  generator.next_window(kWindow);  // healthy history before the fault
  generator.set_fault(fault);
  for (int w = 0; w < 5; ++w) {
    const Features f = analyzer.analyze(generator.next_window(kWindow), kSampleRate, shaft);
    const Diagnosis d = analyzer.diagnose(f);
    ASSERT_TRUE(d.anomalous) << "window " << w;
    EXPECT_EQ(d.fault, fault) << d.reason;
    EXPECT_FALSE(d.reason.empty());
  }
}

std::vector<FaultCase> fault_cases() {
  std::vector<FaultCase> cases;
  for (const Fault fault : {Fault::imbalance, Fault::misalignment, Fault::bearing_outer, Fault::bearing_inner}) {
    for (const double shaft : kShaftSpeeds) cases.push_back({fault, shaft});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllFaults, InjectedFault, ::testing::ValuesIn(fault_cases()),
                         [](const ::testing::TestParamInfo<FaultCase>& param_info) {
                           std::string name(to_string(param_info.param.fault));
                           std::erase(name, '-');
                           return name + "_" + std::to_string(static_cast<int>(param_info.param.shaft_hz * 100)) + "cHz";
                         });

TEST(InjectedFault, ImbalanceRaisesOneTimesAndTheZone) {
  Analyzer analyzer;
  MachineModel model;
  SignalGenerator healthy(model, kSampleRate, 3);
  SignalGenerator faulty(model, kSampleRate, 3);
  faulty.set_fault(Fault::imbalance);
  const Features before = analyzer.analyze(healthy.next_window(kWindow), kSampleRate, model.shaft_hz);
  const Features after = analyzer.analyze(faulty.next_window(kWindow), kSampleRate, model.shaft_hz);
  EXPECT_GT(after.order1_mm_s, 4.0 * before.order1_mm_s);
  EXPECT_NEAR(after.order2_mm_s, before.order2_mm_s, 0.05);
  EXPECT_GE(after.zone, Zone::C);
}

TEST(InjectedFault, MisalignmentRaisesTwoAndThreeTimes) {
  Analyzer analyzer;
  MachineModel model;
  SignalGenerator healthy(model, kSampleRate, 3);
  SignalGenerator faulty(model, kSampleRate, 3);
  faulty.set_fault(Fault::misalignment);
  const Features before = analyzer.analyze(healthy.next_window(kWindow), kSampleRate, model.shaft_hz);
  const Features after = analyzer.analyze(faulty.next_window(kWindow), kSampleRate, model.shaft_hz);
  EXPECT_GT(after.order2_mm_s, 3.0 * before.order2_mm_s);
  EXPECT_GT(after.order3_mm_s, 3.0 * before.order3_mm_s);
  EXPECT_GT(after.order2_mm_s, after.order1_mm_s);
}

TEST(InjectedFault, BearingImpactsRaiseKurtosisAndCrestFactorNotVelocity) {
  Analyzer analyzer;
  MachineModel model;
  SignalGenerator healthy(model, kSampleRate, 3);
  SignalGenerator faulty(model, kSampleRate, 3);
  faulty.set_fault(Fault::bearing_outer);
  const Features before = analyzer.analyze(healthy.next_window(kWindow), kSampleRate, model.shaft_hz);
  const Features after = analyzer.analyze(faulty.next_window(kWindow), kSampleRate, model.shaft_hz);
  EXPECT_GT(after.kurtosis, 6.0);
  EXPECT_GT(after.crest_factor, 1.5 * before.crest_factor);
  EXPECT_GT(after.envelope_band_rms_m_s2, 3.0 * before.envelope_band_rms_m_s2);
  // Impacts ring at kHz: the ISO velocity band hardly sees an early bearing defect.
  EXPECT_NEAR(after.velocity_rms_mm_s, before.velocity_rms_mm_s, 0.1);
  EXPECT_EQ(after.bpfo_harmonics, 3u);
}

TEST(InjectedFault, SeverityZeroIsHealthy) {
  Analyzer analyzer;
  MachineModel model;
  SignalGenerator generator(model, kSampleRate, 5);
  generator.set_fault(Fault::bearing_inner, 0.0);
  EXPECT_FALSE(analyzer.diagnose(analyzer.analyze(generator.next_window(kWindow), kSampleRate, model.shaft_hz)).anomalous);
}

TEST(DefectOrders, Bearing6205MatchesPublishedValues) {
  // Manufacturer tables give BPFO 3.585, BPFI 5.415, BSF 2.357, FTF 0.398 for a 6205.
  const DefectOrders o = defect_orders(BearingGeometry{});
  EXPECT_NEAR(o.bpfo, 3.585, 0.01);
  EXPECT_NEAR(o.bpfi, 5.415, 0.01);
  EXPECT_NEAR(o.bsf, 2.357, 0.01);
  EXPECT_NEAR(o.ftf, 0.398, 0.005);
}

TEST(SignalGenerator, ConsecutiveWindowsJoinWithoutASeam) {
  MachineModel model;
  model.noise_rms_m_s2 = 0.0;
  SignalGenerator split(model, kSampleRate, 9);
  SignalGenerator whole(model, kSampleRate, 9);
  std::vector<float> joined = split.next_window(1000);
  const std::vector<float> rest = split.next_window(1000);
  joined.insert(joined.end(), rest.begin(), rest.end());
  const std::vector<float> reference = whole.next_window(2000);
  for (std::size_t i = 0; i < reference.size(); ++i) ASSERT_FLOAT_EQ(joined[i], reference[i]) << i;
}

}  // namespace
}  // namespace vibration
