// tern-bench-schema: what schema validation costs per PUBLISH (docs/benchmarks.md,
// "Security costs").
//
//   tern-bench-schema --benchmark_repetitions=5 --benchmark_min_time=0.5
//
// Writes a realistic registry (three subjects, three bindings, a telemetry schema with a
// pattern, enums, bounds and a nested object) into a temporary folder and measures, per
// 200-byte JSON message:
// - registry/*: the steps SecurityPolicy::check_publish takes for schemas: the binding
//   lookup (first matching filter in file order), validation, and the tern-schema
//   property (valid) or the refusal text and dead-letter topic (invalid);
// - policy/*: the same messages through SecurityPolicy::check_publish itself, the call the
//   broker makes for every PUBLISH the ACL allowed; policy/no-registry is the same call
//   with no schemas configured;
// - validate/*: Schema::validate of the valid message alone, to show where the time goes:
//   against the telemetry schema, the same schema without its one pattern (valijson
//   matches patterns with std::regex), and `{}`, which accepts any JSON document (parsing
//   and little else).
// Times are CPU time per message on one thread, so other load on the machine inflates
// them less than wall time; "msg/s per core" is 1 / that time.
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "broker/interfaces.hpp"
#include "core/log.hpp"
#include "policy/schema_registry.hpp"
#include "policy/security_policy.hpp"

namespace {

namespace fs = std::filesystem;
using tern::policy::SchemaRegistry;
using tern::policy::SecurityConfig;
using tern::policy::SecurityPolicy;

constexpr std::size_t kPayloadBytes = 200;
constexpr std::uint8_t kPayloadFormatInvalid = 0x99;

constexpr std::string_view kTelemetrySchema = R"({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "title": "telemetry",
  "type": "object",
  "required": ["device", "ts", "seq", "temperature", "humidity", "battery", "status"],
  "additionalProperties": false,
  "properties": {
    "device": {"type": "string", "pattern": "^[a-z0-9-]{3,32}$"},
    "ts": {"type": "integer", "minimum": 0},
    "seq": {"type": "integer", "minimum": 0},
    "temperature": {"type": "number", "minimum": -60, "maximum": 150},
    "humidity": {"type": "number", "minimum": 0, "maximum": 100},
    "battery": {"type": "number", "minimum": 0, "maximum": 5},
    "status": {"type": "string", "enum": ["ok", "degraded", "fault"]},
    "location": {
      "type": "object",
      "required": ["lat", "lon"],
      "additionalProperties": false,
      "properties": {
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "lon": {"type": "number", "minimum": -180, "maximum": 180}
      }
    },
    "tags": {"type": "array", "maxItems": 8, "items": {"type": "string", "maxLength": 16}},
    "note": {"type": "string", "maxLength": 64}
  }
})";

constexpr std::string_view kAlarmSchema = R"({
  "type": "object",
  "required": ["code", "severity"],
  "properties": {
    "code": {"type": "integer"},
    "severity": {"type": "string", "enum": ["info", "warning", "critical"]}
  }
})";

constexpr std::string_view kOrderSchema = R"({
  "type": "object",
  "required": ["id", "items"],
  "properties": {
    "id": {"type": "string"},
    "items": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["sku", "qty"]}}
  }
})";

// The telemetry binding comes last, so a bound message walks every filter, as an unbound
// one does.
constexpr std::string_view kBindings =
    R"({"factory/+/alarms": "alarm", "orders/#": "order@1", "sensors/+/telemetry": "telemetry"})";

constexpr std::string_view kBoundTopic = "sensors/gw-017/telemetry";
constexpr std::string_view kUnboundTopic = "sensors/gw-017/status";

// A telemetry document of exactly kPayloadBytes, padded in its "note" field.
std::string telemetry_payload(std::string_view temperature) {
  const auto with_note = [&](std::size_t n) {
    return fmt::format(R"({{"device":"gw17-s04","ts":1764301234567,"seq":48213,"temperature":{},)"
                       R"("humidity":48.2,"battery":3.71,"status":"ok","location":{{"lat":48.137,"lon":11.575}},)"
                       R"("tags":["line-3","hall-b"],"note":"{}"}})",
                       temperature, std::string(n, 'n'));
  };
  const std::size_t bare = with_note(0).size();
  return bare < kPayloadBytes ? with_note(kPayloadBytes - bare) : with_note(0);
}

void write_file(const fs::path& path, std::string_view text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// The temporary registry folder; removed when the program ends.
class RegistryFolder {
 public:
  RegistryFolder() {
    std::string pattern = (fs::temp_directory_path() / "tern-bench-schema-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
    write_file(path_ / "telemetry" / "1.json", kTelemetrySchema);
    write_file(path_ / "alarm" / "1.json", kAlarmSchema);
    write_file(path_ / "order" / "1.json", kOrderSchema);
    write_file(path_ / "bindings.json", kBindings);
  }
  ~RegistryFolder() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  RegistryFolder(const RegistryFolder&) = delete;
  RegistryFolder& operator=(const RegistryFolder&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

enum class Expect { valid, invalid, unbound };

// What check_publish adds to the verdict for schemas, step by step.
struct SchemaOutcome {
  std::vector<std::pair<std::string, std::string>> add_user_properties;
  std::string why;
  std::string dead_letter_topic;
};

SchemaOutcome registry_check(const SchemaRegistry& registry, std::string_view topic, std::string_view payload) {
  SchemaOutcome out;
  if (const auto match = registry.schema_for(topic)) {
    if (auto error = match->schema->validate(payload)) {
      out.why = fmt::format("schema {}@{}: {}", match->subject, match->version, *error);
      out.dead_letter_topic = fmt::format("$dlq/schema/{}", topic);
    } else {
      out.add_user_properties.emplace_back("tern-schema", fmt::format("{}@{}", match->subject, match->version));
    }
  }
  return out;
}

// Checks once, before timing, that the message takes the path the benchmark is named for.
bool registry_outcome_is(const SchemaOutcome& o, Expect expect) {
  switch (expect) {
    case Expect::valid: return o.add_user_properties.size() == 1 && o.why.empty();
    case Expect::invalid: return o.add_user_properties.empty() && !o.why.empty() && !o.dead_letter_topic.empty();
    case Expect::unbound: return o.add_user_properties.empty() && o.why.empty();
  }
  return false;
}

bool verdict_is(const tern::broker::PublishVerdict& v, Expect expect) {
  switch (expect) {
    case Expect::valid:
      return v.reason == 0 && v.add_user_properties.size() == 1 && v.add_user_properties[0].first == "tern-schema";
    case Expect::invalid: return v.reason == kPayloadFormatInvalid && !v.dead_letter_topic.empty();
    case Expect::unbound: return v.reason == 0 && v.add_user_properties.empty();
  }
  return false;
}

void count(benchmark::State& state, std::size_t payload_size) {
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(payload_size));
}

// Adds a summary after Google Benchmark's own table: ns and messages per second of one
// core, from the CPU time of each benchmark (the median when repetitions are asked for).
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  SummaryReporter() : ConsoleReporter(isatty(STDOUT_FILENO) != 0 ? OO_ColorTabular : OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const bool single = run.run_type == Run::RT_Iteration && run.repetitions <= 1;
      const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      if (!single && !median) continue;
      const double ns = run.GetAdjustedCPUTime() * unit_to_ns(run.time_unit);
      rows_.emplace_back(run.run_name.function_name, ns);
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    if (rows_.empty()) return;
    std::string out = fmt::format("\nper {}-byte message, CPU time on one thread{}:\n", kPayloadBytes,
                                  repetitions_note());
    out += fmt::format("  {:<22} {:>12} {:>16}\n", "benchmark", "ns/message", "messages/s/core");
    for (const auto& [name, ns] : rows_) {
      out += fmt::format("  {:<22} {:>12.0f} {:>16.0f}\n", name, ns, ns > 0 ? 1e9 / ns : 0.0);
    }
    std::fputs(out.c_str(), stdout);
  }
  void set_repetitions(int n) { repetitions_ = n; }

 private:
  static double unit_to_ns(benchmark::TimeUnit unit) {
    switch (unit) {
      case benchmark::kNanosecond: return 1;
      case benchmark::kMicrosecond: return 1e3;
      case benchmark::kMillisecond: return 1e6;
      case benchmark::kSecond: return 1e9;
    }
    return 1;
  }
  std::string repetitions_note() const {
    return repetitions_ > 1 ? fmt::format(", median of {} repetitions", repetitions_) : std::string();
  }
  std::vector<std::pair<std::string, double>> rows_;
  int repetitions_ = 1;
};

int repetitions_from(int argc, char** argv) {
  constexpr std::string_view flag = "--benchmark_repetitions=";
  int n = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with(flag)) n = std::atoi(arg.substr(flag.size()).data());
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  const int repetitions = repetitions_from(argc, argv);  // Initialize consumes the flags
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  tern::log::set_level(tern::log::Level::warning);

  const RegistryFolder folder;
  auto registry = SchemaRegistry::load(folder.path().string());
  if (!registry) {
    fmt::print(stderr, "tern-bench-schema: {}\n", registry.error());
    return 2;
  }
  SecurityConfig with_schemas;
  with_schemas.allow_anonymous = true;
  with_schemas.schema_registry = folder.path().string();
  auto policy = SecurityPolicy::create(with_schemas);
  SecurityConfig without_schemas;
  without_schemas.allow_anonymous = true;
  auto bare_policy = SecurityPolicy::create(without_schemas);
  if (!policy || !bare_policy) {
    fmt::print(stderr, "tern-bench-schema: {}\n", policy ? bare_policy.error() : policy.error());
    return 2;
  }

  const std::string valid = telemetry_payload("21.37");
  const std::string invalid = telemetry_payload(R"("21.37")");  // a string where a number belongs
  if (valid.size() != kPayloadBytes || invalid.size() != kPayloadBytes) {
    fmt::print(stderr, "tern-bench-schema: payloads of {} and {} bytes, not {}\n", valid.size(), invalid.size(),
               kPayloadBytes);
    return 2;
  }
  const tern::broker::ClientIdentity who{"bench-publisher", std::nullopt, "127.0.0.1:50000", std::nullopt};

  struct Case {
    const char* name;
    std::string_view topic;
    const std::string* payload;
    Expect expect;
  };
  const Case cases[] = {{"valid", kBoundTopic, &valid, Expect::valid},
                        {"invalid", kBoundTopic, &invalid, Expect::invalid},
                        {"unbound", kUnboundTopic, &valid, Expect::unbound}};

  const SchemaRegistry& reg = *registry;
  for (const Case& c : cases) {
    benchmark::RegisterBenchmark(fmt::format("registry/{}", c.name).c_str(), [&reg, c](benchmark::State& state) {
      if (!registry_outcome_is(registry_check(reg, c.topic, *c.payload), c.expect)) {
        state.SkipWithError("the message did not take the expected path");
        return;
      }
      for (auto _ : state) {
        SchemaOutcome outcome = registry_check(reg, c.topic, *c.payload);
        benchmark::DoNotOptimize(outcome);
      }
      count(state, c.payload->size());
    });
  }
  SecurityPolicy& sp = **policy;
  for (const Case& c : cases) {
    benchmark::RegisterBenchmark(fmt::format("policy/{}", c.name).c_str(), [&sp, &who, c](benchmark::State& state) {
      if (!verdict_is(sp.check_publish(who, c.topic, *c.payload, {}), c.expect)) {
        state.SkipWithError("the verdict is not the expected one");
        return;
      }
      for (auto _ : state) {
        tern::broker::PublishVerdict verdict = sp.check_publish(who, c.topic, *c.payload, {});
        benchmark::DoNotOptimize(verdict);
      }
      count(state, c.payload->size());
    });
  }
  SecurityPolicy& bare = **bare_policy;
  benchmark::RegisterBenchmark("policy/no-registry", [&bare, &who, &valid](benchmark::State& state) {
    if (!verdict_is(bare.check_publish(who, kBoundTopic, valid, {}), Expect::unbound)) {
      state.SkipWithError("the verdict is not the expected one");
      return;
    }
    for (auto _ : state) {
      tern::broker::PublishVerdict verdict = bare.check_publish(who, kBoundTopic, valid, {});
      benchmark::DoNotOptimize(verdict);
    }
    count(state, valid.size());
  });

  // The telemetry schema with its pattern removed, and a schema that accepts any document.
  std::string without_pattern{kTelemetrySchema};
  const std::string_view pattern = R"(, "pattern": "^[a-z0-9-]{3,32}$")";
  without_pattern.erase(without_pattern.find(pattern), pattern.size());
  struct Validation {
    const char* name;
    std::string schema;
  };
  const Validation validations[] = {
      {"validate/telemetry", std::string(kTelemetrySchema)},
      {"validate/no-pattern", without_pattern},
      {"validate/any-json", "{}"},
  };
  for (const Validation& v : validations) {
    auto compiled = tern::policy::Schema::compile(v.schema, v.name);
    if (!compiled) {
      fmt::print(stderr, "tern-bench-schema: {}\n", compiled.error());
      return 2;
    }
    auto schema = std::make_shared<const tern::policy::Schema>(std::move(*compiled));
    benchmark::RegisterBenchmark(v.name, [schema, &valid](benchmark::State& state) {
      if (schema->validate(valid)) {
        state.SkipWithError("the valid message does not validate");
        return;
      }
      for (auto _ : state) {
        std::optional<std::string> error = schema->validate(valid);
        benchmark::DoNotOptimize(error);
      }
      count(state, valid.size());
    });
  }

  SummaryReporter reporter;
  reporter.set_repetitions(repetitions);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
