// Time source, injectable so that tests control time (max_age, backoff, batching).
//
// Thread-safety: implementations must be safe to call from any thread.
#pragma once

#include <chrono>
#include <cstdint>

namespace ferry {

using Duration = std::chrono::nanoseconds;
using SteadyTime = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime now() const = 0;  // monotonic, for timeouts and intervals
  virtual int64_t wallMs() const = 0;  // unix epoch milliseconds, for record timestamps
};

// The real clocks (steady_clock and system_clock). A process-wide instance.
const Clock& systemClock();

}  // namespace ferry
