#include <gtest/gtest.h>

#include "policy/crypto.hpp"
#include "policy/password_file.hpp"
#include "policy/signing_keys.hpp"
#include "policy/text.hpp"

namespace tern::policy {
namespace {

TEST(PasswordFile, RoundTripsAndVerifies) {
  PasswordFile file;
  file.set(make_password_entry("alice", "s3cret", kMinIterations));
  file.set(make_password_entry("bob", "hunter2", kMinIterations));
  const std::string text = file.to_text();
  EXPECT_EQ(text.find("s3cret"), std::string::npos);
  EXPECT_NE(text.find("alice:$pbkdf2-sha512$1000$"), std::string::npos);
  auto parsed = PasswordFile::parse(text, "passwd");
  ASSERT_TRUE(parsed) << parsed.error();
  ASSERT_NE(parsed->find("alice"), nullptr);
  EXPECT_TRUE(verify_password(*parsed->find("alice"), "s3cret"));
  EXPECT_FALSE(verify_password(*parsed->find("alice"), "s3cret "));
  EXPECT_FALSE(verify_password(*parsed->find("alice"), "hunter2"));
  EXPECT_EQ(parsed->find("carol"), nullptr);
}

TEST(PasswordFile, SaltsDiffer) {
  const auto a = make_password_entry("a", "same", kMinIterations);
  const auto b = make_password_entry("a", "same", kMinIterations);
  EXPECT_NE(a.salt, b.salt);
  EXPECT_NE(a.hash, b.hash);
  EXPECT_EQ(a.salt.size(), kSaltBytes);
}

TEST(PasswordFile, Pbkdf2MatchesAKnownVector) {
  // The first 16 bytes of PBKDF2-HMAC-SHA512("password", "salt", 1), the input of
  // RFC 6070's first vector, as other implementations (Python's hashlib) compute it.
  EXPECT_EQ(text::hex_encode(pbkdf2_sha512("password", "salt", 1)).substr(0, 32), "867f70cf1ade02cff3752599a3a53dc4");
}

TEST(PasswordFile, RejectsMalformedLinesWithTheLineNumber) {
  const std::string good = format_password_entry(make_password_entry("u", "p", kMinIterations));
  EXPECT_TRUE(PasswordFile::parse("# comment\n\n" + good + "\n", "pw"));
  EXPECT_EQ(PasswordFile::parse("\nnocolon\n", "pw").error().substr(0, 5), "pw:2:");
  EXPECT_FALSE(PasswordFile::parse("u:$md5$1000$AAAAAAAAAAA=$AAAA\n", "pw"));
  EXPECT_FALSE(PasswordFile::parse("u:$pbkdf2-sha512$10$AAAAAAAAAAA=$AAAA\n", "pw"));
  EXPECT_FALSE(PasswordFile::parse("u:$pbkdf2-sha512$1000$!!$AAAA\n", "pw"));
  EXPECT_FALSE(PasswordFile::parse(good + "\n" + good + "\n", "pw"));  // twice
  EXPECT_FALSE(PasswordFile::parse("a b:$pbkdf2-sha512$1000$AAAAAAAAAAA=$AAAA\n", "pw"));
}

TEST(Base64, EncodesAndDecodes) {
  EXPECT_EQ(text::base64_encode("f"), "Zg==");
  EXPECT_EQ(text::base64_encode("fo"), "Zm8=");
  EXPECT_EQ(text::base64_encode("foo"), "Zm9v");
  EXPECT_EQ(text::base64_decode("Zm8="), "fo");
  EXPECT_FALSE(text::base64_decode("Zm8"));
  EXPECT_FALSE(text::base64_decode("Z=8="));
  EXPECT_FALSE(text::base64_decode("=AAA"));
}

TEST(SigningKeys, ParsesHexKeysAndRejectsShortOnes) {
  auto keys = SigningKeys::parse("# keys\nsensor-1:000102030405060708090a0b0c0d0e0f\n", "keys");
  ASSERT_TRUE(keys) << keys.error();
  ASSERT_NE(keys->find("sensor-1"), nullptr);
  EXPECT_EQ(keys->find("sensor-1")->size(), 16u);
  EXPECT_EQ(keys->find("sensor-2"), nullptr);
  const auto short_key = SigningKeys::parse("a:0011\n", "keys");
  ASSERT_FALSE(short_key);
  EXPECT_EQ(short_key.error(), "keys:1: the key must be at least 16 bytes in hexadecimal");
  EXPECT_FALSE(SigningKeys::parse("a:zz02030405060708090a0b0c0d0e0f00\n", "keys"));
}

TEST(Signature, IsHmacSha256OverTopicPayloadAndId) {
  // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
  EXPECT_EQ(text::hex_encode(hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  const std::string data = std::string("t/1") + '\0' + "{}" + '\0' + "id-1";
  EXPECT_EQ(event_signature("k", "t/1", "{}", "id-1"), text::hex_encode(hmac_sha256("k", data)));
  EXPECT_NE(event_signature("k", "t/1", "{}", "id-1"), event_signature("k", "t/1", "{} ", "id-1"));
}

TEST(Glob, Star) {
  EXPECT_TRUE(text::glob_matches("sensor-*", "sensor-"));
  EXPECT_TRUE(text::glob_matches("*-x-*", "a-x-b"));
  EXPECT_FALSE(text::glob_matches("sensor-*", "sensors"));
  EXPECT_TRUE(text::glob_matches("exact", "exact"));
}

}  // namespace
}  // namespace tern::policy
