#include "ferry/log.h"
#include "ferry/json.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>
#include <vector>

namespace ferry {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};
std::atomic<LogSink> g_sink{nullptr};
std::mutex g_mu;  // guards g_secrets and serialises writes
std::vector<std::string> g_secrets;

std::string_view levelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "?";
}


std::string timestamp() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

}  // namespace

bool parseLogLevel(std::string_view text, LogLevel* out) {
  if (text == "debug") *out = LogLevel::kDebug;
  else if (text == "info") *out = LogLevel::kInfo;
  else if (text == "warn") *out = LogLevel::kWarn;
  else if (text == "error") *out = LogLevel::kError;
  else return false;
  return true;
}

void setLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }
void setLogFormat(LogFormat format) { g_format.store(static_cast<int>(format)); }
bool logEnabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed); }
void setLogSink(LogSink sink) { g_sink.store(sink); }

void addSecret(std::string_view secret) {
  // Very short values would scrub ordinary words; they are not worth hiding by text match.
  if (secret.size() < 4) return;
  std::lock_guard lock(g_mu);
  for (const std::string& s : g_secrets) {
    if (s == secret) return;
  }
  g_secrets.emplace_back(secret);
}

void logLine(LogLevel level, std::string_view component, std::string_view message) {
  std::string msg(message);
  std::lock_guard lock(g_mu);
  for (const std::string& secret : g_secrets) {
    for (size_t pos = msg.find(secret); pos != std::string::npos; pos = msg.find(secret, pos + 3)) {
      msg.replace(pos, secret.size(), "***");
    }
  }
  std::string line;
  line.reserve(msg.size() + 64);
  if (static_cast<LogFormat>(g_format.load()) == LogFormat::kJson) {
    line += "{\"ts\":\"" + timestamp() + "\",\"level\":\"";
    line += levelName(level);
    line += "\",\"component\":";
    appendJsonString(line, component);
    line += ",\"msg\":";
    appendJsonString(line, msg);
    line += "}";
  } else {
    line += timestamp();
    line += ' ';
    line += levelName(level);
    line += ' ';
    line += component;
    line += ": ";
    line += msg;
  }
  if (LogSink sink = g_sink.load()) {
    sink(line);
    return;
  }
  line.push_back('\n');
  // One write per line so lines from several threads (or processes) never interleave.
  ssize_t unused = ::write(STDERR_FILENO, line.data(), line.size());
  (void)unused;
}

}  // namespace ferry
