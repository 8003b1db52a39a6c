// Helpers shared by the SDK's test programs (tests/sdk/ and tests/unit/sdk/).
#pragma once

#include <sys/wait.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>

namespace tern::test {

// Runs `io` until `done()` holds; false on timeout.
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    if (io.stopped()) io.restart();
    io.run_one_for(std::chrono::milliseconds(20));
  }
  return true;
}

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

// Runs a shell command line, stderr merged into stdout; `on_line` sees each line as it comes.
inline CommandResult run_command(const std::string& command,
                                 const std::function<void(const std::string&)>& on_line = {}) {
  CommandResult r;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (!p) return r;
  char line[8192];
  while (std::fgets(line, sizeof line, p)) {
    r.output += line;
    if (on_line) on_line(line);
  }
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace tern::test
