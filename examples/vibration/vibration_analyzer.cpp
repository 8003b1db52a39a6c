// vibration-analyzer: turns each window on plant/{line}/{machine}/vibration into a
// features document on .../features and, when the window is anomalous, a diagnosis with
// its evidence on .../anomaly. A malformed window fails the handler, so the SDK retries
// it and then dead-letters it to $dlq/vibration-analyzer/... with the reason.
#include <charconv>

#include "common.hpp"
#include "lib/analysis.hpp"
#include "lib/wire.hpp"

namespace {

constexpr std::string_view kProgram = "vibration-analyzer";

std::optional<double> number_property(const tern::Message& m, std::string_view key) {
  const std::string* text = m.user_property(key);
  if (!text) return std::nullopt;
  double value = 0;
  const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || end != text->data() + text->size()) return std::nullopt;
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Per-window vibration features, ISO 10816-3 zone and fault diagnosis"};
  vibration::BrokerOptions broker;
  vibration::add_broker_options(app, broker);
  std::string group_name = "group2-rigid";
  vibration::AnalyzerConfig config;
  app.add_option("--machine-group", group_name, "ISO 10816-3 group: group1-rigid, group1-flexible, group2-rigid, group2-flexible")
      ->capture_default_str();
  app.add_option("--bearing-balls", config.bearing.balls, "Rolling elements of the monitored bearing")->capture_default_str();
  app.add_option("--ball-diameter", config.bearing.ball_diameter_mm, "Ball diameter, mm")->capture_default_str();
  app.add_option("--pitch-diameter", config.bearing.pitch_diameter_mm, "Pitch diameter, mm")->capture_default_str();
  app.add_option("--envelope-snr", config.envelope_snr, "Envelope line over floor that indicates a bearing defect")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const auto group = vibration::parse_machine_group(group_name);
  if (!group) {
    vibration::log(kProgram, "unknown --machine-group '{}'", group_name);
    return 2;
  }
  config.group = *group;

  boost::asio::io_context io;
  tern::Service service(io, vibration::service_options("vibration-analyzer", broker));
  vibration::Analyzer analyzer(config);

  service.on(std::string(vibration::kVibrationFilter), [&](const tern::Event& e) {
    const auto id = vibration::parse_machine_topic(e.topic(), "vibration");
    if (!id) return tern::Outcome::failure("topic is not plant/{line}/{machine}/vibration");
    const auto rate = number_property(e.message(), vibration::kSampleRateProperty);
    const auto shaft = number_property(e.message(), vibration::kShaftProperty);
    if (!rate || !shaft) return tern::Outcome::failure("missing sample-rate-hz or shaft-hz user property");
    auto samples = vibration::decode_samples(e.payload());
    if (!samples) return tern::Outcome::failure(samples.error());

    const vibration::Features features = analyzer.analyze(*samples, *rate, *shaft);  // throws on a short window
    const vibration::Diagnosis diagnosis = analyzer.diagnose(features);
    vibration::WindowInfo window{*id, 0, vibration::now_ms()};
    if (const auto sequence = number_property(e.message(), vibration::kSequenceProperty)) {
      window.sequence = static_cast<std::uint64_t>(*sequence);
    }

    if (auto ec = service.publish(vibration::machine_topic(*id, "features"),
                                  vibration::features_json(window, features, config.group, diagnosis))) {
      return tern::Outcome::failure("features not queued: " + ec.message());
    }
    if (diagnosis.anomalous) {
      if (auto ec = service.publish(vibration::machine_topic(*id, "anomaly"), vibration::anomaly_json(window, features, diagnosis))) {
        return tern::Outcome::failure("anomaly not queued: " + ec.message());
      }
    }
    return tern::Outcome::success();
  });

  vibration::log(kProgram, "ISO 10816-3 {}: zone limits {:.1f} / {:.1f} / {:.1f} mm/s", vibration::to_string(config.group),
                 vibration::zone_limits(config.group).ab, vibration::zone_limits(config.group).bc,
                 vibration::zone_limits(config.group).cd);
  return vibration::run_service(kProgram, io, service, broker);
}
