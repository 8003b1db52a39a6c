// ISO 10816-3 zone boundaries: a value on a boundary belongs to the higher zone.
#include <gtest/gtest.h>

#include <cmath>

#include "lib/analysis.hpp"

namespace vibration {
namespace {

struct Boundaries {
  MachineGroup group;
  double ab, bc, cd;
};

class IsoZone : public ::testing::TestWithParam<Boundaries> {};

TEST_P(IsoZone, BoundariesFollowTheStandardTable) {
  const auto b = GetParam();
  const ZoneLimits limits = zone_limits(b.group);
  EXPECT_DOUBLE_EQ(limits.ab, b.ab);
  EXPECT_DOUBLE_EQ(limits.bc, b.bc);
  EXPECT_DOUBLE_EQ(limits.cd, b.cd);

  EXPECT_EQ(iso_zone(0.0, b.group), Zone::A);
  EXPECT_EQ(iso_zone(std::nextafter(b.ab, 0.0), b.group), Zone::A);
  EXPECT_EQ(iso_zone(b.ab, b.group), Zone::B);
  EXPECT_EQ(iso_zone(std::nextafter(b.bc, 0.0), b.group), Zone::B);
  EXPECT_EQ(iso_zone(b.bc, b.group), Zone::C);
  EXPECT_EQ(iso_zone(std::nextafter(b.cd, 0.0), b.group), Zone::C);
  EXPECT_EQ(iso_zone(b.cd, b.group), Zone::D);
  EXPECT_EQ(iso_zone(100.0, b.group), Zone::D);
}

INSTANTIATE_TEST_SUITE_P(Groups, IsoZone,
                         ::testing::Values(Boundaries{MachineGroup::group1_rigid, 2.3, 4.5, 7.1},
                                           Boundaries{MachineGroup::group1_flexible, 3.5, 7.1, 11.0},
                                           Boundaries{MachineGroup::group2_rigid, 1.4, 2.8, 4.5},
                                           Boundaries{MachineGroup::group2_flexible, 2.3, 4.5, 7.1}));

TEST(IsoZoneNames, RoundTrip) {
  for (const auto g : {MachineGroup::group1_rigid, MachineGroup::group1_flexible, MachineGroup::group2_rigid,
                       MachineGroup::group2_flexible}) {
    EXPECT_EQ(parse_machine_group(to_string(g)), g);
  }
  EXPECT_FALSE(parse_machine_group("group3"));
}

TEST(Diagnosis, ZoneDIsCriticalAndZoneCWithoutPatternIsUnclassified) {
  Analyzer analyzer;
  Features f;
  f.velocity_rms_mm_s = 5.0;
  f.zone = Zone::D;
  f.order1_mm_s = 1.0;  // most energy elsewhere: no imbalance pattern
  f.order2_mm_s = 0.1;
  Diagnosis d = analyzer.diagnose(f);
  EXPECT_TRUE(d.anomalous);
  EXPECT_EQ(d.fault, Fault::none);
  EXPECT_EQ(d.severity, Severity::critical);

  f.velocity_rms_mm_s = 3.0;
  f.zone = Zone::C;
  d = analyzer.diagnose(f);
  EXPECT_TRUE(d.anomalous);
  EXPECT_EQ(d.severity, Severity::warning);

  f.zone = Zone::B;
  EXPECT_FALSE(analyzer.diagnose(f).anomalous);
}

}  // namespace
}  // namespace vibration
