// `tern stream read NAME --from OFFSET|TIME`: reads an event stream through the broker's
// request/reply interface (`$tern/streams/{name}/read`, docs/cli.md).
#pragma once

#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace tern::cli {

struct StreamReadOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 1883;
  std::string client_id;
  std::string username;
  std::string password;
  int connect_timeout_ms = 5000;
  std::string name;
  std::string from = "0";  // an offset (digits) or a UTC time "2026-11-28T01:02:03Z"
  std::uint64_t max = 0;   // 0: every event up to the end of the stream
  std::string format = "text";
  int timeout_ms = 5000;   // for each answer of the broker
};

// Registers `stream` (with its `read` subcommand) on `app`; the options live here, so the
// object must outlive parsing.
class StreamCommand {
 public:
  explicit StreamCommand(CLI::App& app);
  bool selected() const;
  // Runs the parsed command; returns the exit code of docs/cli.md.
  int run() const;

 private:
  CLI::App* stream_ = nullptr;
  CLI::App* read_ = nullptr;
  StreamReadOptions options_;
};

}  // namespace tern::cli
