// `tern ca`: a small local certificate authority for mTLS (docs/security.md).
//
//   tern ca init   --dir D                       D/ca.key, D/ca.crt (EC P-256, 10 years)
//   tern ca issue  --dir D --name N [--server]   D/N.key, D/N.crt signed by the CA
//   tern ca revoke --dir D --name N              adds N's certificate to D/crl.pem
//   tern ca crl    --dir D                       signs D/crl.pem again with fresh dates
//
// Thread-safety: plain functions, run from main.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>

namespace tern::cli {

class CaCommand {
 public:
  // Adds `ca` and its subcommands to `app`, which must outlive this object.
  explicit CaCommand(CLI::App& app);
  ~CaCommand();
  CaCommand(const CaCommand&) = delete;
  CaCommand& operator=(const CaCommand&) = delete;

  // After parsing: whether `ca` was given.
  bool selected() const;
  // Runs the parsed subcommand; returns the exit code (0, or 5 with a message on stderr).
  int run();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace tern::cli
