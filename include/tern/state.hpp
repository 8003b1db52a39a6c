// tern::StateStore: a small key-value store for the rare stateful service (a counter, the
// last alert per machine, a cursor), in SQLite beside the service's de-duplication ids.
//
// Keys and values are bytes; keys sort bytewise, so `list("machine/")` returns every key
// under that prefix in order. A put outside a transaction is its own SQLite transaction
// (committed, and synced in WAL mode, before put returns); many writes belong in one
// transaction(), which commits all of them or none.
//
// Thread-safety: one thread, the service's.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "core/expected.hpp"

namespace tern {

// The writes of one transaction; reads see them before the commit.
class StateTransaction {
 public:
  Expected<std::optional<std::string>, std::error_code> get(std::string_view key) const;
  std::error_code put(std::string_view key, std::string_view value);
  std::error_code erase(std::string_view key);

  struct Impl;
  explicit StateTransaction(Impl& impl) : impl_(&impl) {}

 private:
  Impl* impl_;
};

class StateStore {
 public:
  // ":memory:" or a file path; opened on first use (or by open()).
  explicit StateStore(std::string path);
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // Opens the file and creates the table; Errc::storage_failed with last_error() set
  // when it cannot.
  std::error_code open();

  // The value, std::nullopt when the key is absent, or Errc::storage_failed.
  Expected<std::optional<std::string>, std::error_code> get(std::string_view key) const;
  std::error_code put(std::string_view key, std::string_view value);
  // Removing an absent key succeeds.
  std::error_code erase(std::string_view key);
  // Key-value pairs whose key starts with `prefix`, in key order, at most `limit` (0: all).
  Expected<std::vector<std::pair<std::string, std::string>>, std::error_code> list(std::string_view prefix,
                                                                                  std::size_t limit = 0) const;

  // Runs `body` inside one SQLite transaction. It commits when `body` returns no error;
  // otherwise (or when `body` throws) nothing of it is kept and its error is returned.
  std::error_code transaction(const std::function<std::error_code(StateTransaction&)>& body);

  // SQLite's message for the last storage failure.
  const std::string& last_error() const noexcept;

 private:
  std::unique_ptr<StateTransaction::Impl> impl_;
};

}  // namespace tern
