// Store: where the broker keeps what must outlive a connection. The broker holds the live
// state in memory and writes every change through this interface; at start-up it loads
// what the store holds. MemoryStore keeps it in memory (state survives a Broker, not the
// process); the SQLite store (durability) implements the same interface.
//
// Thread-safety: called from the broker's thread only.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "broker/message.hpp"
#include "mqtt/packets.hpp"

namespace tern::broker {

struct StoredSubscription {
  std::string filter;  // including "$share/{group}/" for shared subscriptions
  mqtt::SubscriptionOptions options;
  std::uint32_t subscription_id = 0;
};

struct SessionRecord {
  std::string client_id;
  mqtt::Version version = mqtt::Version::v5;
  std::uint32_t session_expiry_interval = 0;  // seconds; 0xFFFFFFFF never
  std::vector<StoredSubscription> subscriptions;
};

class Store {
 public:
  virtual ~Store() = default;
  virtual void save_session(const SessionRecord& session) = 0;
  virtual void remove_session(const std::string& client_id) = 0;
  virtual void save_retained(const MessagePtr& message) = 0;
  virtual void remove_retained(const std::string& topic) = 0;
  virtual std::vector<SessionRecord> load_sessions() = 0;
  virtual std::vector<MessagePtr> load_retained() = 0;
};

class MemoryStore final : public Store {
 public:
  void save_session(const SessionRecord& session) override { sessions_[session.client_id] = session; }
  void remove_session(const std::string& client_id) override { sessions_.erase(client_id); }
  void save_retained(const MessagePtr& message) override { retained_[message->topic] = message; }
  void remove_retained(const std::string& topic) override { retained_.erase(topic); }
  std::vector<SessionRecord> load_sessions() override {
    std::vector<SessionRecord> out;
    for (auto& [_, s] : sessions_) out.push_back(s);
    return out;
  }
  std::vector<MessagePtr> load_retained() override {
    std::vector<MessagePtr> out;
    for (auto& [_, m] : retained_) out.push_back(m);
    return out;
  }

 private:
  std::map<std::string, SessionRecord> sessions_;
  std::map<std::string, MessagePtr> retained_;
};

}  // namespace tern::broker
