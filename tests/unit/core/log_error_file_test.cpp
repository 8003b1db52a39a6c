#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/log.hpp"

namespace tern::log {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::size_t count_lines(const std::string& text) {
  std::size_t n = 0;
  for (const char c : text) n += c == '\n' ? 1 : 0;
  return n;
}

// Each test gets its own directory; stderr goes to /dev/null so the output stays readable.
class ErrorFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tern-error-file-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    saved_stderr_ = ::dup(STDERR_FILENO);
    std::FILE* null = std::fopen("/dev/null", "w");
    ::dup2(::fileno(null), STDERR_FILENO);
    std::fclose(null);
    saved_level_ = level();
    set_level(Level::debug);
  }
  void TearDown() override {
    clear_error_file();
    set_level(saved_level_);
    ::dup2(saved_stderr_, STDERR_FILENO);
    ::close(saved_stderr_);
    fs::remove_all(dir_);
  }

  fs::path dir_;
  int saved_stderr_ = -1;
  Level saved_level_ = Level::info;
};

TEST_F(ErrorFileTest, OnlyErrorLinesAreAppended) {
  const fs::path path = dir_ / "errors.log";
  ASSERT_EQ(set_error_file(path.string(), 1 << 20, 2), "");
  debug("test", "a debug line");
  info("test", "an info line");
  warn("test", "a warning line");
  error("test", "the error line {}", 1);
  const std::string text = read_file(path);
  EXPECT_EQ(count_lines(text), 1u);
  EXPECT_NE(text.find("\"level\":\"error\""), std::string::npos);
  EXPECT_NE(text.find("the error line 1"), std::string::npos);
  EXPECT_EQ(text.find("warning line"), std::string::npos);
}

TEST_F(ErrorFileTest, RotatesWhenOverTheLimitAndKeepsOnlyKeepFiles) {
  const fs::path path = dir_ / "errors.log";
  const std::string payload(150, 'x');
  // Every line is a bit over 220 bytes, so a 1000-byte file holds 4 of them.
  ASSERT_EQ(set_error_file(path.string(), 1000, 2), "");
  const auto before = error_file_stats();
  for (int i = 0; i < 20; ++i) error("test", "line {:02} {}", i, payload);
  const auto after = error_file_stats();

  EXPECT_EQ(after.lines - before.lines, 20u);
  EXPECT_EQ(after.rotations - before.rotations, 4u);
  ASSERT_TRUE(fs::exists(path));
  ASSERT_TRUE(fs::exists(dir_ / "errors.log.1"));
  ASSERT_TRUE(fs::exists(dir_ / "errors.log.2"));
  EXPECT_FALSE(fs::exists(dir_ / "errors.log.3"));
  for (const auto& p : {path, dir_ / "errors.log.1", dir_ / "errors.log.2"}) EXPECT_LE(fs::file_size(p), 1000u) << p;

  // Newest in the file itself, then .1, then .2; older lines are gone.
  const std::string current = read_file(path);
  const std::string first = read_file(dir_ / "errors.log.1");
  const std::string second = read_file(dir_ / "errors.log.2");
  EXPECT_EQ(count_lines(current), 4u);
  EXPECT_NE(current.find("line 19 "), std::string::npos);
  EXPECT_NE(first.find("line 15 "), std::string::npos);
  EXPECT_NE(second.find("line 08 "), std::string::npos);
  EXPECT_EQ(second.find("line 07 "), std::string::npos);
}

TEST_F(ErrorFileTest, KeepZeroTruncatesInPlace) {
  const fs::path path = dir_ / "errors.log";
  ASSERT_EQ(set_error_file(path.string(), 300, 0), "");
  for (int i = 0; i < 5; ++i) error("test", "line {} {}", i, std::string(150, 'y'));
  EXPECT_FALSE(fs::exists(dir_ / "errors.log.1"));
  const std::string text = read_file(path);
  EXPECT_EQ(count_lines(text), 1u);
  EXPECT_NE(text.find("line 4 "), std::string::npos);
}

TEST_F(ErrorFileTest, AppendsToAnExistingFileAndCountsItsSize) {
  const fs::path path = dir_ / "errors.log";
  { std::ofstream(path) << std::string(900, 'z') << '\n'; }
  ASSERT_EQ(set_error_file(path.string(), 1000, 1), "");
  error("test", "after restart {}", std::string(150, 'w'));
  EXPECT_EQ(read_file(path).find("zzz"), std::string::npos);
  EXPECT_NE(read_file(dir_ / "errors.log.1").find("zzz"), std::string::npos);
  EXPECT_NE(read_file(path).find("after restart"), std::string::npos);
}

TEST_F(ErrorFileTest, ABadPathIsReportedAndClearingStopsAppending) {
  EXPECT_NE(set_error_file((dir_ / "missing" / "errors.log").string(), 1000, 1), "");
  EXPECT_NE(set_error_file("", 1000, 1), "");
  const fs::path path = dir_ / "errors.log";
  ASSERT_EQ(set_error_file(path.string(), 1000, 1), "");
  error("test", "kept");
  clear_error_file();
  error("test", "not kept");
  const std::string text = read_file(path);
  EXPECT_NE(text.find("kept"), std::string::npos);
  EXPECT_EQ(text.find("not kept"), std::string::npos);
}

}  // namespace
}  // namespace tern::log
