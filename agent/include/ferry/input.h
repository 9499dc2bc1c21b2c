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

#include <string_view>

#include "ferry/clock.h"
#include "ferry/record.h"
#include "ferry/status.h"

namespace ferry {

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
