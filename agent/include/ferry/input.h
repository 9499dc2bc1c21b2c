// The input plugin interface.
//
// An input reads from a source and pushes spans of records into the Emitter the core
// gives it. Two shapes:
//  - polled (sysmetrics, exec, modbus): interval() > 0; the core calls collect() every
//    interval on the input's own thread.
//  - service (mqtt, http listener): interval() == 0; the core calls start() once on the
//    input's thread and stop() from the control thread at shutdown.
// Inputs never buffer or retry on their own beyond holding the batch they could not hand
// over: the core owns buffering.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "ferry/clock.h"
#include "ferry/record.h"
#include "ferry/status.h"

#include <utility>
#include <vector>

namespace ferry {

// A source position (e.g. a file offset) an input wants committed in the same atomic
// buffer write as the records it emits with it. `key` is the input's own name for the
// source (e.g. "file/<dev>:<inode>"); the core scopes it by the input's name.
struct SourceCheckpoint {
  std::string key;
  std::string value;
};

// Reads the checkpoints committed earlier (by this input, in a previous run).
// Thread-safety: any thread.
class CheckpointReader {
 public:
  virtual ~CheckpointReader() = default;
  virtual std::optional<std::string> get(std::string_view key) const = 0;
  // Every committed checkpoint whose key starts with `prefix`, as (key, value) pairs.
  virtual std::vector<std::pair<std::string, std::string>> list(std::string_view prefix) const = 0;
};

class Emitter {
 public:
  virtual ~Emitter() = default;

  // Hands `batch` to the core. Called from the input's own thread only.
  // Blocks while the core is full and the buffer policy is `block`, at most until stop.
  //  OK                  the records were copied; the caller may clear and reuse `batch`.
  //  kResourceExhausted  nothing was accepted (buffer full); keep the records, pass the
  //                      pressure to the source, try again later.
  //  kCancelled          the agent is stopping; nothing was accepted.
  // `stream` overrides the input's configured stream for this batch.
  virtual Status emit(const RecordBatch& batch, std::string_view stream = {}) = 0;

  // Like emit(), and commits `checkpoint` in the same buffer write as these records: after
  // a crash either both are there or neither. A batch emitted with a checkpoint is never
  // split across blocks, so keep such batches at most about one block (buffer.block).
  // The call returns when the records are accepted (not yet written to disk); nothing
  // needs to wait for the commit: on restart, checkpoints() shows what was committed.
  virtual Status emitWithCheckpoint(const RecordBatch& batch, const SourceCheckpoint& checkpoint,
                                    std::string_view stream = {}) = 0;

  // Like emit(), but waits at most `wait` for room when the core is full; then returns
  // kResourceExhausted and accepts nothing. For inputs that can push back on their source
  // instead of blocking it (the http input answers 503 + Retry-After).
  virtual Status tryEmit(const RecordBatch& batch, Duration wait, std::string_view stream = {}) = 0;

  // Waits up to `wait` until the core would take `bytes` more records' bytes without waiting
  // (as tryEmit() would). OK, kResourceExhausted (no room in time) or kCancelled (stopping).
  // It reserves nothing: an emit right after can still wait or be refused. For decorators
  // that must not change state for records they may then not hand over (the processor chain
  // checks before stateful processors see a batch that tryEmit would refuse).
  virtual Status waitForRoom(uint64_t bytes, Duration wait) = 0;

  // Commit tracking, for sources that may be acknowledged only once their records are
  // durable (mqtt QoS 1: PUBACK after commit). emitTracked() is emit() that cuts the block
  // at once (no max_wait) and returns a ticket; waitCommitted(ticket, d) waits up to `d`
  // until every block holding records emitted up to that ticket is written to the buffer
  // (fsynced with durability: fsync). Returns OK when committed, kDeadlineExceeded when
  // not yet, kCancelled when the agent stops first, kIoError when the records could not
  // be stored (dropped and counted by the core, or carried to the next configuration at a
  // reload): then do not acknowledge the source.
  // `wait` bounds the wait for room as in tryEmit() (kResourceExhausted, nothing accepted);
  // by default it waits like emit().
  virtual Result<uint64_t> emitTracked(const RecordBatch& batch, std::string_view stream = {},
                                       Duration wait = Duration::max()) = 0;
  virtual Status waitCommitted(uint64_t ticket, Duration d) = 0;

  // Keeps records this input cannot deliver as records (a line over max_line_bytes with
  // `on_long_line: dead_letter`) in the buffer's dead-letter queue, with `reason`, under
  // the name "input:<input name>" (`ferry buffer export --dead-letters` shows them);
  // counted in ferry_dead_letter_records_total{output="input:<name>"}. Each record of
  // `batch` is kept as given (it need not be JSON). Returns when stored.
  virtual Status deadLetter(const RecordBatch& batch, std::string_view reason) = 0;

  // Counts `n` records of this input's source that were dropped for `reason` (malformed
  // input: "bad_json", "invalid_utf8", …) in ferry_dropped_records_total{reason} and
  // ferry_input_dropped_records_total{input,reason}.
  virtual void countDropped(std::string_view reason, uint64_t n = 1) = 0;

  // Checkpoints committed so far (this run's and earlier runs'), scoped to this input.
  virtual const CheckpointReader& checkpoints() const = 0;

  // True once the agent asked inputs to stop. Long loops in inputs check it.
  virtual bool stopping() const = 0;

  // Waits up to `d` or until stop is requested; returns stopping().
  virtual bool waitFor(Duration d) = 0;
};

class Input {
 public:
  virtual ~Input() = default;

  // > 0 for polled inputs. Called once, before the first collect().
  virtual Duration interval() const { return Duration::zero(); }

  // Polled inputs: collect once and emit. Called on the input's thread; may block up to
  // about one interval. A non-OK status is logged and counted; the core keeps calling.
  virtual Status collect(Emitter& /*emitter*/) { return Status::ok(); }

  // Service inputs: start serving; may return at once (serving on threads of its own,
  // which only call `emitter`) or run until stop(). A non-OK status stops this input only.
  virtual Status start(Emitter& /*emitter*/) { return Status::ok(); }

  // Service inputs: stop serving; called from another thread; must return within 1 s.
  virtual void stop() {}
};

}  // namespace ferry
