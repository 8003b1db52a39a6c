#include "admin/log_forwarder.hpp"

#include <boost/asio/post.hpp>

#include <deque>
#include <mutex>
#include <utility>

namespace tern::admin {
namespace {

// Set while a drain handler publishes, on the broker's thread: what the broker logs then
// is a consequence of forwarding and is not forwarded again.
thread_local bool t_publishing = false;

}  // namespace

struct LogForwarder::State : std::enable_shared_from_this<State> {
  State(boost::asio::io_context& io_context, std::string node_name, log::Level level, Publish publish_fn,
        std::size_t max)
      : io(io_context), node(std::move(node_name)), min_level(level), publish(std::move(publish_fn)), max_pending(max) {}

  struct Pending {
    log::Level level;
    std::string line;
  };

  boost::asio::io_context& io;
  const std::string node;
  const log::Level min_level;
  const Publish publish;
  const std::size_t max_pending;

  mutable std::mutex mutex;
  std::deque<Pending> pending;
  bool drain_posted = false;
  bool closed = false;
  std::uint64_t dropped = 0;
  std::uint64_t forwarded = 0;

  void offer(log::Level level, std::string_view line) {
    if (t_publishing || level < min_level) return;
    std::lock_guard lock(mutex);
    if (closed) return;
    if (pending.size() >= max_pending) {
      ++dropped;
      return;
    }
    pending.push_back(Pending{level, std::string(line)});
    if (drain_posted) return;
    drain_posted = true;
    boost::asio::post(io, [self = shared_from_this()] { self->drain(); });
  }

  void drain() {
    std::deque<Pending> batch;
    {
      std::lock_guard lock(mutex);
      drain_posted = false;
      if (closed) return;
      batch.swap(pending);
      forwarded += batch.size();
    }
    struct PublishingScope {
      PublishingScope() { t_publishing = true; }
      ~PublishingScope() { t_publishing = false; }
      PublishingScope(const PublishingScope&) = delete;
      PublishingScope& operator=(const PublishingScope&) = delete;
    } scope;
    for (const auto& item : batch) {
      const std::string topic = "$tern/logs/" + node + "/" + std::string(log::level_name(item.level));
      publish(topic, item.line, 0, false);
    }
  }
};

LogForwarder::LogForwarder(boost::asio::io_context& io, std::string node, log::Level min_level, Publish publish,
                           std::size_t max_pending)
    : state_(std::make_shared<State>(io, std::move(node), min_level, std::move(publish), max_pending)) {
  id_ = log::add_forwarder([state = state_](log::Level level, std::string_view line) { state->offer(level, line); });
}

LogForwarder::~LogForwarder() {
  log::remove_forwarder(id_);
  std::lock_guard lock(state_->mutex);
  state_->closed = true;
  state_->pending.clear();
}

std::uint64_t LogForwarder::dropped() const {
  std::lock_guard lock(state_->mutex);
  return state_->dropped;
}

std::uint64_t LogForwarder::forwarded() const {
  std::lock_guard lock(state_->mutex);
  return state_->forwarded;
}

}  // namespace tern::admin
