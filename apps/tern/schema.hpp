// `tern schema`: manages a schema registry folder (docs/security.md).
//
//   tern schema list  DIR
//   tern schema check DIR SUBJECT FILE [--compatibility backward|forward|full|none]
//   tern schema add   DIR SUBJECT FILE [--compatibility ...]   stores DIR/SUBJECT/N.json
//   tern schema validate DIR SUBJECT[@VERSION] PAYLOAD-FILE
//
// check and add compare FILE with the subject's latest version (backward by default).
//
// Thread-safety: run from main.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace tern::cli {

class SchemaCommand {
 public:
  explicit SchemaCommand(CLI::App& app);
  bool selected() const;
  // 0: done / compatible / valid; 4: incompatible or invalid; 1: usage; 5: files unreadable.
  int run();

 private:
  CLI::App* command_ = nullptr;
  CLI::App* list_ = nullptr;
  CLI::App* check_ = nullptr;
  CLI::App* add_ = nullptr;
  CLI::App* validate_ = nullptr;
  std::string dir_;
  std::string subject_;
  std::string file_;
  std::string compatibility_ = "backward";
};

}  // namespace tern::cli
