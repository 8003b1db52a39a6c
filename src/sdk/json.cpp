// Boost.JSON's compiled part is not in this file: tern_broker compiles it once
// (src/broker/stream_request.cpp) and tern_sdk links tern_broker for the in-process
// broker, so a second copy here would define every symbol twice.
#include "tern/json.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <fmt/format.h>

namespace tern {

Expected<boost::json::value, std::string> parse_json(std::string_view payload) {
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(payload, ec);
  if (ec) return make_unexpected(fmt::format("invalid JSON: {}", ec.message()));
  return value;
}

Message json_message(std::string topic, const boost::json::value& value, Qos qos) {
  Message m;
  m.topic = std::move(topic);
  m.payload = boost::json::serialize(value);
  m.qos = qos;
  m.content_type = std::string(kJsonContentType);
  m.payload_format_indicator = 1;
  return m;
}

std::error_code publish_json(Service& service, std::string topic, const boost::json::value& value,
                             std::optional<Qos> qos, PublishCallback done) {
  return service.publish(json_message(std::move(topic), value, qos.value_or(service.default_qos())), std::move(done));
}

Handler json_handler(JsonHandler handler) {
  return [handler = std::move(handler)](const Event& event) -> Outcome {
    auto value = parse_json(event.payload());
    if (!value) return Outcome::permanent_failure(value.error());
    return handler(event, *value);
  };
}

Responder json_responder(JsonResponder responder) {
  return [responder = std::move(responder)](const Event& event, std::string& reply) -> Outcome {
    auto request = parse_json(event.payload());
    if (!request) return Outcome::permanent_failure(request.error());
    boost::json::value answer;
    Outcome outcome = responder(event, *request, answer);
    if (outcome.ok) reply = boost::json::serialize(answer);
    return outcome;
  };
}

}  // namespace tern
