// ternd: configuration, command line, start and stop. Everything else lives in the
// modules under src/.
#include <filesystem>
#include <iostream>
#include <system_error>
#include <variant>

#include "command_line.hpp"
#include "config.hpp"
#include "core/log.hpp"
#include "net/server.hpp"

namespace {

constexpr std::string_view kComponent = "ternd";

int run(const tern::ternd::CommandLine& cl) {
  using namespace tern::ternd;
  auto config = resolve_config(cl.overrides);
  if (!config) {
    std::cerr << "ternd: " << config.error() << '\n';
    return cl.check_config ? kExitFailure : kExitConfigError;
  }
  if (cl.check_config) {
    std::cout << to_toml(*config);
    return kExitOk;
  }

  tern::log::set_level(config->log_level);
  if (!config->data_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(config->data_dir, ec);
    if (ec) {
      tern::log::error(kComponent, "cannot create data directory {}: {}", config->data_dir, ec.message());
      return kExitFailure;
    }
  }

  tern::log::info(kComponent, "ternd {} starting (node {})", TERN_VERSION, config->broker.node_name);
  tern::net::Server server(config->broker);
  if (auto listening = server.listen(config->listeners); !listening) {
    tern::log::error(kComponent, "{}", listening.error());
    return kExitFailure;
  }
  server.run();
  tern::log::info(kComponent, "stopped");
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = tern::ternd::parse_command_line(argc, argv, std::cout, std::cerr);
  if (const int* exit_code = std::get_if<int>(&parsed)) return *exit_code;
  try {
    return run(std::get<tern::ternd::CommandLine>(parsed));
  } catch (const std::exception& e) {
    tern::log::error(kComponent, "fatal: {}", e.what());
    return tern::ternd::kExitFailure;
  }
}
