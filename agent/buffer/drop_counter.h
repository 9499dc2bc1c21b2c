// Counts records dropped by a buffer bound and logs it at most once a minute per reason.
//
// Reasons are fixed labels of ferry_dropped_records_total{reason}: drop_oldest,
// drop_newest, max_age, shutdown (a memory buffer's undelivered records at exit).
// Thread-safety: any thread.
#pragma once

#include <mutex>
#include <string>
#include <string_view>

#include "ferry/clock.h"
#include "ferry/metrics.h"

namespace ferry {

class DropCounter {
 public:
  DropCounter(MetricsRegistry& metrics, const Clock& clock) : metrics_(metrics), clock_(clock) {}

  // Counts `records` dropped for `reason`; `detail` goes into the (rate-limited) log line.
  void drop(std::string_view reason, uint64_t records, std::string_view detail);

 private:
  struct Pending {
    std::string reason;
    uint64_t since_last_log = 0;
    SteadyTime last_log{};
    bool logged = false;
  };
  MetricsRegistry& metrics_;
  const Clock& clock_;
  std::mutex mu_;
  Pending pending_[4];
};

}  // namespace ferry
