// The `deadband` processor: report by exception. Per series (the stream plus the values of
// the `key` fields) a record goes on only when its numeric `field` moved more than the
// threshold away from the value last let through for that series, or when `max_interval`
// has passed since that series last let a record through. The first record of a series
// always goes on. Records held back are counted as filtered.
//
// Records whose field is missing or not a number (a string, a bool, null, an object) go on
// unchanged and do not touch the series' state: the processor only suppresses what it can
// compare. So do records of a new series once `max_keys` series are known (with
// max_interval set, series that have not reported for max_interval are forgotten first to
// make room: their next record would be reported anyway). Both are counted in
// ferry_processor_passed_records_total{processor,reason="not_numeric"|"key_limit"}.
// A record that is not a JSON object is refused (reason "bad_json").
//
// Time comes from the injected clock's steady time (read once per batch).
//
// Threading: the core serialises process() calls of one instance; no internal locking.
// Ownership: the clock and the metrics registry are borrowed and outlive the processor.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/clock.h"
#include "ferry/metrics.h"
#include "ferry/options.h"
#include "ferry/plugin.h"
#include "ferry/processor.h"
#include "plugins/processors/common/dom_fields.h"

namespace ferry {

// The options of one instance after validation and defaulting.
struct DeadbandSettings {
  processors::DomField field;
  processors::SeriesKey key;
  double threshold = 0;          // absolute change; used when !relative
  double threshold_percent = 0;  // change relative to the last value let through
  bool relative = false;
  Duration max_interval = Duration::zero();  // zero: never
  size_t max_keys = 10000;

  // Reads `opts` (validated against the descriptor's table). Errors name the key: a bad
  // field path, neither or both of threshold / threshold_percent, a negative threshold,
  // a negative max_interval, max_keys outside 1..10,000,000.
  static Result<DeadbandSettings> fromOptions(const Options& opts);
};

class DeadbandProcessor final : public Processor {
 public:
  // `instance` labels the metrics. `metrics` may be null (no counters then).
  DeadbandProcessor(DeadbandSettings settings, std::string instance, const Clock& clock,
                    MetricsRegistry* metrics);

  Status process(std::string_view stream, const RecordBatch& in, RecordBatch& out,
                 ProcessResult& result) override;

  size_t keyCount() const { return series_.size(); }

 private:
  struct Series {
    double last = 0;     // value of the last record let through
    SteadyTime last_at;  // when it was let through
  };

  // True when `value` differs enough from `last` to be reported.
  bool moved(double last, double value) const;
  // With the table full: forgets the series whose last report is max_interval old (at most
  // once per max_interval / 10); true when that made room.
  bool forgetExpired(SteadyTime now);

  const DeadbandSettings settings_;
  const Clock& clock_;
  processors::RecordParser parser_;
  processors::StringMap<Series> series_;
  std::string key_;  // scratch: the key of the current record
  SteadyTime next_sweep_{};
  Counter* not_numeric_ = nullptr;
  Counter* key_limit_ = nullptr;
};

const PluginDescriptor& deadbandProcessorDescriptor();

}  // namespace ferry
