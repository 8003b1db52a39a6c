// The client's side of InProcessBroker: open a connection, send bytes, close it.
//
// Thread-safety: the io_context thread shared by the broker and its clients.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "tern/in_process.hpp"

namespace tern::sdk {

struct InProcessCallbacks {
  // Bytes from the broker, in order; posted, never called from inside a link call.
  std::function<void(std::string_view bytes)> data;
  // The broker closed the connection (protocol error, takeover, shutdown).
  std::function<void()> closed;
};

using InProcessConnectionId = std::uint64_t;

using InProcessHandle = std::weak_ptr<InProcessBroker::Impl>;

// Returns 0 when the broker is gone or refuses the connection (too many connections).
InProcessConnectionId in_process_open(const InProcessHandle& broker, InProcessCallbacks callbacks);
// Bytes for the broker; delivered on a later turn of the loop.
void in_process_send(const InProcessHandle& broker, InProcessConnectionId id, std::string bytes);
// The client closes: no callback follows for `id`.
void in_process_close(const InProcessHandle& broker, InProcessConnectionId id);

}  // namespace tern::sdk
