#include <gtest/gtest.h>
#include <unistd.h>

#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "core/log.hpp"

namespace {

// Points stderr at a pipe for the lifetime of the object; a reader thread drains it so
// large outputs never block the writers.
class StderrCapture {
 public:
  StderrCapture() {
    EXPECT_EQ(::pipe(fds_), 0);
    saved_ = ::dup(STDERR_FILENO);
    ::dup2(fds_[1], STDERR_FILENO);
    ::close(fds_[1]);
    reader_ = std::thread([this] {
      char buffer[4096];
      for (;;) {
        const ssize_t n = ::read(fds_[0], buffer, sizeof buffer);
        if (n <= 0) break;
        text_.append(buffer, static_cast<std::size_t>(n));
      }
    });
  }
  ~StderrCapture() { finish(); }

  // Restores stderr and returns everything written while it was captured.
  std::string finish() {
    if (saved_ >= 0) {
      ::dup2(saved_, STDERR_FILENO);  // drops the last write end, so the reader sees EOF
      ::close(saved_);
      saved_ = -1;
      reader_.join();
      ::close(fds_[0]);
    }
    return text_;
  }

 private:
  int fds_[2] = {-1, -1};
  int saved_ = -1;
  std::thread reader_;
  std::string text_;
};

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override { tern::log::set_level(tern::log::Level::info); }
};

const std::regex kLinePrefix(
    R"re(^\{"time":"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z","level":"([a-z]+)","component":"([^"]*)","msg":)re");

TEST_F(LogTest, WritesOneJsonObjectLine) {
  StderrCapture capture;
  tern::log::info("broker", "client {} connected", 42);
  const std::string out = capture.finish();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, kLinePrefix)) << out;
  EXPECT_EQ(m[1], "info");
  EXPECT_EQ(m[2], "broker");
  EXPECT_EQ(m.suffix().str(), "\"client 42 connected\"}\n");
}

TEST_F(LogTest, EscapesQuotesBackslashesAndControlCharacters) {
  StderrCapture capture;
  tern::log::warn("net", "say \"hi\"\nthen\\leave\t\r\b\f\x01\x1f\x7f end");
  const std::string out = capture.finish();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, kLinePrefix)) << out;
  EXPECT_EQ(m[1], "warning");
  EXPECT_EQ(m.suffix().str(), R"("say \"hi\"\nthen\\leave\t\r\b\f\u0001\u001f\u007f end"})" "\n");
}

TEST_F(LogTest, EscapesTheComponentToo) {
  StderrCapture capture;
  tern::log::write(tern::log::Level::error, "we\"ird", "x");
  const std::string out = capture.finish();
  EXPECT_NE(out.find(R"("level":"error","component":"we\"ird","msg":"x"})"), std::string::npos) << out;
}

TEST_F(LogTest, KeepsValidUtf8AndReplacesInvalidBytes) {
  StderrCapture capture;
  tern::log::write(tern::log::Level::info, "c",
                   std::string("caf\xC3\xA9 \xF0\x9F\x98\x80 bad:\xFF\xC3(\xED\xA0\x80 nul:") + '\0' + "!");
  const std::string out = capture.finish();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, kLinePrefix)) << out;
  EXPECT_EQ(m.suffix().str(),
            "\"caf\xC3\xA9 \xF0\x9F\x98\x80 bad:\\ufffd\\ufffd(\\ufffd\\ufffd\\ufffd nul:\\u0000!\"}\n");
}

TEST_F(LogTest, DropsLinesBelowTheLevel) {
  tern::log::set_level(tern::log::Level::warning);
  EXPECT_EQ(tern::log::level(), tern::log::Level::warning);
  StderrCapture capture;
  tern::log::debug("c", "debug");
  tern::log::info("c", "info");
  tern::log::warn("c", "warn");
  tern::log::error("c", "error");
  tern::log::write(tern::log::Level::info, "c", "direct info");
  const std::string out = capture.finish();
  EXPECT_EQ(out.find("\"msg\":\"debug\""), std::string::npos);
  EXPECT_EQ(out.find("\"msg\":\"info\""), std::string::npos);
  EXPECT_EQ(out.find("direct info"), std::string::npos);
  EXPECT_NE(out.find("\"msg\":\"warn\""), std::string::npos);
  EXPECT_NE(out.find("\"msg\":\"error\""), std::string::npos);
}

TEST_F(LogTest, LevelOffSilencesEverything) {
  tern::log::set_level(tern::log::Level::off);
  StderrCapture capture;
  tern::log::error("c", "error");
  tern::log::write(tern::log::Level::off, "c", "off");
  EXPECT_EQ(capture.finish(), "");
}

TEST_F(LogTest, DefaultLevelIsInfo) { EXPECT_EQ(tern::log::level(), tern::log::Level::info); }

TEST_F(LogTest, ParsesLevelNames) {
  using tern::log::Level;
  Level level = Level::off;
  EXPECT_TRUE(tern::log::parse_level("debug", level));
  EXPECT_EQ(level, Level::debug);
  EXPECT_TRUE(tern::log::parse_level("info", level));
  EXPECT_EQ(level, Level::info);
  EXPECT_TRUE(tern::log::parse_level("warning", level));
  EXPECT_EQ(level, Level::warning);
  EXPECT_TRUE(tern::log::parse_level("warn", level));
  EXPECT_EQ(level, Level::warning);
  EXPECT_TRUE(tern::log::parse_level("error", level));
  EXPECT_EQ(level, Level::error);
  EXPECT_TRUE(tern::log::parse_level("off", level));
  EXPECT_EQ(level, Level::off);
  level = Level::info;
  EXPECT_FALSE(tern::log::parse_level("INFO", level));
  EXPECT_FALSE(tern::log::parse_level("", level));
  EXPECT_FALSE(tern::log::parse_level("verbose", level));
  EXPECT_EQ(level, Level::info);
}

TEST_F(LogTest, LinesFromConcurrentThreadsStayWhole) {
  constexpr int kThreads = 4;
  constexpr int kLines = 300;
  StderrCapture capture;
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([t] {
        const std::string filler(1500, static_cast<char>('a' + t));
        for (int i = 0; i < kLines; ++i) tern::log::info("t", "{}:{}:{}", t, i, filler);
      });
    }
    for (auto& thread : threads) thread.join();
  }
  const std::string out = capture.finish();
  std::vector<int> next(kThreads, 0);
  std::size_t pos = 0;
  int lines = 0;
  const std::regex line_re(R"re(\{"time":"[^"]+","level":"info","component":"t","msg":"(\d):(\d+):([a-d]+)"\})re");
  while (pos < out.size()) {
    const std::size_t end = out.find('\n', pos);
    ASSERT_NE(end, std::string::npos);
    const std::string line = out.substr(pos, end - pos);
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, line_re)) << line.substr(0, 200);
    const int t = std::stoi(m[1]);
    EXPECT_EQ(std::stoi(m[2]), next[static_cast<std::size_t>(t)]++);  // each thread's lines in order
    EXPECT_EQ(m[3].str(), std::string(1500, static_cast<char>('a' + t)));
    ++lines;
    pos = end + 1;
  }
  EXPECT_EQ(lines, kThreads * kLines);
}

}  // namespace
