// The processor plugin interface: shaping records on the device, between inputs and the
// buffer.
//
// The `processors:` section is one ordered chain. Every batch an input emits passes
// through the processors whose `match` (a glob over stream names, default "*") takes its
// stream, in config order, on the emitting input's thread, before the batch is copied into
// a block. A processor works on whole batches: it reads the records of `in` and appends
// what it keeps or produces to `out` (no per-record allocation; reuse scratch buffers).
//
// Records are single-line JSON objects (see record.h). A processor that drops records on
// purpose (filter, sample, deadband) reports how many through ProcessResult; one that
// refuses records (a parse failure, a throttle's excess) reports them per reason, and the
// core counts them in ferry_dropped_records_total{reason} — nothing disappears uncounted.
//
// Time-driven processors (aggregate windows) return a non-zero tickInterval(); the core
// then calls tick() about that often from its own timer thread, and what tick() appends is
// emitted on the stream given per record batch through `TickSink`.
//
// Thread-safety: the core never calls process() and tick() of one instance at the same
// time (it holds one mutex per processor instance per batch), so a processor keeps its
// state without locks of its own. Instances are built on the control thread by the
// descriptor's factory and destroyed after the inputs have stopped.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferry/clock.h"
#include "ferry/record.h"
#include "ferry/status.h"

namespace ferry {

// What one process() call did with its input, for the core's counters.
struct ProcessResult {
  uint64_t filtered = 0;  // left out on purpose (filter, sample, deadband): counted in
                          // ferry_processor_records_total{processor,result="filtered"}
  // Refused records per reason ("parse_bad_json", "throttled", …): counted in
  // ferry_dropped_records_total{reason}. Reasons are short snake_case constants.
  std::vector<std::pair<std::string_view, uint64_t>> dropped;

  void drop(std::string_view reason, uint64_t n = 1) {
    for (auto& [r, c] : dropped) {
      if (r == reason) {
        c += n;
        return;
      }
    }
    dropped.emplace_back(reason, n);
  }
};

// Where tick() puts records it produces outside of a process() call.
class TickSink {
 public:
  virtual ~TickSink() = default;
  // Emits `batch` on `stream` (it then passes through the processors after this one).
  virtual void emit(std::string_view stream, const RecordBatch& batch) = 0;
};

class Processor {
 public:
  virtual ~Processor() = default;

  // Reads `in` (records of `stream`) and appends the records that go on to `out` (empty on
  // entry). Must not fail as a whole for bad records: refuse them in `result` instead; a
  // non-OK status means a bug or an exhausted resource and drops the batch (counted).
  virtual Status process(std::string_view stream, const RecordBatch& in, RecordBatch& out,
                         ProcessResult& result) = 0;

  // > 0 for processors that produce records on time (aggregate); tick() is called about
  // this often, and once with `final = true` at stop (flush open windows).
  virtual Duration tickInterval() const { return Duration::zero(); }
  virtual void tick(SteadyTime /*now*/, bool /*final*/, TickSink& /*sink*/, ProcessResult& /*result*/) {}
};

}  // namespace ferry
