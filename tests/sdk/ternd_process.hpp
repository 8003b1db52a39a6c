// Starts the real ternd on 127.0.0.1 for a test and stops it with SIGTERM.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace tern::test {

inline std::string ternd_path() {
  if (const char* p = std::getenv("TERN_TEST_TERND")) return p;
  return TERND_PATH;
}

// The port of a log line "listening on HOST:PORT": the digits after the last ':' of the
// word that follows (std::regex is avoided: GCC 12 warns falsely inside it under the
// sanitizers). 0 for any other line.
inline int listening_port(std::string_view line) {
  const auto at = line.find("listening on ");
  if (at == std::string_view::npos) return 0;
  std::string_view endpoint = line.substr(at + 13);
  endpoint = endpoint.substr(0, endpoint.find_first_of(" \"\n"));
  const auto colon = endpoint.rfind(':');
  if (colon == std::string_view::npos) return 0;
  return std::atoi(std::string(endpoint.substr(colon + 1)).c_str());
}

// ternd as a child process, its stderr on a pipe.
class TerndChild {
 public:
  TerndChild() = default;
  ~TerndChild() { stop(); }
  TerndChild(const TerndChild&) = delete;
  TerndChild& operator=(const TerndChild&) = delete;

  // Runs ternd with `args` (in `workdir` unless empty) and returns the ports of its first
  // `listeners` "listening on" lines, in order. Its stderr is read on afterwards so that
  // ternd never blocks on a full pipe, appended to `log_file` unless that is empty.
  std::vector<int> start(const std::vector<std::string>& args, std::size_t listeners, const std::string& workdir = {},
                         const std::string& log_file = {}) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe");
    std::string path = ternd_path();
    std::vector<std::string> words = args;
    std::vector<char*> argv{path.data()};
    for (auto& word : words) argv.push_back(word.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 2);
      close(fds[0]);
      close(fds[1]);
      if (!workdir.empty() && chdir(workdir.c_str()) != 0) _exit(126);
      execv(path.c_str(), argv.data());
      _exit(127);
    }
    close(fds[1]);
    stderr_ = fdopen(fds[0], "r");
    std::vector<int> ports;
    char line[4096];
    while (ports.size() < listeners && std::fgets(line, sizeof line, stderr_)) {
      if (const int port = listening_port(line); port != 0) ports.push_back(port);
    }
    if (ports.size() < listeners) {
      std::string command = path;
      for (const auto& arg : args) command += " " + arg;
      throw std::runtime_error("ternd did not start: " + command);
    }
    drain_ = std::thread([f = stderr_, log_file] {
      std::ofstream out;
      if (!log_file.empty()) out.open(log_file, std::ios::app);
      char buf[4096];
      while (std::fgets(buf, sizeof buf, f)) {
        if (out.is_open()) out << buf << std::flush;
      }
    });
    return ports;
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

 private:
  pid_t pid_ = -1;
  FILE* stderr_ = nullptr;
  std::thread drain_;
};

// ternd listening on one address, given on its command line.
class TerndProcess {
 public:
  // port 0: any free port; otherwise that port (a restart on the same address).
  explicit TerndProcess(int port = 0) { start(port); }
  TerndProcess(const TerndProcess&) = delete;
  TerndProcess& operator=(const TerndProcess&) = delete;

  int port() const { return port_; }

  void start(int port) { port_ = child_.start({"--listen", "127.0.0.1:" + std::to_string(port)}, 1).front(); }

  void stop() { child_.stop(); }

  void restart() {
    const int port = port_;
    stop();
    port_ = 0;
    start(port);
  }

 private:
  TerndChild child_;
  int port_ = 0;
};

}  // namespace tern::test
