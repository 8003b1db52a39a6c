#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>

#include "trace/context.hpp"
#include "trace/sampler.hpp"

namespace tern::trace {
namespace {

// The example of the W3C specification, section 3.2.
constexpr std::string_view kSpecExample = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(Traceparent, ParsesTheSpecificationExample) {
  const auto c = parse_traceparent(kSpecExample);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(c->span_id, "00f067aa0ba902b7");
  EXPECT_EQ(c->flags, 1);
  EXPECT_TRUE(c->sampled());
  EXPECT_EQ(format_traceparent(*c), kSpecExample);
}

TEST(Traceparent, NotSampledFlagIsKept) {
  const auto c = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->sampled());
}

TEST(Traceparent, RejectsMalformedHeaders) {
  for (const std::string_view bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",      // short flags
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",    // version 00 with a suffix
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",     // upper case
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",     // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",     // zero span id
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",     // forbidden version
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",     // separator
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",     // not hex
       }) {
    EXPECT_FALSE(parse_traceparent(bad)) << bad;
  }
}

TEST(Traceparent, FutureVersionsAreReadByTheirVersion00Prefix) {
  EXPECT_TRUE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"));
  EXPECT_TRUE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"));
}

TEST(TraceIds, NewIdsAreValidAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const auto root = new_root();
    EXPECT_TRUE(is_valid_trace_id(root.trace_id));
    EXPECT_TRUE(is_valid_span_id(root.span_id));
    EXPECT_TRUE(seen.insert(root.trace_id).second);
  }
}

TEST(TraceIds, ChildKeepsTraceAndFlagsWithANewSpan) {
  const auto parent = *parse_traceparent(kSpecExample);
  const auto child = child_of(parent);
  EXPECT_EQ(child.trace_id, parent.trace_id);
  EXPECT_EQ(child.flags, parent.flags);
  EXPECT_NE(child.span_id, parent.span_id);
  EXPECT_TRUE(is_valid_span_id(child.span_id));
}

TraceContext with_low_bits(std::string_view low16, bool sampled) {
  return TraceContext{"0123456789abcdef" + std::string(low16), "00f067aa0ba902b7",
                      static_cast<std::uint8_t>(sampled ? 1 : 0)};
}

TEST(Sampler, UnsampledParentIsNeverOverruled) {
  EXPECT_FALSE(Sampler(1.0).should_sample(with_low_bits("0000000000000001", false)));
}

TEST(Sampler, SampledParentIsKeptAtRatioOne) {
  EXPECT_TRUE(Sampler(1.0).should_sample(with_low_bits("ffffffffffffffff", true)));
}

TEST(Sampler, RatioZeroKeepsNothing) {
  EXPECT_FALSE(Sampler(0.0).should_sample(with_low_bits("0000000000000001", true)));
  EXPECT_FALSE(Sampler(0.0).should_sample_root("00000000000000000000000000000001"));
}

TEST(Sampler, RatioComparesTheLow64BitsOfTheTraceId) {
  const Sampler half(0.5);
  EXPECT_TRUE(half.should_sample(with_low_bits("7fffffffffffffff", true)));
  EXPECT_FALSE(half.should_sample(with_low_bits("8000000000000000", true)));
}

TEST(Sampler, RatioIsClampedAndNanKeepsNothing) {
  EXPECT_EQ(Sampler(7.0).ratio(), 1.0);
  EXPECT_EQ(Sampler(-1.0).ratio(), 0.0);
  EXPECT_EQ(Sampler(std::nan("")).ratio(), 0.0);
}

TEST(Sampler, RatioKeepsAboutThatShareOfRandomTraces) {
  const Sampler quarter(0.25);
  int kept = 0;
  for (int i = 0; i < 4000; ++i) kept += quarter.should_sample_root(new_trace_id()) ? 1 : 0;
  EXPECT_GT(kept, 800);
  EXPECT_LT(kept, 1200);
}

}  // namespace
}  // namespace tern::trace
