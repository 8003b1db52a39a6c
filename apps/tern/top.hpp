// `tern top`: a live view of one ternd in the terminal, read from its admin endpoint's
// /metrics every interval: message and byte rates, connections, queues, in-flight,
// drops by reason, the deepest session queues, firing alerts and the process itself.
// `--once` prints a single frame (rates over one interval) and exits.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace CLI {
class App;
}

namespace tern::cli {

// One Prometheus text-format sample: `name{label="value",...} 12.5`.
struct MetricSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;

  std::optional<std::string_view> label(std::string_view key) const;
};

// Parses the Prometheus text exposition format (comments and malformed lines skipped).
std::vector<MetricSample> parse_prometheus_text(std::string_view text);

struct MetricsScrape {
  std::vector<MetricSample> samples;
  std::chrono::steady_clock::time_point at;

  // The sum of every sample of `name` (all label sets); nullopt when there is none.
  std::optional<double> sum(std::string_view name) const;
  // Samples of `name`, in the order ternd wrote them.
  std::vector<const MetricSample*> all(std::string_view name) const;
};

// One frame of the view: figures of `now`, rates against `before` when given.
std::string render_top_frame(const MetricsScrape& now, const MetricsScrape* before, std::string_view source);

struct TopOptions {
  // http://HOST:PORT or https://HOST:PORT, optionally followed by a path prefix.
  std::string admin = "http://127.0.0.1:8080";
  std::string token;
  // PEM CAs an https:// endpoint's certificate must chain to; empty: the system's.
  std::string cafile;
  int interval_ms = 1000;
  bool once = false;
  int timeout_ms = 3000;
};

class TopCommand {
 public:
  explicit TopCommand(CLI::App& app);
  bool selected() const;
  // Exit codes of docs/cli.md: 0, 1 for a bad URL or CA file, 2 when ternd cannot be
  // reached or its certificate is not trusted, 4 when it refuses the token.
  int run() const;

 private:
  CLI::App* top_ = nullptr;
  TopOptions options_;
};

}  // namespace tern::cli
