#include "tern/error.hpp"

#include <string>

namespace tern {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "tern"; }
  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::not_connected: return "not connected";
      case Errc::connection_failed: return "connection failed";
      case Errc::connection_refused: return "connection refused by the broker";
      case Errc::connection_lost: return "connection lost";
      case Errc::protocol_error: return "protocol error";
      case Errc::rejected: return "rejected by the broker";
      case Errc::timeout: return "timed out";
      case Errc::outbox_full: return "outbox full";
      case Errc::dropped: return "dropped from a full outbox";
      case Errc::shutting_down: return "shutting down";
      case Errc::invalid_argument: return "invalid argument";
      case Errc::storage_failed: return "storage failed";
    }
    return "unknown tern error";
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

}  // namespace tern
