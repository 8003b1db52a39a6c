// `tern passwd`: manages ternd's password file (docs/security.md).
//
//   tern passwd FILE USER                      prompts twice on the terminal
//   tern passwd FILE USER --password-stdin     reads one line from standard input
//   tern passwd FILE USER --delete
//
// The file is created (mode 0600) when missing and replaced atomically.
//
// Thread-safety: run from main.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

namespace tern::cli {

class PasswdCommand {
 public:
  explicit PasswdCommand(CLI::App& app);
  bool selected() const;
  // 0: done; 1: usage (bad user name, passwords differ); 5: the file could not be read or written.
  int run();

 private:
  CLI::App* command_ = nullptr;
  std::string file_;
  std::string user_;
  bool password_stdin_ = false;
  bool remove_ = false;
  std::uint32_t iterations_;
};

}  // namespace tern::cli
