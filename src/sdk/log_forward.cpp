#include "sdk/log_forward.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <mutex>
#include <utility>

namespace tern::sdk {
namespace {

// Set while a drain handler publishes: what is logged then (by the client, or by a
// callback it runs) is a consequence of forwarding and is not forwarded again.
thread_local bool t_publishing = false;

struct PublishingScope {
  PublishingScope() { t_publishing = true; }
  ~PublishingScope() { t_publishing = false; }
  PublishingScope(const PublishingScope&) = delete;
  PublishingScope& operator=(const PublishingScope&) = delete;
};

}  // namespace

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
  State(boost::asio::io_context& io_context, LogForwardOptions opts, Client& c)
      : io(io_context),
        options(std::move(opts)),
        client(&c),
        tokens(static_cast<double>(std::max<std::size_t>(options.burst, 1))),
        refilled(std::chrono::steady_clock::now()) {}

  struct Pending {
    log::Level level;
    std::string line;
  };

  boost::asio::io_context& io;
  const LogForwardOptions options;
  Client* client;  // used on the io_context thread only, and only while !closed

  mutable std::mutex mutex;
  std::deque<Pending> pending;
  double tokens;
  std::chrono::steady_clock::time_point refilled;
  bool drain_posted = false;
  bool closed = false;
  LogForwardStats stats;
  std::size_t in_client = 0;  // io_context thread only: published, not yet written

  // Called by the logger on any thread: never blocks beyond this short lock.
  void offer(log::Level level, std::string_view line) {
    if (t_publishing || level < options.min_level) return;
    std::lock_guard lock(mutex);
    if (closed) return;
    if (!take_token() || pending.size() >= options.max_pending) {
      ++stats.dropped;
      return;
    }
    pending.push_back(Pending{level, std::string(line)});
    if (drain_posted) return;
    drain_posted = true;
    boost::asio::post(io, [self = shared_from_this()] { self->drain(); });
  }

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

  void drain() {
    std::deque<Pending> batch;
    {
      std::lock_guard lock(mutex);
      drain_posted = false;
      if (closed) return;
      batch.swap(pending);
    }
    const PublishingScope scope;
    std::uint64_t forwarded = 0;
    std::uint64_t dropped = 0;
    for (auto& item : batch) {
      if (!client->connected() || in_client >= options.max_pending) {
        ++dropped;
        continue;
      }
      Message m;
      m.topic = log_topic(options.source, item.level);
      m.payload = std::move(item.line);
      m.qos = Qos::at_most_once;
      m.content_type = "application/json";
      ++in_client;
      const std::weak_ptr<State> weak = weak_from_this();
      const auto ec = client->publish(std::move(m), [weak](std::error_code, std::uint8_t) {
        if (auto self = weak.lock()) --self->in_client;
      });
      if (ec) {
        --in_client;
        ++dropped;
      } else {
        ++forwarded;
      }
    }
    std::lock_guard lock(mutex);
    stats.forwarded += forwarded;
    stats.dropped += dropped;
  }
};

LogForward::LogForward(boost::asio::io_context& io, LogForwardOptions options, Client& client)
    : state_(std::make_shared<State>(io, std::move(options), client)) {
  id_ = log::add_forwarder([state = state_](log::Level level, std::string_view line) { state->offer(level, line); });
}

LogForward::~LogForward() {
  log::remove_forwarder(id_);
  std::lock_guard lock(state_->mutex);
  state_->closed = true;
  state_->pending.clear();
}

LogForwardStats LogForward::stats() const {
  std::lock_guard lock(state_->mutex);
  return state_->stats;
}

}  // namespace tern::sdk
