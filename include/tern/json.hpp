// Typed payload helpers: JSON payloads as boost::json::value.
//
// Raw bytes need no helper: Event::payload() and Service::publish take std::string.
// JSON published with these helpers carries content type "application/json" and payload
// format indicator 1 (UTF-8), so MQTT 5 subscribers and the broker's policy see what it is.
// A payload that is not valid JSON fails a json_handler permanently: retrying cannot fix
// it, so it goes to the dead-letter topic at once, with the parse error as tern-error.
#pragma once

#include <boost/json/value.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/expected.hpp"
#include "tern/service.hpp"

namespace tern {

inline constexpr std::string_view kJsonContentType = "application/json";

// The value, or a message saying what is wrong and where.
Expected<boost::json::value, std::string> parse_json(std::string_view payload);
inline Expected<boost::json::value, std::string> parse_json(const Event& event) { return parse_json(event.payload()); }

// A message carrying `value` serialized.
Message json_message(std::string topic, const boost::json::value& value, Qos qos = Qos::at_least_once);

// Service::publish of `value` (QoS: the service's default unless given).
std::error_code publish_json(Service& service, std::string topic, const boost::json::value& value,
                             std::optional<Qos> qos = std::nullopt, PublishCallback done = {});

using JsonHandler = std::function<Outcome(const Event&, const boost::json::value&)>;
Handler json_handler(JsonHandler handler);

// The reply is serialized into the response; a request that is not JSON gets no reply.
using JsonResponder = std::function<Outcome(const Event&, const boost::json::value& request, boost::json::value& reply)>;
Responder json_responder(JsonResponder responder);

}  // namespace tern
