#include <gtest/gtest.h>

#include <string>

#include "config.hpp"

namespace tern::ternd {
namespace {

Config parse_ok(std::string_view text) {
  auto c = parse_config(text, "t.toml");
  EXPECT_TRUE(c) << (c ? "" : c.error());
  return c ? *c : Config{};
}

std::string parse_error(std::string_view text) {
  auto c = parse_config(text, "t.toml");
  EXPECT_FALSE(c);
  return c ? std::string() : c.error();
}

TEST(TracingConfig, OffByDefault) {
  const Config c = parse_ok("");
  EXPECT_FALSE(c.tracing.enabled());
  EXPECT_EQ(to_toml(c).find("[tracing]"), std::string::npos);
}

TEST(TracingConfig, ReadsTheTable) {
  const Config c = parse_ok(
      "[tracing]\nendpoint = \"http://127.0.0.1:4318/v1/traces\"\nsample_ratio = 0.25\nservice_name = \"edge-7\"\n"
      "max_queue_spans = 100\nmax_batch_spans = 10\nflush_ms = 200\n");
  EXPECT_TRUE(c.tracing.enabled());
  EXPECT_EQ(c.tracing.endpoint, "http://127.0.0.1:4318/v1/traces");
  EXPECT_EQ(c.tracing.sample_ratio, 0.25);
  EXPECT_EQ(c.tracing.service_name, "edge-7");
  EXPECT_EQ(c.tracing.max_queue_spans, 100u);
  EXPECT_EQ(c.tracing.max_batch_spans, 10u);
  EXPECT_EQ(c.tracing.flush_ms, 200);
}

TEST(TracingConfig, IntegerRatioAndDefaults) {
  const Config c = parse_ok("[tracing]\nendpoint = \"http://collector:4318/v1/traces\"\nsample_ratio = 1\n");
  EXPECT_EQ(c.tracing.sample_ratio, 1.0);
  EXPECT_EQ(c.tracing.service_name, "ternd");
}

TEST(TracingConfig, ErrorsNameFileLineAndKey) {
  EXPECT_EQ(parse_error("[tracing]\nendpoint = \"https://x/v1/traces\"\n").rfind("t.toml:2: tracing.endpoint must be an http:// URL", 0), 0u);
  EXPECT_EQ(parse_error("[tracing]\nendpoint = \"http://x/\"\nsample_ratio = 1.5\n"),
            "t.toml:3: tracing.sample_ratio must be between 0.0 and 1.0 (got 1.5)");
  EXPECT_EQ(parse_error("[tracing]\nendpoint = \"http://x/\"\nservice_name = \"\"\n"),
            "t.toml:3: tracing.service_name must be 1 to 128 characters long");
  EXPECT_NE(parse_error("[tracing]\nendpoint = \"http://x/\"\nbogus = 1\n").find("unknown key 'tracing.bogus'"),
            std::string::npos);
  EXPECT_NE(parse_error("[tracing]\nsample_ratio = 0.5\n").find("needs an endpoint"), std::string::npos);
  EXPECT_NE(parse_error("tracing = 3\n").find("tracing must be a table"), std::string::npos);
  EXPECT_NE(parse_error("[tracing]\nendpoint = \"http://x/\"\nflush_ms = 0\n").find("tracing.flush_ms must be between 1"),
            std::string::npos);
}

TEST(TracingConfig, RoundTripsThroughToToml) {
  const Config c = parse_ok("[tracing]\nendpoint = \"http://127.0.0.1:4318/v1/traces\"\nsample_ratio = 0.5\n");
  const Config again = parse_ok(to_toml(c));
  EXPECT_EQ(again.tracing.endpoint, c.tracing.endpoint);
  EXPECT_EQ(again.tracing.sample_ratio, c.tracing.sample_ratio);
  EXPECT_EQ(again.tracing.service_name, c.tracing.service_name);
  EXPECT_EQ(again.tracing.flush_ms, c.tracing.flush_ms);
}

TEST(ErrorFileConfig, ReadsAndRoundTrips) {
  const Config c = parse_ok("[log]\nerror_file = \"/var/log/ternd/errors.log\"\nerror_file_max_bytes = 65536\nerror_file_keep = 5\n");
  EXPECT_EQ(c.admin.log_error_file, "/var/log/ternd/errors.log");
  EXPECT_EQ(c.admin.log_error_file_max_bytes, 65536u);
  EXPECT_EQ(c.admin.log_error_file_keep, 5u);
  const Config again = parse_ok(to_toml(c));
  EXPECT_EQ(again.admin.log_error_file, c.admin.log_error_file);
  EXPECT_EQ(again.admin.log_error_file_max_bytes, 65536u);
  EXPECT_EQ(again.admin.log_error_file_keep, 5u);
}

TEST(ErrorFileConfig, DefaultsAndLimits) {
  const Config c = parse_ok("");
  EXPECT_TRUE(c.admin.log_error_file.empty());
  EXPECT_EQ(c.admin.log_error_file_max_bytes, 1u << 20);
  EXPECT_EQ(c.admin.log_error_file_keep, 3u);
  EXPECT_EQ(to_toml(c).find("error_file"), std::string::npos);
  EXPECT_NE(parse_error("[log]\nerror_file = \"\"\n").find("log.error_file must not be empty"), std::string::npos);
  EXPECT_NE(parse_error("[log]\nerror_file_keep = 101\n").find("log.error_file_keep must be between 0 and 100"),
            std::string::npos);
}

}  // namespace
}  // namespace tern::ternd
