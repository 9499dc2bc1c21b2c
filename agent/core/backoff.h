// Capped exponential backoff with full jitter, applied after the cap so that a fleet
// recovering from one outage does not retry in step.
// Thread-safety: value type; one owner.
#pragma once

#include <algorithm>
#include <optional>
#include <random>

#include "ferry/clock.h"

namespace ferry {

class Backoff {
 public:
  Backoff(Duration initial, Duration max, uint64_t seed) : initial_(initial), max_(max), rng_(seed) {}

  // The wait before the next attempt: uniform in [0, min(max, initial * 2^failures)],
  // but never shorter than what the peer asked for (retry_after, capped, see below).
  Duration next(std::optional<Duration> retry_after = std::nullopt) {
    Duration cap = initial_;
    for (int i = 0; i < failures_ && cap < max_; ++i) cap *= 2;
    cap = std::min(cap, max_);
    ++failures_;
    std::uniform_int_distribution<int64_t> dist(0, cap.count());
    Duration d(dist(rng_));
    // Honour the peer's Retry-After, but not beyond max(max_backoff, 10 min): a typo on
    // the server must not silence a device for a day.
    if (retry_after) d = std::max(d, std::min(*retry_after, std::max<Duration>(max_, std::chrono::minutes(10))));
    return d;
  }
  void reset() { failures_ = 0; }
  int failures() const { return failures_; }

 private:
  Duration initial_;
  Duration max_;
  int failures_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace ferry
