// The [tracing] table of ternd's configuration: where spans go and how many.
//
//   [tracing]
//   endpoint = "http://127.0.0.1:4318/v1/traces"   # OTLP/HTTP collector; absent: no tracing
//   sample_ratio = 1.0
//   service_name = "ternd"
//
// Like config.cpp it needs only toml++ and fmt (the fuzz target compiles it directly).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/expected.hpp"

namespace tern::ternd {

struct TracingSettings {
  std::string endpoint;  // empty: tracing is off
  double sample_ratio = 1.0;
  std::string service_name = "ternd";
  std::size_t max_queue_spans = 2048;
  std::size_t max_batch_spans = 256;
  std::int64_t flush_ms = 1000;

  bool enabled() const noexcept { return !endpoint.empty(); }
};

// Reads the value of the top-level key `tracing` (a toml::node; a template so that this
// header does not bring toml++ to every file that includes config.hpp: it is instantiated
// for toml::node in config_tracing.cpp). Errors read "FILE:LINE: tracing.KEY ...".
template <class TomlNode>
Expected<void, std::string> read_tracing_config(const TomlNode& node, std::string_view source_name,
                                                TracingSettings& out);

// The [tracing] table in the configuration file's schema, starting with a blank line;
// empty when tracing is off.
std::string tracing_toml(const TracingSettings& settings);

}  // namespace tern::ternd
