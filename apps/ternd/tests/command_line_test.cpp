#include <gtest/gtest.h>

#include <sstream>
#include <vector>

#include "command_line.hpp"

namespace tern::ternd {
namespace {

struct Run {
  std::variant<CommandLine, int> result;
  std::string out;
  std::string err;
};

Run parse(std::vector<const char*> args) {
  args.insert(args.begin(), "ternd");
  std::ostringstream out;
  std::ostringstream err;
  auto result = parse_command_line(static_cast<int>(args.size()), args.data(), out, err);
  return {std::move(result), out.str(), err.str()};
}

TEST(CommandLine, NoArgumentsOverrideNothing) {
  auto r = parse({});
  ASSERT_TRUE(std::holds_alternative<CommandLine>(r.result));
  const auto& cl = std::get<CommandLine>(r.result);
  EXPECT_FALSE(cl.overrides.config_file);
  EXPECT_TRUE(cl.overrides.listen.empty());
  EXPECT_FALSE(cl.overrides.data_dir);
  EXPECT_FALSE(cl.overrides.log_level);
  EXPECT_FALSE(cl.check_config);
}

TEST(CommandLine, EveryFlagIsRecorded) {
  auto r = parse({"--config", "/etc/tern/ternd.toml", "--listen", "127.0.0.1:0", "--listen", "[::1]:1884",
                  "--data-dir", "/tmp/d", "--log-level", "debug", "--check-config"});
  ASSERT_TRUE(std::holds_alternative<CommandLine>(r.result)) << r.err;
  const auto& cl = std::get<CommandLine>(r.result);
  EXPECT_EQ(cl.overrides.config_file, "/etc/tern/ternd.toml");
  EXPECT_EQ(cl.overrides.listen, (std::vector<std::string>{"127.0.0.1:0", "[::1]:1884"}));
  EXPECT_EQ(cl.overrides.data_dir, "/tmp/d");
  EXPECT_EQ(cl.overrides.log_level, "debug");
  EXPECT_TRUE(cl.check_config);
}

TEST(CommandLine, DurabilityAndAdminFlags) {
  auto r = parse({"--durability", "batch", "--admin", ""});
  ASSERT_TRUE(std::holds_alternative<CommandLine>(r.result)) << r.err;
  const auto& o = std::get<CommandLine>(r.result).overrides;
  EXPECT_EQ(o.durability, "batch");
  EXPECT_EQ(o.admin, "");
  auto c = resolve_config(o);
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_EQ(c->durability, Durability::batch);
  EXPECT_EQ(c->admin.listen, "");
}

TEST(CommandLine, ThreadsFlagOverridesTheFile) {
  auto r = parse({"--threads", "2"});
  ASSERT_TRUE(std::holds_alternative<CommandLine>(r.result)) << r.err;
  const auto& o = std::get<CommandLine>(r.result).overrides;
  EXPECT_EQ(o.threads, 2);
  auto c = resolve_config(o);
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_EQ(c->threads, 2u);
  Overrides bad;
  bad.threads = 0;
  auto refused = resolve_config(bad);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error(), "--threads must be between 1 and 64 (got 0)");
  EXPECT_FALSE(std::get<CommandLine>(parse({}).result).overrides.threads);
}

TEST(CommandLine, AdminCertificateFlags) {
  auto r = parse({"--admin-cert", "/etc/tern/admin.crt", "--admin-key", "/etc/tern/admin.key"});
  ASSERT_TRUE(std::holds_alternative<CommandLine>(r.result)) << r.err;
  const auto& o = std::get<CommandLine>(r.result).overrides;
  EXPECT_EQ(o.admin_cert, "/etc/tern/admin.crt");
  EXPECT_EQ(o.admin_key, "/etc/tern/admin.key");
  auto c = resolve_config(o);
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_EQ(c->admin.cert_file, "/etc/tern/admin.crt");
  EXPECT_EQ(c->admin.key_file, "/etc/tern/admin.key");
  EXPECT_FALSE(std::get<CommandLine>(parse({}).result).overrides.admin_cert);
}

TEST(CommandLine, FlagsOverrideTheEmbeddedDefaults) {
  auto r = parse({"--listen=127.0.0.1:1884", "--log-level=warning"});
  ASSERT_TRUE(std::holds_alternative<CommandLine>(r.result)) << r.err;
  auto c = resolve_config(std::get<CommandLine>(r.result).overrides);
  ASSERT_TRUE(c.has_value()) << c.error();
  ASSERT_EQ(c->listeners.size(), 1u);
  EXPECT_EQ(c->listeners[0].port, 1884);
  EXPECT_EQ(c->log_level, log::Level::warning);
}

TEST(CommandLine, HelpAndVersionPrintToStdoutAndExitZero) {
  auto help = parse({"--help"});
  ASSERT_TRUE(std::holds_alternative<int>(help.result));
  EXPECT_EQ(std::get<int>(help.result), kExitOk);
  EXPECT_NE(help.out.find("--listen"), std::string::npos);
  EXPECT_NE(help.out.find("--check-config"), std::string::npos);
  auto version = parse({"--version"});
  ASSERT_TRUE(std::holds_alternative<int>(version.result));
  EXPECT_EQ(std::get<int>(version.result), kExitOk);
  EXPECT_EQ(version.out.rfind("ternd ", 0), 0u) << version.out;
}

TEST(CommandLine, UnknownFlagIsAUsageError) {
  auto r = parse({"--bogus"});
  ASSERT_TRUE(std::holds_alternative<int>(r.result));
  EXPECT_EQ(std::get<int>(r.result), kExitConfigError);
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.err.find("bogus"), std::string::npos) << r.err;
}

TEST(CommandLine, MissingValueIsAUsageError) {
  auto r = parse({"--listen"});
  ASSERT_TRUE(std::holds_alternative<int>(r.result));
  EXPECT_EQ(std::get<int>(r.result), kExitConfigError);
}

}  // namespace
}  // namespace tern::ternd
