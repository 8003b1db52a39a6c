#include "sdk/log_forward.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <utility>

namespace tern::sdk {

std::string log_topic(std::string_view source, log::Level level) {
  std::string topic = "$tern/logs/";
  if (source.empty()) source = "service";
  for (const char c : source) {
    const auto u = static_cast<unsigned char>(c);
    topic += (c == '/' || c == '+' || c == '#' || u < 0x20 || u == 0x7F) ? '_' : c;
  }
  topic += '/';
  topic += log::level_name(level);
  return topic;
}

struct LogForward::State : std::enable_shared_from_this<State> {
  State(LogForwardOptions opts, Client& c)
      : options(std::move(opts)),
        client(&c),
        tokens(static_cast<double>(std::max<std::size_t>(options.burst, 1))),
        refilled(std::chrono::steady_clock::now()) {}

  const LogForwardOptions options;
  Client* client;  // used on the io_context thread only, and only while the queue is open

  // The token bucket: touched only by the queue's admit, under the queue's lock.
  double tokens;
  std::chrono::steady_clock::time_point refilled;
  std::size_t in_client = 0;  // io_context thread only: published, not yet written

  bool take_token() {
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - refilled).count();
    refilled = now;
    tokens = std::min(static_cast<double>(std::max<std::size_t>(options.burst, 1)),
                      tokens + elapsed * options.lines_per_second);
    if (tokens < 1.0) return false;
    tokens -= 1.0;
    return true;
  }

  log::ForwardCounts publish(std::deque<log::PendingLine>& lines) {
    log::ForwardCounts counts;
    for (auto& item : lines) {
      if (!client->connected() || in_client >= options.max_pending) {
        ++counts.dropped;
        continue;
      }
      Message m;
      m.topic = log_topic(options.source, item.level);
      m.payload = std::move(item.json);
      m.qos = Qos::at_most_once;
      m.content_type = "application/json";
      ++in_client;
      const std::weak_ptr<State> weak = weak_from_this();
      const auto ec = client->publish(std::move(m), [weak](std::error_code, std::uint8_t) {
        if (auto self = weak.lock()) --self->in_client;
      });
      if (ec) {
        --in_client;
        ++counts.dropped;
      } else {
        ++counts.forwarded;
      }
    }
    return counts;
  }
};

LogForward::LogForward(boost::asio::io_context& io, LogForwardOptions options, Client& client)
    : state_(std::make_shared<State>(std::move(options), client)),
      queue_(
          state_->options.min_level, state_->options.max_pending,
          [&io](std::function<void()> drain) { boost::asio::post(io, std::move(drain)); },
          [state = state_](std::deque<log::PendingLine>& lines) { return state->publish(lines); },
          [state = state_] { return state->take_token(); }) {}

LogForward::~LogForward() = default;

LogForwardStats LogForward::stats() const {
  const log::ForwardCounts counts = queue_.counts();
  return LogForwardStats{counts.forwarded, counts.dropped};
}

}  // namespace tern::sdk
