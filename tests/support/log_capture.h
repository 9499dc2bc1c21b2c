// Captures log lines while alive (the process-wide log sink), for tests that check what
// was logged. One capture at a time; not thread-safe against other sinks.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ferry/log.h"

namespace ferry::test {

class LogCapture {
 public:
  LogCapture() {
    current_ = &lines;
    setLogSink([](std::string_view line) { current_->emplace_back(line); });
  }
  ~LogCapture() {
    setLogSink(nullptr);
    current_ = nullptr;
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // Lines that contain `needle`.
  size_t count(std::string_view needle) const {
    size_t n = 0;
    for (const std::string& l : lines) n += l.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }
  std::vector<std::string> lines;

 private:
  static inline std::vector<std::string>* current_ = nullptr;
};

}  // namespace ferry::test
