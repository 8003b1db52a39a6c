#include "command_line.hpp"

#include <CLI/CLI.hpp>
#include <ostream>

#ifndef TERN_VERSION
#define TERN_VERSION "unknown"
#endif

namespace tern::ternd {

std::variant<CommandLine, int> parse_command_line(int argc, const char* const* argv, std::ostream& out,
                                                  std::ostream& err) {
  CLI::App app{"ternd: the Tern event hub, an MQTT 3.1.1/5.0 broker.\n"
               "Without options it listens on 127.0.0.1:1883 with the embedded defaults.",
               "ternd"};
  app.set_version_flag("--version", std::string("ternd ") + TERN_VERSION);

  CommandLine cl;
  std::string config_file;
  std::string data_dir;
  std::string log_level;
  std::string admin;
  std::string durability;
  std::string admin_cert;
  std::string admin_key;
  auto* config_opt = app.add_option("-c,--config", config_file, "TOML configuration file (docs/configuration.md)")
                         ->type_name("FILE");
  app.add_option("-l,--listen", cl.overrides.listen,
                 "Listen on HOST:PORT ([::1]:1883 for IPv6; port 0: any free port); repeatable; "
                 "replaces the file's listeners")
      ->type_name("HOST:PORT")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  auto* data_dir_opt =
      app.add_option("--data-dir", data_dir, "Directory for persistent state (created if missing)")
          ->type_name("DIR");
  auto* log_level_opt =
      app.add_option("--log-level", log_level, "debug, info, warning or error")->type_name("LEVEL");
  auto* durability_opt =
      app.add_option("--durability", durability, "fsync (default), batch or memory: when acknowledged means on disk")
          ->type_name("MODE");
  auto* admin_opt = app.add_option("--admin", admin, "Admin HTTP endpoint on HOST:PORT (\"\" disables it)")
                        ->type_name("HOST:PORT");
  auto* admin_cert_opt =
      app.add_option("--admin-cert", admin_cert, "PEM certificate (chain) of the admin endpoint: HTTPS only (needs --admin-key)")
          ->type_name("FILE");
  auto* admin_key_opt =
      app.add_option("--admin-key", admin_key, "PEM private key of the admin endpoint's certificate")->type_name("FILE");
  std::int64_t threads = 1;
  auto* threads_opt = app.add_option("--threads", threads,
                                     "Event loops for connections, 1 to 64 (default 1): one runs the broker, "
                                     "the others only network I/O")
                          ->type_name("N");
  app.add_flag("--check-config", cl.check_config,
               "Parse the configuration, print the effective configuration and exit (0 valid, 1 invalid)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e, out, err);
    return code == 0 ? kExitOk : kExitConfigError;
  }
  if (*config_opt) cl.overrides.config_file = config_file;
  if (*data_dir_opt) cl.overrides.data_dir = data_dir;
  if (*log_level_opt) cl.overrides.log_level = log_level;
  if (*admin_opt) cl.overrides.admin = admin;
  if (*admin_cert_opt) cl.overrides.admin_cert = admin_cert;
  if (*admin_key_opt) cl.overrides.admin_key = admin_key;
  if (*durability_opt) cl.overrides.durability = durability;
  if (*threads_opt) cl.overrides.threads = threads;
  return cl;
}

}  // namespace tern::ternd
