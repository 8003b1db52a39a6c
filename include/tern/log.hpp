// Logging for services: Tern's structured logger, one JSON object a line on stderr
// ({"time":..,"level":..,"component":..,"msg":..}), with fmt-style formatting:
//
//   tern::log::warn("pump", "pressure {} bar above the limit", bar);
//
// tern::log::set_level() filters what is written (default: info). With
// ServiceOptions::log_forward_level set, the lines at or above that level are also
// published to $tern/logs/{service}/{level} (docs/sdk.md, "Logging").
//
// Thread-safety: any thread; a line is written with one write, so lines never interleave.
#pragma once

#include "core/log.hpp"
