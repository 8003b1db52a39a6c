// Wire formats: topics, float32 payloads, and the JSON documents between the services.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "lib/wire.hpp"

namespace vibration {
namespace {

TEST(MachineTopic, ParsesOnlyTheExpectedShape) {
  EXPECT_EQ(parse_machine_topic("plant/line1/m2/vibration", "vibration"), (MachineId{"line1", "m2"}));
  EXPECT_FALSE(parse_machine_topic("plant/line1/m2/features", "vibration"));
  EXPECT_FALSE(parse_machine_topic("plant/line1/vibration", "vibration"));
  EXPECT_FALSE(parse_machine_topic("plant//m2/vibration", "vibration"));
  EXPECT_FALSE(parse_machine_topic("plant/line1//vibration", "vibration"));
  EXPECT_FALSE(parse_machine_topic("factory/line1/m2/vibration", "vibration"));
  EXPECT_FALSE(parse_machine_topic("plant/line1/m2/x/vibration", "vibration"));
  EXPECT_EQ(machine_topic({"l", "m"}, "anomaly"), "plant/l/m/anomaly");
  EXPECT_EQ(alert_topic({"l", "m"}), "plant/alerts/l/m");
}

TEST(Samples, AreLittleEndianFloat32) {
  const std::vector<float> samples{1.0f, -2.5f};
  const std::string bytes = encode_samples(samples);
  ASSERT_EQ(bytes.size(), 8u);
  // 1.0f is 0x3f800000: least significant byte first.
  EXPECT_EQ(bytes.substr(0, 4), std::string("\x00\x00\x80\x3f", 4));
  EXPECT_EQ(bytes.substr(4, 4), std::string("\x00\x00\x20\xc0", 4));
  const auto decoded = decode_samples(bytes);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, samples);
  EXPECT_FALSE(decode_samples("abc"));
}

TEST(Json, QuotesControlCharactersAndQuotes) {
  EXPECT_EQ(json_quote("a\"b\\c\n\x01"), R"("a\"b\\c\n\u0001")");
}

TEST(Json, FeaturesDocumentCarriesTheVerdict) {
  Features f;
  f.velocity_rms_mm_s = 3.5;
  f.zone = Zone::C;
  Diagnosis d{true, Fault::imbalance, Severity::warning, "1x \"dominant\""};
  const std::string doc = features_json({{"line1", "m2"}, 7, 1000}, f, MachineGroup::group2_rigid, d);
  const auto value = boost::json::parse(doc);
  EXPECT_EQ(value.at("machine").as_string(), "m2");
  EXPECT_EQ(value.at("zone").as_string(), "C");
  EXPECT_EQ(value.at("sequence").as_int64(), 7);
  EXPECT_TRUE(value.at("bands").at("bpfo").is_object());

  const auto verdict = parse_verdict(doc);
  ASSERT_TRUE(verdict);
  EXPECT_TRUE(verdict->anomalous);
  EXPECT_EQ(verdict->fault, "imbalance");
  EXPECT_EQ(verdict->severity, Severity::warning);
  EXPECT_EQ(verdict->reason, "1x \"dominant\"");

  const auto healthy = parse_verdict(features_json({{"line1", "m1"}, 1, 1}, f, MachineGroup::group2_rigid, Diagnosis{}));
  ASSERT_TRUE(healthy);
  EXPECT_FALSE(healthy->anomalous);
}

TEST(Json, AnomalyDocumentHasEvidence) {
  Features f;
  f.kurtosis = 9.5;
  const Diagnosis d{true, Fault::none, Severity::critical, "zone D"};
  const auto value = boost::json::parse(anomaly_json({{"l", "m"}, 1, 2}, f, d));
  EXPECT_EQ(value.at("fault").as_string(), kUnclassifiedFault);
  EXPECT_EQ(value.at("severity").as_string(), "critical");
  EXPECT_DOUBLE_EQ(value.at("evidence").at("kurtosis").to_number<double>(), 9.5);
}

TEST(Json, BadVerdictsAreErrors) {
  EXPECT_FALSE(parse_verdict("not json"));
  EXPECT_FALSE(parse_verdict("[]"));
  EXPECT_FALSE(parse_verdict(R"({"fault":"imbalance"})"));
  EXPECT_FALSE(parse_verdict(R"({"anomalous":true,"severity":"mild"})"));
}

TEST(Json, AckAndFaultCommands) {
  const auto ack = parse_ack_request(R"({"machine":"m2"})");
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->machine, "m2");
  EXPECT_FALSE(ack->line);
  EXPECT_FALSE(parse_ack_request(R"({"line":"l"})"));

  const auto command = parse_fault_command(R"({"machine":"m3","fault":"bearing-inner","severity":0.5,"line":"l2"})");
  ASSERT_TRUE(command);
  EXPECT_EQ(command->fault, Fault::bearing_inner);
  EXPECT_DOUBLE_EQ(command->severity, 0.5);
  EXPECT_EQ(command->line, "l2");
  EXPECT_FALSE(parse_fault_command(R"({"machine":"m3","fault":"rust"})"));
  EXPECT_FALSE(parse_fault_command(R"({"machine":"m3","fault":"none","severity":-1})"));
  EXPECT_TRUE(parse_fault_command(R"({"machine":"m3","fault":"none"})"));
}

TEST(Json, AlertDocument) {
  Alert a;
  a.state = AlertState::acknowledged;
  a.fault = "misalignment";
  a.severity = Severity::critical;
  const auto value = boost::json::parse(alert_json({"l", "m"}, a));
  EXPECT_EQ(value.at("state").as_string(), "acknowledged");
  EXPECT_EQ(value.at("severity").as_string(), "critical");
  EXPECT_EQ(value.at("fault").as_string(), "misalignment");
}

}  // namespace
}  // namespace vibration
