// tern-bench: an MQTT load generator for any broker (3.1.1 and 5.0).
//
//   tern-bench fanin --qos 1 --size 64 --duration 5 --broker-pid 1234 --json
//
// Exit status: 0 when every message checked out, 1 when messages were lost, duplicated
// at QoS 2, reordered or the broker misbehaved, 2 when the run could not start.
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include <fmt/format.h>

#include "engine.hpp"
#include "options.hpp"

namespace {

using tern::bench::Options;
using tern::bench::Result;
using tern::bench::Scenario;

double per_second(double count, double seconds) { return seconds > 0 ? count / seconds : 0.0; }

std::string json_escape(std::string_view text) {
  std::string out;
  for (char ch : text) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(ch)));
    } else {
      out += ch;
    }
  }
  return out;
}

std::string json_number(double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : "null"; }

template <class T>
std::string json_optional(const std::optional<T>& v) {
  if (!v) return "null";
  if constexpr (std::is_floating_point_v<T>) {
    return json_number(*v);
  } else {
    return std::to_string(*v);
  }
}

// The checks a run must pass. QoS 0 may lose nothing either: the generator's window keeps
// every queue bounded, so a loss means the broker dropped a message it had accepted.
bool checks_pass(const Options& o, const Result& r) {
  if (r.setup_failed || !r.error.empty()) return false;
  if (o.scenario == Scenario::idle) return r.connections == o.connections;
  if (r.lost != 0 || r.out_of_order != 0 || r.foreign != 0) return false;
  if (o.qos != tern::mqtt::QoS::at_least_once && r.duplicates != 0) return false;
  return r.sent > 0;
}

void print_human(const Options& o, const Result& r, bool ok) {
  const std::string name{tern::bench::scenario_name(o.scenario)};
  const double seconds = r.seconds;
  const double cpu_share = seconds > 0 ? r.bench_cpu_seconds / seconds : 0;
  if (o.scenario == Scenario::idle) {
    fmt::print("tern-bench idle: {} of {} connections (v{}), connected in {:.2f} s, held {:.2f} s\n", r.connections,
               o.connections, static_cast<unsigned>(o.version), r.connect_seconds, seconds);
    if (r.rss_before_bytes && r.rss_with_bytes && r.connections > 0) {
      const double per = (static_cast<double>(*r.rss_with_bytes) - static_cast<double>(*r.rss_before_bytes)) /
                         static_cast<double>(r.connections);
      fmt::print("  broker RSS {:.1f} MB before, {:.1f} MB with the connections: {:.0f} bytes per connection\n",
                 static_cast<double>(*r.rss_before_bytes) / 1e6, static_cast<double>(*r.rss_with_bytes) / 1e6, per);
    } else {
      fmt::print("  broker memory not measured (give --broker-pid)\n");
    }
  } else {
    fmt::print("tern-bench {}: QoS {}, {} B payload, v{}{}, {} publishers, {} subscribers, {} thread(s)\n", name,
               static_cast<unsigned>(o.qos), o.size, o.version == tern::mqtt::Version::v5 ? "5.0" : "3.1.1",
               o.tls ? " over TLS" : "", o.publishers, o.subscribers, o.threads);
    const char* what = o.scenario == Scenario::reqrep ? "round trips" : "deliveries";
    fmt::print("  sent      {:>12} msg in {:.2f} s: {:>12.0f} msg/s\n", r.sent, r.publish_seconds,
               per_second(static_cast<double>(r.sent), r.publish_seconds));
    fmt::print("  received  {:>12} {} in {:.2f} s: {:>12.0f} /s, {:.1f} MB/s payload\n", r.received, what, seconds,
               per_second(static_cast<double>(r.received), seconds),
               per_second(static_cast<double>(r.payload_bytes), seconds) / 1e6);
    fmt::print("  checked   expected {}, lost {}, duplicates {}, out of order {}, foreign {}\n", r.expected, r.lost,
               r.duplicates, r.out_of_order, r.foreign);
    const auto us = [&](double q) { return static_cast<double>(r.latency.percentile(q)) / 1e3; };
    fmt::print("  latency   p50 {:.1f} us, p90 {:.1f} us, p99 {:.1f} us, p99.9 {:.1f} us, max {:.1f} us ({})\n",
               us(0.5), us(0.9), us(0.99), us(0.999), static_cast<double>(r.latency.max()) / 1e3,
               o.scenario == Scenario::reqrep ? "round trip" : "publish to delivery");
  }
  fmt::print("  cpu       tern-bench {:.0f} % of one core", cpu_share * 100);
  if (r.broker_cpu_seconds && seconds > 0) fmt::print(", broker {:.0f} %", *r.broker_cpu_seconds / seconds * 100);
  if (r.broker_peak_rss_bytes) {
    fmt::print("; broker peak RSS {:.1f} MB", static_cast<double>(*r.broker_peak_rss_bytes) / 1e6);
  }
  fmt::print("\n");
  if (!r.error.empty()) fmt::print("  error     {}\n", r.error);
  fmt::print("  result    {}\n", ok ? "ok" : "FAILED");
}

void print_json(const Options& o, const Result& r, bool ok) {
  const double seconds = r.seconds;
  std::string j = "{";
  auto field = [&j](std::string_view key, const std::string& value) {
    if (j.size() > 1) j += ',';
    j += fmt::format("\"{}\":{}", key, value);
  };
  auto text = [&field](std::string_view key, std::string_view value) { field(key, "\"" + json_escape(value) + "\""); };
  text("scenario", tern::bench::scenario_name(o.scenario));
  text("label", o.label);
  field("ok", ok ? "true" : "false");
  text("error", r.error);
  field("qos", std::to_string(static_cast<unsigned>(o.qos)));
  field("version", std::to_string(static_cast<unsigned>(o.version)));
  field("size", std::to_string(o.size));
  field("publishers", std::to_string(o.publishers));
  field("subscribers", std::to_string(o.subscribers));
  field("threads", std::to_string(o.threads));
  field("tls", o.tls ? "true" : "false");
  field("seconds", json_number(seconds));
  field("publish_seconds", json_number(r.publish_seconds));
  field("sent", std::to_string(r.sent));
  field("acked", std::to_string(r.acked));
  field("expected", std::to_string(r.expected));
  field("received", std::to_string(r.received));
  field("lost", std::to_string(r.lost));
  field("duplicates", std::to_string(r.duplicates));
  field("out_of_order", std::to_string(r.out_of_order));
  field("foreign", std::to_string(r.foreign));
  field("sent_per_s", json_number(per_second(static_cast<double>(r.sent), r.publish_seconds)));
  field("received_per_s", json_number(per_second(static_cast<double>(r.received), seconds)));
  field("mb_per_s", json_number(per_second(static_cast<double>(r.payload_bytes), seconds) / 1e6));
  const auto us = [&](double q) { return json_number(static_cast<double>(r.latency.percentile(q)) / 1e3); };
  field("p50_us", us(0.5));
  field("p90_us", us(0.9));
  field("p99_us", us(0.99));
  field("p999_us", us(0.999));
  field("max_us", json_number(static_cast<double>(r.latency.max()) / 1e3));
  field("bench_cpu", json_number(seconds > 0 ? r.bench_cpu_seconds / seconds : 0));
  field("broker_cpu", r.broker_cpu_seconds && seconds > 0 ? json_number(*r.broker_cpu_seconds / seconds) : "null");
  field("broker_rss_bytes", json_optional(r.broker_rss_bytes));
  field("broker_peak_rss_bytes", json_optional(r.broker_peak_rss_bytes));
  if (o.scenario == Scenario::idle) {
    field("connections", std::to_string(r.connections));
    field("connect_seconds", json_number(r.connect_seconds));
    field("rss_before_bytes", json_optional(r.rss_before_bytes));
    field("rss_with_bytes", json_optional(r.rss_with_bytes));
    std::optional<double> per;
    if (r.rss_before_bytes && r.rss_with_bytes && r.connections > 0) {
      per = (static_cast<double>(*r.rss_with_bytes) - static_cast<double>(*r.rss_before_bytes)) /
            static_cast<double>(r.connections);
    }
    field("bytes_per_connection", json_optional(per));
  }
  j += "}\n";
  std::fputs(j.c_str(), stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string scenario = "fanin";
  unsigned qos = 0;
  unsigned version = 5;
  CLI::App app{"tern-bench: MQTT load generator (3.1.1 and 5.0). Every message is checked: publisher id, "
               "sequence number and send time ride in the payload.",
               "tern-bench"};
  const std::map<std::string, Scenario> scenarios{{"fanin", Scenario::fanin},   {"fanout", Scenario::fanout},
                                                  {"pairs", Scenario::pairs},   {"reqrep", Scenario::reqrep},
                                                  {"latency", Scenario::latency}, {"idle", Scenario::idle}};
  app.add_option("scenario", scenario,
                 "fanin (P publishers -> 1 wildcard subscriber), fanout (1 -> N), pairs (N pairs), reqrep "
                 "(request/reply, 5.0), latency (fixed --rate), idle (N idle connections, broker memory)")
      ->check(CLI::IsMember(scenarios));
  app.add_option("--host", o.host, "broker host")->capture_default_str();
  app.add_option("--port", o.port, "broker port")->capture_default_str();
  app.add_option("--qos", qos, "0, 1 or 2")->check(CLI::Range(0u, 2u))->capture_default_str();
  app.add_option("--size", o.size, "payload bytes (16 .. 65536)")->check(CLI::Range(16, 65536))->capture_default_str();
  app.add_option("--publishers", o.publishers, "publishers (reqrep: requesters); default depends on the scenario");
  app.add_option("--subscribers", o.subscribers, "subscribers (reqrep: responders); default depends on the scenario");
  app.add_option("--connections", o.connections, "idle: connections to open (default 1000)");
  auto* messages = app.add_option("--messages", o.messages, "messages per publisher (default: run for --duration)");
  auto* duration = app.add_option("--duration", o.duration, "seconds of publishing (idle: of holding), at most 120")
                       ->check(CLI::Range(0.01, tern::bench::kMaxDurationSeconds))
                       ->capture_default_str();
  app.add_option("--rate", o.rate,
                 "total messages/s over all publishers; 0: as fast as the window allows (latency: 10000 unless "
                 "given)");
  app.add_option("--version", version, "MQTT protocol level: 4 (3.1.1) or 5")->check(CLI::IsMember({4u, 5u}))
      ->capture_default_str();
  app.add_option("--inflight", o.inflight, "QoS 1/2: unacknowledged PUBLISH per publisher (also capped by the "
                                           "broker's receive maximum)")
      ->check(CLI::Range(1u, 65535u))
      ->capture_default_str();
  app.add_option("--window", o.window, "messages sent but not yet delivered, per subscriber, shared among the "
                                       "publishers it hears (default 1000; reqrep: outstanding requests per "
                                       "requester, default 1)");
  app.add_option("--window-bytes", o.window_bytes, "caps --window at this many payload bytes per subscriber "
                                                 "(0: no cap)")
      ->capture_default_str();
  app.add_option("--threads", o.threads, "worker threads (one event loop each)")->check(CLI::Range(1u, 256u))
      ->capture_default_str();
  app.add_option("--drain", o.drain, "seconds to wait for outstanding deliveries after publishing")
      ->check(CLI::Range(0.0, 30.0))
      ->capture_default_str();
  app.add_option("--connect-timeout", o.connect_timeout, "seconds for all connections to be ready")
      ->check(CLI::Range(0.1, 60.0))
      ->capture_default_str();
  app.add_option("--broker-pid", o.broker_pid, "broker process id: report its CPU and memory from /proc");
  app.add_option("--topic-prefix", o.topic_prefix, "topic prefix (default tern-bench/<pid>)");
  app.add_option("--label", o.label, "copied into the JSON line (e.g. the broker's name)");
  app.add_flag("--json", o.json, "print one JSON line instead of the text report");
  auto* tls = app.add_flag("--tls", o.tls,
                           "connect over TLS; the broker's certificate must chain to --cafile and name --host");
  app.add_option("--cafile", o.cafile, "PEM CAs the broker's certificate must chain to (default: the system's)")
      ->check(CLI::ExistingFile)
      ->needs(tls);
  auto* cert = app.add_option("--cert", o.cert, "PEM client certificate chain (mTLS)")
                   ->check(CLI::ExistingFile)
                   ->needs(tls);
  auto* key = app.add_option("--key", o.key, "PEM private key of --cert")->check(CLI::ExistingFile)->needs(cert);
  cert->needs(key);
  CLI11_PARSE(app, argc, argv);

  o.scenario = scenarios.at(scenario);
  o.qos = static_cast<tern::mqtt::QoS>(qos);
  o.version = static_cast<tern::mqtt::Version>(version);
  if (*messages && !*duration) o.duration = tern::bench::kMaxDurationSeconds;  // bounded all the same
  if (o.scenario == Scenario::idle && !*duration) o.duration = 2.0;
  tern::bench::apply_scenario_defaults(o);

  const Result result = tern::bench::run_benchmark(o);
  const bool ok = checks_pass(o, result);
  if (o.json) {
    print_json(o, result, ok);
  } else {
    print_human(o, result, ok);
  }
  if (result.setup_failed) return 2;
  return ok ? 0 : 1;
}
