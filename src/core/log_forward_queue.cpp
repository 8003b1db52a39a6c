#include "core/log_forward_queue.hpp"

#include <mutex>
#include <utility>

namespace tern::log {
namespace {

// Set while a drain publishes: what is logged then on this thread (by the broker routing
// the line, by the client, or by a callback it runs) is not forwarded again.
thread_local bool t_publishing = false;

struct PublishingScope {
  PublishingScope() { t_publishing = true; }
  ~PublishingScope() { t_publishing = false; }
  PublishingScope(const PublishingScope&) = delete;
  PublishingScope& operator=(const PublishingScope&) = delete;
};

}  // namespace

struct ForwardQueue::State : std::enable_shared_from_this<State> {
  State(Level level, std::size_t max, ScheduleDrain schedule, Publish publish_fn, Admit admit_fn)
      : min_level(level),
        max_pending(max),
        schedule_drain(std::move(schedule)),
        publish(std::move(publish_fn)),
        admit(std::move(admit_fn)) {}

  const Level min_level;
  const std::size_t max_pending;
  const ScheduleDrain schedule_drain;
  const Publish publish;
  const Admit admit;

  mutable std::mutex mutex;
  std::deque<PendingLine> pending;
  bool drain_scheduled = false;
  bool closed = false;
  ForwardCounts counts;

  // Called by the logger on any thread: never blocks beyond this short lock.
  void offer(Level level, std::string_view line) {
    if (t_publishing || level < min_level) return;
    std::lock_guard lock(mutex);
    if (closed) return;
    if ((admit && !admit()) || pending.size() >= max_pending) {
      ++counts.dropped;
      return;
    }
    pending.push_back(PendingLine{level, std::string(line)});
    if (drain_scheduled) return;
    drain_scheduled = true;
    schedule_drain([self = shared_from_this()] { self->drain(); });
  }

  void drain() {
    std::deque<PendingLine> batch;
    {
      std::lock_guard lock(mutex);
      drain_scheduled = false;
      if (closed) return;
      batch.swap(pending);
    }
    ForwardCounts done;
    {
      const PublishingScope scope;
      done = publish(batch);
    }
    std::lock_guard lock(mutex);
    counts.forwarded += done.forwarded;
    counts.dropped += done.dropped;
  }
};

ForwardQueue::ForwardQueue(Level min_level, std::size_t max_pending, ScheduleDrain schedule_drain, Publish publish,
                           Admit admit)
    : state_(std::make_shared<State>(min_level, max_pending, std::move(schedule_drain), std::move(publish),
                                     std::move(admit))) {
  id_ = add_forwarder([state = state_](Level level, std::string_view line) { state->offer(level, line); });
}

ForwardQueue::~ForwardQueue() {
  remove_forwarder(id_);
  std::lock_guard lock(state_->mutex);
  state_->closed = true;
  state_->pending.clear();
}

ForwardCounts ForwardQueue::counts() const {
  std::lock_guard lock(state_->mutex);
  return state_->counts;
}

}  // namespace tern::log
