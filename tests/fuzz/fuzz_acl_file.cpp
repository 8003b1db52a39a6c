// libFuzzer target: the ACL file parser and its evaluation.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "policy/acl.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto acl = tern::policy::Acl::parse(text, "fuzz");
  if (!acl) return 0;
  tern::broker::ClientIdentity who;
  who.client_id = "sensor-1";
  who.username = "alice";
  who.transport_identity = "device.example";
  for (const std::string_view topic : {"sensors/sensor-1/t", "a/b", "$SYS/x", "devices/alice/#", "#", "+/+"}) {
    (void)acl->allows(who, tern::policy::kSubscribe, topic);
    if (topic.find_first_of("+#") == std::string_view::npos) {
      (void)acl->allows(who, tern::policy::kWrite, topic);
      (void)acl->allows(who, tern::policy::kReceive, topic);
    }
  }
  return 0;
}
