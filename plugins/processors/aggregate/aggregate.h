// The `aggregate` processor: tumbling windows per series. Records are consumed (counted as
// filtered) and folded into per-series statistics of the numeric `fields`; when a window
// ends, one record per series that had records in it goes on, on the same stream:
//
//   {"window_start":<unix ms>,"window_end":<unix ms>,<key fields>,
//    "<field>":{"count":..,"min":..,"max":..,"mean":..,"sum":..,"last":..},...}
//
// Windows are aligned to the wall clock (the injected clock's wallMs()): a window of length
// W covers [k*W, (k+1)*W) in unix milliseconds, so 1m windows start on the minute. A record
// belongs to the window in which it is processed (arrival time, not a timestamp inside the
// record); when the wall clock steps back, records go into the window still open.
//
// Window records are emitted only by tick() (every min(window/10, 1s)), through the TickSink,
// once the window's end has passed. A batch of the stream that arrives after the end but
// before the tick closes the window first (its records start the next one) and leaves the
// window's records for that tick. tick(final=true) at stop emits every open window early,
// with its nominal bounds. A series that had no records during a whole window emits nothing
// and is forgotten (its slot is free again).
//
// Records that carry none of `fields` as a number go on unchanged and are counted in
// ferry_processor_passed_records_total{processor,reason="not_numeric"}; a field value that
// is present but not a number (in a record that has another) is skipped and counted in
// ferry_processor_skipped_values_total{processor,reason="not_numeric"}. Records of a new
// series once `max_keys` series are open are refused (reason "aggregate_key_limit"); records
// that are not JSON objects are refused (reason "bad_json").
//
// Threading: the core serialises process() and tick() of one instance; no internal locking.
// Ownership: the clock and the metrics registry are borrowed and outlive the processor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferry/clock.h"
#include "ferry/metrics.h"
#include "ferry/options.h"
#include "ferry/plugin.h"
#include "ferry/processor.h"
#include "plugins/processors/common/dom_fields.h"

namespace ferry {

// The statistics a window record may carry, in the order they are written.
enum class AggregateStat : uint8_t { kCount, kMin, kMax, kMean, kSum, kLast };

// The options of one instance after validation and defaulting.
struct AggregateSettings {
  Duration window = std::chrono::minutes(1);
  processors::SeriesKey key;
  std::vector<processors::DomField> fields;
  std::vector<AggregateStat> stats;  // distinct, in AggregateStat order
  size_t max_keys = 10000;

  // Reads `opts` (validated against the descriptor's table). Errors name the key: a window
  // below 100ms or not whole milliseconds, no fields, a bad or repeated field path, a name
  // used twice among key, fields, window_start and window_end, an empty or repeated stats
  // list, max_keys outside 1..10,000,000.
  static Result<AggregateSettings> fromOptions(const Options& opts);
};

class AggregateProcessor final : public Processor {
 public:
  // `instance` labels the metrics. `metrics` may be null (no counters then).
  AggregateProcessor(AggregateSettings settings, std::string instance, const Clock& clock,
                     MetricsRegistry* metrics);

  Status process(std::string_view stream, const RecordBatch& in, RecordBatch& out,
                 ProcessResult& result) override;
  Duration tickInterval() const override;
  void tick(SteadyTime now, bool final, TickSink& sink, ProcessResult& result) override;

  size_t keyCount() const { return key_count_; }

 private:
  struct Stat {
    uint64_t count = 0;
    double min = 0;
    double max = 0;
    double sum = 0;
    double last = 0;
  };
  struct Series {
    std::vector<Stat> stats;  // one per field
    bool has_data = false;    // got records in the open window
    uint64_t order = 0;       // when it got its first record of the window (output order)
  };
  struct StreamState {
    int64_t window_start = 0;  // unix ms of the open window
    processors::StringMap<Series> series;
    uint64_t next_order = 0;
    RecordBatch pending;  // closed windows' records, emitted by the next tick
  };

  int64_t windowStartOf(int64_t wall_ms) const;
  // Writes one record per series with data into `out`, resets them for the next window and
  // forgets series that had none.
  void flush(StreamState& st, RecordBatch& out);
  void writeRecord(int64_t window_start, std::string_view key, const Series& s, RecordBatch& out);

  const AggregateSettings settings_;
  const int64_t window_ms_;
  const Clock& clock_;
  processors::RecordParser parser_;
  processors::StringMap<StreamState> streams_;
  size_t key_count_ = 0;

  // Scratch, reused for every record / flush.
  std::string key_;
  std::vector<double> values_;
  std::vector<uint8_t> present_;
  std::vector<std::pair<uint64_t, const std::pair<const std::string, Series>*>> flush_order_;
  std::vector<std::string> field_prefixes_;  // ,"<field>":{ per field

  Counter* not_numeric_records_ = nullptr;
  Counter* not_numeric_values_ = nullptr;
};

const PluginDescriptor& aggregateProcessorDescriptor();

}  // namespace ferry
