#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "ferry/log.h"

using namespace ferry;

namespace {
std::vector<std::string> g_lines;
void capture(std::string_view line) { g_lines.emplace_back(line); }

struct LogCapture {
  LogCapture() {
    g_lines.clear();
    setLogSink(capture);
  }
  ~LogCapture() {
    setLogSink(nullptr);
    setLogFormat(LogFormat::kText);
    setLogLevel(LogLevel::kInfo);
  }
};
}  // namespace

TEST_SUITE("common.log") {
  TEST_CASE("levels filter lines") {
    LogCapture cap;
    setLogLevel(LogLevel::kWarn);
    logInfo("test", "hidden");
    logWarn("test", "shown ", 42);
    REQUIRE(g_lines.size() == 1);
    CHECK(g_lines[0].find("warn test: shown 42") != std::string::npos);
  }

  TEST_CASE("JSON lines escape the message") {
    LogCapture cap;
    setLogFormat(LogFormat::kJson);
    logError("buffer", "bad \"quote\"\nnext");
    REQUIRE(g_lines.size() == 1);
    const std::string& l = g_lines[0];
    CHECK(l.front() == '{');
    CHECK(l.back() == '}');
    CHECK(l.find("\"level\":\"error\"") != std::string::npos);
    CHECK(l.find("\"msg\":\"bad \\\"quote\\\"\\nnext\"") != std::string::npos);
  }

  TEST_CASE("registered secrets never reach the log") {
    LogCapture cap;
    addSecret("hunter2-s3cret");
    logError("mqtt", "connect failed for password=hunter2-s3cret (twice: hunter2-s3cret)");
    REQUIRE(g_lines.size() == 1);
    CHECK(g_lines[0].find("hunter2") == std::string::npos);
    CHECK(g_lines[0].find("password=***") != std::string::npos);
  }
}
