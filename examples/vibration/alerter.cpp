// alerter: debounces the per-window verdicts of plant/{line}/{machine}/features into
// alerts on plant/alerts/{line}/{machine} (retained, so a dashboard that connects later
// sees the current state). An operator acknowledges an alert by request/reply on
// plant/alerts/ack with {"machine": "m2"}; the reply is the alert.
#include <map>

#include "common.hpp"
#include "lib/alert_tracker.hpp"
#include "lib/wire.hpp"

namespace {

constexpr std::string_view kProgram = "alerter";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Debounced vibration alerts with acknowledgement"};
  vibration::BrokerOptions broker;
  vibration::add_broker_options(app, broker);
  vibration::DebounceConfig debounce;
  app.add_option("--raise-after", debounce.raise_after, "Consecutive anomalous windows that raise an alert")
      ->check(CLI::Range(1u, 1000u))->capture_default_str();
  app.add_option("--clear-after", debounce.clear_after, "Consecutive normal windows that clear it")
      ->check(CLI::Range(1u, 1000u))->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  boost::asio::io_context io;
  tern::Service service(io, vibration::service_options("alerter", broker));
  std::map<vibration::MachineId, vibration::AlertTracker> trackers;

  auto publish_alert = [&](const vibration::MachineId& id, const vibration::Alert& alert) {
    tern::Message m;
    m.topic = vibration::alert_topic(id);
    m.payload = vibration::alert_json(id, alert);
    m.qos = tern::Qos::at_least_once;
    m.retain = true;
    m.content_type = "application/json";
    vibration::log(kProgram, "{}/{}: {} {} ({})", id.line, id.machine, vibration::to_string(alert.state), alert.fault,
                   vibration::to_string(alert.severity));
    return service.publish(std::move(m));
  };

  service.on(std::string(vibration::kFeaturesFilter), [&](const tern::Event& e) {
    const auto id = vibration::parse_machine_topic(e.topic(), "features");
    if (!id) return tern::Outcome::failure("topic is not plant/{line}/{machine}/features");
    const auto verdict = vibration::parse_verdict(e.payload());
    if (!verdict) return tern::Outcome::failure(verdict.error());
    auto it = trackers.try_emplace(*id, debounce).first;
    if (const auto changed = it->second.observe(*verdict, vibration::now_ms())) {
      if (auto ec = publish_alert(*id, *changed)) return tern::Outcome::failure("alert not queued: " + ec.message());
    }
    return tern::Outcome::success();
  });

  service.respond(std::string(vibration::kAckTopic), [&](const tern::Event& e, std::string& reply) {
    const auto request = vibration::parse_ack_request(e.payload());
    if (!request) {
      reply = fmt::format(R"({{"error":{}}})", vibration::json_quote(request.error()));
      return tern::Outcome::success();
    }
    std::vector<std::map<vibration::MachineId, vibration::AlertTracker>::iterator> matches;
    for (auto it = trackers.begin(); it != trackers.end(); ++it) {
      if (it->first.machine == request->machine && (!request->line || it->first.line == *request->line)) matches.push_back(it);
    }
    if (matches.size() > 1) {
      reply = fmt::format(R"({{"error":{}}})",
                          vibration::json_quote(fmt::format("machine {} exists on several lines; add \"line\"", request->machine)));
      return tern::Outcome::success();
    }
    if (matches.empty()) {
      reply = fmt::format(R"({{"line":{},"machine":{},"state":"none"}})", vibration::json_quote(request->line.value_or("")),
                          vibration::json_quote(request->machine));
      return tern::Outcome::success();
    }
    auto& [id, tracker] = *matches.front();
    const bool was_raised = tracker.alert().state == vibration::AlertState::raised;
    if (const auto acknowledged = tracker.acknowledge(vibration::now_ms()); acknowledged && was_raised) {
      if (auto ec = publish_alert(id, *acknowledged)) return tern::Outcome::failure("alert not queued: " + ec.message());
    }
    reply = vibration::alert_json(id, tracker.alert());
    return tern::Outcome::success();
  });

  vibration::log(kProgram, "raise after {} anomalous windows, clear after {} normal ones", debounce.raise_after, debounce.clear_after);
  return vibration::run_service(kProgram, io, service, broker);
}
