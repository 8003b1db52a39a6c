// ternd's command line (CLI11). Flags override the configuration file.
//
// Thread-safety: plain functions; no shared state.
#pragma once

#include <iosfwd>
#include <string>
#include <variant>

#include "config.hpp"

namespace tern::ternd {

struct CommandLine {
  Overrides overrides;
  bool check_config = false;  // parse, print the effective configuration, exit
};

// Exit codes of ternd.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;       // start-up failed (bind, data directory) or --check-config failed
inline constexpr int kExitConfigError = 2;   // bad configuration or command line

// Parses argv. Returns the command line, or the exit code when the program must exit now
// (--help and --version print to `out`; a usage error prints to `err`).
std::variant<CommandLine, int> parse_command_line(int argc, const char* const* argv, std::ostream& out,
                                                  std::ostream& err);

}  // namespace tern::ternd
