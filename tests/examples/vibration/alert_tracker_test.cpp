// Debouncing: N anomalous windows in a row raise, M normal ones clear, acknowledgement
// and escalation.
#include <gtest/gtest.h>

#include "lib/alert_tracker.hpp"

namespace vibration {
namespace {

Verdict anomalous(std::string fault = "imbalance", Severity severity = Severity::warning) {
  return {true, std::move(fault), severity, "why"};
}
Verdict normal() { return {}; }

TEST(AlertTracker, RaisesOnlyAfterConsecutiveAnomalousWindows) {
  AlertTracker t({3, 5});
  EXPECT_FALSE(t.observe(anomalous(), 1));
  EXPECT_FALSE(t.observe(anomalous(), 2));
  const auto alert = t.observe(anomalous(), 3);
  ASSERT_TRUE(alert);
  EXPECT_EQ(alert->state, AlertState::raised);
  EXPECT_EQ(alert->fault, "imbalance");
  EXPECT_EQ(alert->raised_at_ms, 3);
  EXPECT_EQ(alert->anomalous_windows, 3u);
  EXPECT_TRUE(t.open());
}

TEST(AlertTracker, ANormalWindowResetsTheRaiseCount) {
  AlertTracker t({3, 5});
  t.observe(anomalous(), 1);
  t.observe(anomalous(), 2);
  EXPECT_FALSE(t.observe(normal(), 3));
  EXPECT_FALSE(t.observe(anomalous(), 4));
  EXPECT_FALSE(t.observe(anomalous(), 5));
  EXPECT_FALSE(t.open());
  EXPECT_TRUE(t.observe(anomalous(), 6));
}

TEST(AlertTracker, ClearsOnlyAfterConsecutiveNormalWindows) {
  AlertTracker t({1, 3});
  ASSERT_TRUE(t.observe(anomalous(), 1));
  EXPECT_FALSE(t.observe(normal(), 2));
  EXPECT_FALSE(t.observe(normal(), 3));
  EXPECT_FALSE(t.observe(anomalous(), 4));  // still open, same fault: nothing new to say
  EXPECT_FALSE(t.observe(normal(), 5));
  EXPECT_FALSE(t.observe(normal(), 6));
  const auto cleared = t.observe(normal(), 7);
  ASSERT_TRUE(cleared);
  EXPECT_EQ(cleared->state, AlertState::cleared);
  EXPECT_EQ(cleared->cleared_at_ms, 7);
  EXPECT_FALSE(t.open());
  EXPECT_FALSE(t.observe(normal(), 8));
}

TEST(AlertTracker, AcknowledgeNeedsAnOpenAlertAndIsIdempotent) {
  AlertTracker t({2, 2});
  EXPECT_FALSE(t.acknowledge(1));
  t.observe(anomalous(), 2);
  t.observe(anomalous(), 3);
  const auto acked = t.acknowledge(4);
  ASSERT_TRUE(acked);
  EXPECT_EQ(acked->state, AlertState::acknowledged);
  EXPECT_EQ(acked->acknowledged_at_ms, 4);
  const auto again = t.acknowledge(5);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->acknowledged_at_ms, 4);
  // An acknowledged alert still clears.
  t.observe(normal(), 6);
  const auto cleared = t.observe(normal(), 7);
  ASSERT_TRUE(cleared);
  EXPECT_EQ(cleared->state, AlertState::cleared);
  EXPECT_FALSE(t.acknowledge(8));
}

TEST(AlertTracker, EscalationRaisesAnAcknowledgedAlertAgain) {
  AlertTracker t({1, 5});
  ASSERT_TRUE(t.observe(anomalous("imbalance", Severity::warning), 1));
  ASSERT_TRUE(t.acknowledge(2));
  const auto escalated = t.observe(anomalous("imbalance", Severity::critical), 3);
  ASSERT_TRUE(escalated);
  EXPECT_EQ(escalated->state, AlertState::raised);
  EXPECT_EQ(escalated->severity, Severity::critical);
  // Severity does not fall back while the alert is open.
  EXPECT_FALSE(t.observe(anomalous("imbalance", Severity::warning), 4));
  EXPECT_EQ(t.alert().severity, Severity::critical);
}

TEST(AlertTracker, ANewFaultIsReportedButAnUnclassifiedWindowDoesNotHideIt) {
  AlertTracker t({1, 5});
  ASSERT_TRUE(t.observe(anomalous("misalignment"), 1));
  EXPECT_FALSE(t.observe(anomalous(std::string(kUnclassifiedFault)), 2));
  EXPECT_EQ(t.alert().fault, "misalignment");
  const auto changed = t.observe(anomalous("bearing-outer"), 3);
  ASSERT_TRUE(changed);
  EXPECT_EQ(changed->fault, "bearing-outer");
  EXPECT_EQ(changed->anomalous_windows, 3u);
}

TEST(AlertTracker, ARaisedAgainAlertStartsAFreshEpisode) {
  AlertTracker t({2, 1});
  t.observe(anomalous(), 1);
  ASSERT_TRUE(t.observe(anomalous(), 2));
  ASSERT_TRUE(t.acknowledge(3));
  ASSERT_TRUE(t.observe(normal(), 4));  // cleared
  t.observe(anomalous("bearing-inner"), 5);
  const auto again = t.observe(anomalous("bearing-inner"), 6);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->state, AlertState::raised);
  EXPECT_EQ(again->acknowledged_at_ms, 0);
  EXPECT_EQ(again->anomalous_windows, 2u);
  EXPECT_EQ(again->fault, "bearing-inner");
}

}  // namespace
}  // namespace vibration
