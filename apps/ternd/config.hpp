// ternd's configuration: embedded defaults, then a TOML file, then command-line flags.
//
// Every key of the file is optional; an unknown key, a value of the wrong type or out of
// range is an error that names the file and line ("ternd.toml:7: limits.receive_maximum
// must be between 1 and 65535 (got 0)"). docs/configuration.md documents every key.
//
// This part depends only on toml++, fmt and headers (no Boost, no broker code), so the
// parser can be unit-tested and fuzzed on its own.
//
// Thread-safety: plain functions and values; no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/config.hpp"
#include "config_tracing.hpp"
#include "core/expected.hpp"
#include "core/log.hpp"
#include "net/listener_config.hpp"
#include "policy/security_config.hpp"

namespace tern::ternd {

struct AdminSettings {
  std::string listen = "127.0.0.1:8080";  // empty: no admin endpoint
  std::string token;                      // empty: no bearer token
  std::string cert_file;                  // with key_file: HTTPS only; both empty: HTTP
  std::string key_file;
  std::size_t max_connections = 16;
  std::size_t log_ring_lines = 1024;
  std::string log_error_file;  // empty: error lines are not persisted
  std::uint64_t log_error_file_max_bytes = 1 << 20;
  std::size_t log_error_file_keep = 3;
  std::optional<log::Level> log_forward_level;  // unset: no forwarding
  std::int64_t alert_interval_ms = 10000;
  std::optional<std::uint64_t> alert_queue_depth;
  std::optional<double> alert_drop_rate;
  std::optional<std::uint64_t> alert_store_latency_ms;
  std::optional<std::uint64_t> alert_memory_mb;
};

// Where acknowledged state lives (docs/configuration.md, docs/storage.md).
enum class Durability { fsync, batch, memory };

// [store]: how the SQLite store groups its commits (docs/storage.md).
struct StoreSettings {
  std::int64_t commit_interval_ms = 75;  // commits start at least this far apart under load
  std::int64_t commit_bytes = 32 * 1024;  // a batch this large commits at once
  std::int64_t commit_delay_ms = 2;       // a batch gathers this long after its first write
  std::int64_t page_size = 1024;          // for a database file created anew
};

struct Config {
  broker::BrokerConfig broker;
  Durability durability = Durability::fsync;  // with a data_dir; without one, memory
  std::vector<net::ListenerConfig> listeners{net::ListenerConfig{}};  // 127.0.0.1:1883
  std::string data_dir;  // empty: nothing is written to disk
  StoreSettings store;
  unsigned threads = 1;  // event loops for connections (server.hpp)
  log::Level log_level = log::Level::info;
  AdminSettings admin;
  TracingSettings tracing;  // [tracing] (config_tracing.hpp)
  policy::SecurityConfig security;  // [security] (config_security.hpp)
};

// What the command line may override. Each set field replaces the file's value; `listen`,
// when not empty, replaces the file's whole listener list.
struct Overrides {
  std::optional<std::string> config_file;
  std::vector<std::string> listen;
  std::optional<std::string> data_dir;
  std::optional<std::string> log_level;
  std::optional<std::string> admin;
  std::optional<std::string> admin_cert;
  std::optional<std::string> admin_key;
  std::optional<std::string> durability;
  std::optional<std::int64_t> threads;
};

std::optional<Durability> parse_durability_name(std::string_view text);
std::string_view durability_name(Durability d);

// Parses TOML text on top of the embedded defaults. `source_name` is the file name used
// in error messages.
Expected<Config, std::string> parse_config(std::string_view text, std::string_view source_name);

// Reads and parses a file.
Expected<Config, std::string> load_config_file(const std::string& path);

// Applies command-line overrides to a configuration.
Expected<void, std::string> apply_overrides(Config& config, const Overrides& overrides);

// Defaults, then the file named in `overrides` (if any), then the other overrides.
Expected<Config, std::string> resolve_config(const Overrides& overrides);

// "HOST:PORT", "[IPV6]:PORT". Port 0 means any free port.
Expected<net::ListenerConfig, std::string> parse_listen_address(std::string_view text);
// The inverse: brackets around IPv6 hosts.
std::string format_listen_address(const net::ListenerConfig& listener);

// "debug", "info", "warning", "error".
std::optional<log::Level> parse_log_level_name(std::string_view text);
std::string_view log_level_name(log::Level level);

// The effective configuration as a TOML document in the file's schema; parsing it again
// gives the same configuration.
std::string to_toml(const Config& config);

}  // namespace tern::ternd
