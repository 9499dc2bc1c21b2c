// Process-wide logger: levels, text or JSON lines, to stderr.
//
// Secrets (values of options marked secret, contents of @file: references) are
// registered with addSecret() and replaced by "***" in every message before it is
// written, so a library error that echoes a password does not leak it.
// Thread-safety: all functions may be called from any thread; lines are never interleaved.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace ferry {

enum class LogLevel { kDebug = 0, kInfo, kWarn, kError };
enum class LogFormat { kText, kJson };

bool parseLogLevel(std::string_view text, LogLevel* out);
void setLogLevel(LogLevel level);
void setLogFormat(LogFormat format);
bool logEnabled(LogLevel level);
void addSecret(std::string_view secret);

// Writes one line: time, level, component, message.
void logLine(LogLevel level, std::string_view component, std::string_view message);

// Redirects log lines to `sink` instead of stderr (tests); nullptr restores stderr.
using LogSink = void (*)(std::string_view line);
void setLogSink(LogSink sink);

// Concatenates any streamable values: strCat("read ", n, " bytes").
template <typename... Args>
std::string strCat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <typename... Args>
void logAt(LogLevel level, std::string_view component, const Args&... args) {
  if (logEnabled(level)) logLine(level, component, strCat(args...));
}
template <typename... Args>
void logDebug(std::string_view c, const Args&... a) { logAt(LogLevel::kDebug, c, a...); }
template <typename... Args>
void logInfo(std::string_view c, const Args&... a) { logAt(LogLevel::kInfo, c, a...); }
template <typename... Args>
void logWarn(std::string_view c, const Args&... a) { logAt(LogLevel::kWarn, c, a...); }
template <typename... Args>
void logError(std::string_view c, const Args&... a) { logAt(LogLevel::kError, c, a...); }

}  // namespace ferry
