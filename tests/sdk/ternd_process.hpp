// Starts the real ternd on 127.0.0.1 for a test and stops it with SIGTERM.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <stdexcept>
#include <string>
#include <thread>

namespace tern::test {

inline std::string ternd_path() {
  if (const char* p = std::getenv("TERN_TEST_TERND")) return p;
  return TERND_PATH;
}

class TerndProcess {
 public:
  // port 0: any free port; otherwise that port (a restart on the same address).
  explicit TerndProcess(int port = 0) { start(port); }
  ~TerndProcess() { stop(); }
  TerndProcess(const TerndProcess&) = delete;
  TerndProcess& operator=(const TerndProcess&) = delete;

  int port() const { return port_; }

  void start(int port) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe");
    const std::string listen = "127.0.0.1:" + std::to_string(port);
    const std::string path = ternd_path();
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 2);
      close(fds[0]);
      close(fds[1]);
      execl(path.c_str(), path.c_str(), "--listen", listen.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    stderr_ = fdopen(fds[0], "r");
    // The log line "listening on HOST:PORT": the port is the digits after the last ':'
    // of the word that follows (std::regex is avoided: GCC 12 warns falsely inside it
    // under the sanitizers).
    char line[4096];
    while (std::fgets(line, sizeof line, stderr_)) {
      const std::string_view text(line);
      const auto at = text.find("listening on ");
      if (at == std::string_view::npos) continue;
      std::string_view endpoint = text.substr(at + 13);
      endpoint = endpoint.substr(0, endpoint.find_first_of(" \"\n"));
      const auto colon = endpoint.rfind(':');
      if (colon == std::string_view::npos) continue;
      port_ = std::atoi(std::string(endpoint.substr(colon + 1)).c_str());
      if (port_ != 0) break;
    }
    if (port_ == 0) throw std::runtime_error("ternd did not start: " + path);
    // Keep reading so that ternd never blocks on a full pipe.
    drain_ = std::thread([f = stderr_] {
      char buf[4096];
      while (std::fgets(buf, sizeof buf, f)) {
      }
    });
  }

  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    if (drain_.joinable()) drain_.join();
    if (stderr_) std::fclose(stderr_);
    stderr_ = nullptr;
  }

  void restart() {
    const int port = port_;
    stop();
    port_ = 0;
    start(port);
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  FILE* stderr_ = nullptr;
  std::thread drain_;
};

}  // namespace tern::test
