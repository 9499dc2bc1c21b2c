// The `processors:` chain of one generation: every batch an input emits passes through the
// processors whose `match` takes its stream, in config order, before the pipeline copies it.
//
// wrap() puts an Emitter in front of an input's pipeline emitter. Each emit (emit,
// emitWithCheckpoint, tryEmit, emitTracked) runs the batch through the chain on the calling
// thread and hands the result on: an empty result still carries its checkpoint, so a tail
// input whose lines were all filtered still moves its offset. The other Emitter calls
// (countDropped, deadLetter, checkpoints, stopping, waitFor, waitCommitted) go straight to
// the inner emitter. With no processors wrap() returns the inner emitter itself.
//
// Per batch and processor: one lock of the processor's mutex, one process() call into one
// of two scratch batches of the calling thread (reused: no per-record allocation), and the
// counters ferry_processor_records_total{processor,result=in|out|filtered} plus
// ferry_dropped_records_total{reason} for what the processor refused. A processor that
// returns an error drops that batch (reason "processor_error", logged at most once a minute).
//
// Processors with tickInterval() > 0 are ticked from one timer thread (start()); what a tick
// produces passes through the processors after it and then into the pipeline through the
// emitter connectTicks() gives for "processor:<name>". finish() stops the timer and ticks each
// of them once more with final = true (after the inputs stopped, before the pipeline flushes).
//
// A batch the pipeline refuses after processing (kResourceExhausted from tryEmit, kCancelled
// at stop) was still counted and seen by the processors; an input that retries it has it
// processed again.
//
// Thread-safety: add/wrap/connectTicks/start/finish from the control thread; the emitters
// from any number of input threads at once (processors are serialised by their mutex, taken
// in chain order, so a tick and an emit never deadlock). Ownership: the chain owns the
// processors and the wrapping emitters; inner emitters must outlive the chain.
#pragma once

#include <condition_variable>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ferry/input.h"
#include "ferry/metrics.h"
#include "ferry/processor.h"

namespace ferry {

class ProcessorChain {
 public:
  ProcessorChain(MetricsRegistry& metrics, const Clock& clock);
  ~ProcessorChain();  // stops the timer (without final ticks) if finish() was not called
  ProcessorChain(const ProcessorChain&) = delete;
  ProcessorChain& operator=(const ProcessorChain&) = delete;

  // Appends a processor; `match` is a glob over stream names (fnmatch).
  void add(std::string name, std::string match, std::unique_ptr<Processor> processor);
  size_t size() const { return stages_.size(); }

  // An emitter that processes every batch, then hands it to `inner`. `stream` is the stream
  // of emits that name none (the input's configured stream).
  Emitter& wrap(Emitter& inner, std::string stream);

  // Where tick output goes: called once per ticking processor with "processor:<name>".
  void connectTicks(const std::function<Emitter&(const std::string& input)>& emitter_for);

  // Starts the timer thread when a processor ticks (connectTicks() must have been called).
  void start();
  // Stops the timer and calls tick(final = true) once on every ticking processor, in order,
  // emitting what they produce. Idempotent.
  void finish();

  // Runs `in` (records of `stream`) through the matching processors from position `from`
  // on. The result is `in` itself when no processor matched, else a scratch batch of the
  // calling thread, valid until its next apply() (so `in` must not be such a result).
  const RecordBatch& apply(std::string_view stream, const RecordBatch& in, size_t from = 0);

 private:
  struct Stage;
  class ChainEmitter;
  class Collector;
  void runTick(size_t index, SteadyTime now, bool final);
  void timerLoop();

  MetricsRegistry& metrics_;
  const Clock& clock_;
  std::vector<std::unique_ptr<Stage>> stages_;
  std::list<std::unique_ptr<ChainEmitter>> emitters_;

  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  bool timer_stop_ = false;
  bool finished_ = false;
  std::thread timer_;
  std::unique_ptr<Collector> collector_;  // the timer's (and finish()'s) tick sink
};

}  // namespace ferry
