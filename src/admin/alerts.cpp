#include "admin/alerts.hpp"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <ctime>

#include "admin/process_stats.hpp"
#include "core/log.hpp"

namespace tern::admin {
namespace {

constexpr std::string_view kComponent = "alerts";

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&t, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
                     utc.tm_hour, utc.tm_min, utc.tm_sec);
}

std::uint64_t total_dropped(const broker::BrokerStats& s) {
  return s.dropped_queue_full + s.dropped_expired + s.dropped_qos0_backpressure + s.dropped_too_large +
         s.dropped_not_authorized;
}

}  // namespace

AlertMonitor::AlertMonitor(boost::asio::io_context& io, std::string node, AlertThresholds thresholds,
                           Sources sources, Publish publish, MemoryReader memory)
    : io_(io),
      node_(std::move(node)),
      thresholds_(thresholds),
      sources_(std::move(sources)),
      publish_(std::move(publish)),
      memory_(memory ? std::move(memory) : MemoryReader(read_resident_memory_bytes)),
      timer_(io) {
  if (thresholds_.queue_depth && sources_.queued_messages_total) {
    alerts_.push_back({"queue_depth", static_cast<double>(*thresholds_.queue_depth),
                       [this]() -> std::optional<double> {
                         return static_cast<double>(sources_.queued_messages_total());
                       }});
  }
  if (thresholds_.drop_rate && sources_.broker_stats) {
    alerts_.push_back({"drop_rate", *thresholds_.drop_rate, [this] { return drop_rate(); }});
  }
  if (thresholds_.store_latency_us && sources_.store_metrics) {
    alerts_.push_back({"store_latency", static_cast<double>(*thresholds_.store_latency_us),
                       [this]() -> std::optional<double> {
                         const auto m = sources_.store_metrics();
                         if (!m) return std::nullopt;
                         return static_cast<double>(m->last_commit_us);
                       }});
  }
  if (thresholds_.resident_memory_bytes) {
    alerts_.push_back({"memory", static_cast<double>(*thresholds_.resident_memory_bytes),
                       [this]() -> std::optional<double> {
                         const auto rss = memory_();
                         if (!rss) return std::nullopt;
                         return static_cast<double>(*rss);
                       }});
  }
}

AlertMonitor::~AlertMonitor() { stop(); }

void AlertMonitor::start() {
  if (alerts_.empty() || running_) return;
  running_ = true;
  arm();
}

void AlertMonitor::stop() {
  running_ = false;
  timer_.cancel();
}

void AlertMonitor::arm() {
  timer_.expires_after(thresholds_.interval);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || !running_) return;
    evaluate();
    arm();
  });
}

std::optional<double> AlertMonitor::drop_rate() {
  const std::uint64_t dropped = total_dropped(sources_.broker_stats());
  const auto now = std::chrono::steady_clock::now();
  std::optional<double> rate;
  if (last_dropped_) {
    const double seconds = std::chrono::duration<double>(now - last_dropped_at_).count();
    if (seconds > 0) rate = static_cast<double>(dropped - *last_dropped_) / seconds;
  }
  last_dropped_ = dropped;
  last_dropped_at_ = now;
  return rate;
}

void AlertMonitor::evaluate() {
  for (auto& alert : alerts_) {
    const auto value = alert.read();
    if (!value) continue;
    alert.last_value = *value;
    const bool crossed = *value > alert.threshold;
    if (crossed == alert.firing) continue;
    alert.firing = crossed;
    if (crossed) {
      log::warn(kComponent, "alert {} firing: {} > {}", alert.name, *value, alert.threshold);
    } else {
      log::info(kComponent, "alert {} cleared: {} <= {}", alert.name, *value, alert.threshold);
    }
    if (!publish_) continue;
    boost::json::object event;
    event["node"] = node_;
    event["alert"] = alert.name;
    event["state"] = crossed ? "firing" : "cleared";
    event["value"] = *value;
    event["threshold"] = alert.threshold;
    event["time"] = utc_now();
    publish_(kAlertTopic, boost::json::serialize(event), 1, false);
  }
}

std::vector<AlertStatus> AlertMonitor::status() const {
  std::vector<AlertStatus> out;
  out.reserve(alerts_.size());
  for (const auto& a : alerts_) out.push_back(AlertStatus{a.name, a.firing, a.last_value, a.threshold});
  return out;
}

std::vector<std::string> AlertMonitor::firing() const {
  std::vector<std::string> out;
  for (const auto& a : alerts_) {
    if (a.firing) out.push_back(a.name);
  }
  return out;
}

}  // namespace tern::admin
