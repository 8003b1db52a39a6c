// sensor-sim: simulated accelerometers on N machines of one line. Every interval each
// machine publishes a window of samples on plant/{line}/{machine}/vibration. Faults are
// injected from the command line (--fault m2=imbalance --fault-after 20s) or at run time
// on plant/sim/fault (request/reply or a plain publish).
#include <boost/asio/steady_timer.hpp>

#include <map>
#include <memory>
#include <vector>

#include "common.hpp"
#include "lib/signal_model.hpp"
#include "lib/wire.hpp"

namespace {

constexpr std::string_view kProgram = "sensor-sim";

// Shaft speeds of typical induction motors (4-pole, 2-pole, 6-pole) under load, so that the
// machines of a line do not all look alike.
constexpr double kShaftSpeeds[] = {24.75, 29.6, 49.5, 16.4, 24.2, 29.1};

struct SimulatedMachine {
  vibration::MachineId id;
  std::unique_ptr<vibration::SignalGenerator> generator;
  std::uint64_t sequence = 0;
};

struct PlannedFault {
  std::string machine;
  vibration::Fault fault = vibration::Fault::none;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Simulated accelerometers publishing vibration windows"};
  vibration::BrokerOptions broker;
  vibration::add_broker_options(app, broker);
  std::string line = "line1";
  unsigned machine_count = 3;
  double sample_rate = 10000.0;
  std::size_t samples = 4096;
  std::string interval_text = "1s";
  std::vector<std::string> fault_texts;
  std::string fault_after_text = "0s";
  std::uint64_t seed = 1;
  int qos = 0;
  app.add_option("--line", line, "Production line name (topic level)")->capture_default_str();
  app.add_option("-n,--machines", machine_count, "Number of machines, named m1..mN")->check(CLI::Range(1u, 1000u))->capture_default_str();
  app.add_option("--sample-rate", sample_rate, "Samples per second")->check(CLI::Range(2500.0, 100000.0))->capture_default_str();
  app.add_option("--samples", samples, "Samples per window")->check(CLI::Range(std::size_t{256}, std::size_t{1} << 20))->capture_default_str();
  app.add_option("--interval", interval_text, "Time between windows of a machine (e.g. 1s, 200ms)")->capture_default_str();
  app.add_option("--fault", fault_texts, "machine=fault to inject (imbalance, misalignment, bearing-outer, bearing-inner); repeatable");
  app.add_option("--fault-after", fault_after_text, "Delay before the --fault faults start (e.g. 20s)")->capture_default_str();
  app.add_option("--seed", seed, "Random seed (noise, phases)")->capture_default_str();
  app.add_option("-q,--qos", qos, "QoS of the sample windows")->check(CLI::Range(0, 2))->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const auto interval = vibration::parse_duration(interval_text);
  const auto fault_after = vibration::parse_duration(fault_after_text);
  if (!interval || interval->count() == 0 || !fault_after) {
    vibration::log(kProgram, "bad duration in --interval or --fault-after (use e.g. 250ms, 20s, 1m)");
    return 2;
  }

  std::vector<SimulatedMachine> machines;
  for (unsigned i = 0; i < machine_count; ++i) {
    vibration::MachineModel model;
    model.shaft_hz = kShaftSpeeds[i % std::size(kShaftSpeeds)];
    SimulatedMachine m;
    m.id = {line, fmt::format("m{}", i + 1)};
    m.generator = std::make_unique<vibration::SignalGenerator>(model, sample_rate, seed * 1000003u + i);
    machines.push_back(std::move(m));
  }
  auto find_machine = [&](std::string_view name) -> SimulatedMachine* {
    for (auto& m : machines) {
      if (m.id.machine == name) return &m;
    }
    return nullptr;
  };

  std::vector<PlannedFault> planned;
  for (const auto& text : fault_texts) {
    const auto eq = text.find('=');
    const auto fault = eq == std::string::npos ? std::nullopt : vibration::parse_fault(std::string_view(text).substr(eq + 1));
    if (!fault || !find_machine(std::string_view(text).substr(0, eq))) {
      vibration::log(kProgram, "bad --fault '{}': expected m<1..{}>=imbalance|misalignment|bearing-outer|bearing-inner", text, machine_count);
      return 2;
    }
    planned.push_back({text.substr(0, eq), *fault});
  }

  boost::asio::io_context io;
  tern::ServiceOptions options = vibration::service_options("sensor-sim", broker);
  tern::Service service(io, options);
  const auto window_qos = static_cast<tern::Qos>(qos);

  auto inject = [&](SimulatedMachine& m, vibration::Fault fault, double severity) {
    m.generator->set_fault(fault, severity);
    vibration::log(kProgram, "{}/{}: fault {} (severity {})", m.id.line, m.id.machine, vibration::to_string(fault), severity);
  };

  service.respond(std::string(vibration::kFaultControlTopic), [&](const tern::Event& e, std::string& reply) {
    auto command = vibration::parse_fault_command(e.payload());
    SimulatedMachine* m = command ? find_machine(command->machine) : nullptr;
    if (!command) {
      reply = fmt::format(R"({{"error":{}}})", vibration::json_quote(command.error()));
    } else if (!m || (command->line && *command->line != line)) {
      reply = fmt::format(R"({{"error":{}}})", vibration::json_quote(fmt::format("no machine {} on {}", command->machine, line)));
    } else {
      inject(*m, command->fault, command->severity);
      reply = fmt::format(R"({{"line":{},"machine":{},"fault":"{}","severity":{}}})", vibration::json_quote(line),
                          vibration::json_quote(m->id.machine), vibration::to_string(command->fault), command->severity);
    }
    // A bad command is answered, not retried: retrying cannot make it valid.
    return tern::Outcome::success();
  });

  boost::asio::steady_timer fault_timer(io);
  if (!planned.empty()) {
    fault_timer.expires_after(*fault_after);
    fault_timer.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      for (const auto& p : planned) inject(*find_machine(p.machine), p.fault, 1.0);
    });
  }

  boost::asio::steady_timer tick(io);
  std::function<void()> publish_windows = [&] {
    for (auto& m : machines) {
      const auto window = m.generator->next_window(samples);
      tern::Message msg;
      msg.topic = vibration::machine_topic(m.id, "vibration");
      msg.payload = vibration::encode_samples(window);
      msg.qos = window_qos;
      msg.content_type = std::string(vibration::kSamplesContentType);
      msg.set_user_property(vibration::kSampleRateProperty, fmt::format("{}", sample_rate));
      msg.set_user_property(vibration::kShaftProperty, fmt::format("{}", m.generator->model().shaft_hz));
      msg.set_user_property(vibration::kSequenceProperty, fmt::format("{}", ++m.sequence));
      if (auto ec = service.publish(std::move(msg))) vibration::log(kProgram, "{}: window not queued: {}", m.id.machine, ec.message());
    }
    tick.expires_after(*interval);
    tick.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) publish_windows();
    });
  };
  // Windows published while disconnected would pile up in the outbox (QoS 1/2) or be
  // dropped (QoS 0); the sensor waits for the first connection instead.
  service.client().on_connected([&, started = false](bool) mutable {
    if (started) return;
    started = true;
    vibration::log(kProgram, "connected; {} machines on {}, a window of {} samples at {} Hz every {} ms", machine_count, line,
                   samples, sample_rate, interval->count());
    publish_windows();
  });

  return vibration::run_service(kProgram, io, service, broker, [&] {
    tick.cancel();
    fault_timer.cancel();
  });
}
