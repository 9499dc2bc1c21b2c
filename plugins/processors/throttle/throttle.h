// The `throttle` processor: at most `rate` records per second per stream, with bursts of up
// to `burst` records. Each stream has a token bucket that holds `burst` tokens when full and
// refills at `rate` tokens a second; a record takes one token, and a record that finds the
// bucket empty is refused with reason "throttled" (ferry_dropped_records_total). Records of
// a batch go on in order: the first ones that find tokens pass, the rest are refused.
//
// Records are not parsed, so throttle costs the same for any record. Time comes from the
// injected clock's steady time (read once per batch). Streams beyond `max_streams` share one
// overflow bucket (so they are still limited, together), counted in
// ferry_processor_overflow_records_total{processor}.
//
// Threading: the core serialises process() calls of one instance; no internal locking.
// Ownership: the clock and the metrics registry are borrowed and outlive the processor.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "ferry/clock.h"
#include "ferry/metrics.h"
#include "ferry/options.h"
#include "ferry/plugin.h"
#include "ferry/processor.h"
#include "plugins/processors/common/dom_fields.h"

namespace ferry {

// The options of one instance after validation and defaulting.
struct ThrottleSettings {
  double rate = 1;   // tokens per second
  double burst = 1;  // bucket size
  size_t max_streams = 1000;

  // Reads `opts` (validated against the descriptor's table). Errors name the key: rate not
  // above 0 or above 1e9, burst below 1 or above 1e9, max_streams outside 1..1,000,000.
  static Result<ThrottleSettings> fromOptions(const Options& opts);
};

class ThrottleProcessor final : public Processor {
 public:
  // `instance` labels the metrics. `metrics` may be null (no counters then).
  ThrottleProcessor(ThrottleSettings settings, std::string instance, const Clock& clock,
                    MetricsRegistry* metrics);

  Status process(std::string_view stream, const RecordBatch& in, RecordBatch& out,
                 ProcessResult& result) override;

  size_t streamCount() const { return buckets_.size(); }

 private:
  struct Bucket {
    double tokens = 0;
    SteadyTime at;  // when `tokens` was last brought up to date
  };
  Bucket& bucketFor(std::string_view stream, SteadyTime now, bool* overflow);

  const ThrottleSettings settings_;
  const Clock& clock_;
  processors::StringMap<Bucket> buckets_;
  Bucket overflow_;
  bool overflow_started_ = false;
  Counter* overflow_records_ = nullptr;
};

const PluginDescriptor& throttleProcessorDescriptor();

}  // namespace ferry
