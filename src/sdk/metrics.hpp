// The Prometheus text exposition (format 0.0.4) of a service's figures, served on
// /metrics by the health endpoint.
#pragma once

#include <string>
#include <string_view>

#include "tern/service.hpp"

namespace tern::sdk {

// Every series carries a `service` label with the service's name.
std::string render_metrics(std::string_view service, const ServiceStats& stats);

// `value` escaped for a label value (backslash, double quote, new line).
std::string escape_label_value(std::string_view value);

}  // namespace tern::sdk
