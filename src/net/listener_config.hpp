// Where a listener binds. Kept apart from server.hpp so that configuration code can use
// it without Asio.
#pragma once

#include <cstdint>
#include <string>

namespace tern::net {

struct ListenerConfig {
  std::string host = "127.0.0.1";
  std::uint16_t port = 1883;  // 0: any free port (see Server::bound_endpoints)
};

}  // namespace tern::net
