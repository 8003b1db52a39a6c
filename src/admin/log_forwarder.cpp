#include "admin/log_forwarder.hpp"

#include <boost/asio/post.hpp>

#include <utility>

namespace tern::admin {

LogForwarder::LogForwarder(boost::asio::io_context& io, std::string node, log::Level min_level, Publish publish,
                           std::size_t max_pending)
    : queue_(
          min_level, max_pending, [&io](std::function<void()> drain) { boost::asio::post(io, std::move(drain)); },
          [node = std::move(node), publish = std::move(publish)](std::deque<log::PendingLine>& lines) {
            for (const auto& item : lines) {
              const std::string topic = "$tern/logs/" + node + "/" + std::string(log::level_name(item.level));
              publish(topic, item.json, 0, false);
            }
            return log::ForwardCounts{lines.size(), 0};
          }) {}

LogForwarder::~LogForwarder() = default;

std::uint64_t LogForwarder::dropped() const { return queue_.counts().dropped; }

std::uint64_t LogForwarder::forwarded() const { return queue_.counts().forwarded; }

}  // namespace tern::admin
