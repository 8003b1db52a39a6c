// ForwardQueue: the queue between the logger and a log forwarder that publishes lines
// (ternd's admin::LogForwarder, a service's sdk::LogForward).
//
// The logger calls in on whatever thread logged, and a line is never published from inside
// that call: lines at or above a level are queued (bounded; beyond the bound they are
// counted and dropped) and one drain is scheduled on the publishing thread, which hands
// the queued lines to `publish`. Lines logged on a thread while any ForwardQueue's publish
// runs there are a consequence of forwarding and are not forwarded again, so forwarding
// can never feed itself, even at debug level.
//
// Thread-safety: construct, read counts and destroy on the publishing thread; the logger
// may call in from any thread. Once destroyed, a scheduled drain does nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "core/log.hpp"

namespace tern::log {

struct PendingLine {
  Level level = Level::info;
  std::string json;  // the line without its newline
};

struct ForwardCounts {
  std::uint64_t forwarded = 0;
  std::uint64_t dropped = 0;
};

class ForwardQueue {
 public:
  // Publishes the lines queued since the last drain, oldest first, and says what became of
  // them. Runs on the publishing thread.
  using Publish = std::function<ForwardCounts(std::deque<PendingLine>& lines)>;
  // Runs `drain` later on the publishing thread, never inside this call (boost::asio::post).
  // Called from the logging thread with the queue's lock held.
  using ScheduleDrain = std::function<void(std::function<void()> drain)>;
  // Called with the queue's lock held for each line at or above the level, before the
  // bound is checked; false drops the line (counted). A rate limit lives here.
  using Admit = std::function<bool()>;

  ForwardQueue(Level min_level, std::size_t max_pending, ScheduleDrain schedule_drain, Publish publish,
               Admit admit = {});
  // Stops taking lines; queued ones are discarded.
  ~ForwardQueue();
  ForwardQueue(const ForwardQueue&) = delete;
  ForwardQueue& operator=(const ForwardQueue&) = delete;

  // Dropped: by `admit`, by the bound, and those `publish` reported.
  ForwardCounts counts() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
  ForwarderId id_ = 0;
};

}  // namespace tern::log
