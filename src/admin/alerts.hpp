// AlertMonitor: compares a few figures with configured thresholds on a timer and publishes
// an event on $tern/alerts when a threshold is crossed and again when it is cleared.
//
// Without thresholds it never arms its timer (idle means idle). A crossing is "value >
// threshold"; it clears at the first evaluation where "value <= threshold", so an alert
// changes state at most once an interval.
//
// Event payload (JSON): {"node","alert","state":"firing"|"cleared","value","threshold","time"}.
//
// Thread-safety: everything on the broker's io_context thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "admin/metrics.hpp"
#include "admin/sources.hpp"

namespace tern::admin {

inline constexpr std::string_view kAlertTopic = "$tern/alerts";

struct AlertThresholds {
  std::optional<std::uint64_t> queue_depth;        // messages queued over all sessions
  std::optional<double> drop_rate;                 // dropped messages per second, between evaluations
  std::optional<std::uint64_t> store_latency_us;   // duration of the last store commit
  std::optional<std::uint64_t> resident_memory_bytes;
  std::chrono::milliseconds interval{10000};
  bool any() const noexcept { return queue_depth || drop_rate || store_latency_us || resident_memory_bytes; }
};

class AlertMonitor {
 public:
  // Reads the resident set size; replaceable so tests need not grow the process.
  using MemoryReader = std::function<std::optional<std::uint64_t>()>;

  AlertMonitor(boost::asio::io_context& io, std::string node, AlertThresholds thresholds, Sources sources,
               Publish publish, MemoryReader memory = {});
  ~AlertMonitor();
  AlertMonitor(const AlertMonitor&) = delete;
  AlertMonitor& operator=(const AlertMonitor&) = delete;

  // Arms the timer if any threshold is configured.
  void start();
  void stop();

  // One evaluation now: publishes the transitions. The timer calls it every interval.
  void evaluate();

  // The configured alerts and their state, for /metrics and /api/v1/status.
  std::vector<AlertStatus> status() const;
  // Names of firing alerts ("queue_depth"...), e.g. for a readiness check.
  std::vector<std::string> firing() const;

 private:
  struct Alert {
    std::string name;
    double threshold = 0;
    std::function<std::optional<double>()> read;
    bool firing = false;
    double last_value = 0;
  };
  void arm();
  std::optional<double> drop_rate();

  boost::asio::io_context& io_;
  std::string node_;
  AlertThresholds thresholds_;
  Sources sources_;
  Publish publish_;
  MemoryReader memory_;
  boost::asio::steady_timer timer_;
  std::vector<Alert> alerts_;
  bool running_ = false;
  std::optional<std::uint64_t> last_dropped_;
  std::chrono::steady_clock::time_point last_dropped_at_{};
};

}  // namespace tern::admin
