// Runs one input on its own thread.
//
// Polled inputs: collect(), then wait out the rest of the interval (or until stop).
// Service inputs: start() on the thread; stop() from the control thread.
// Errors from collect()/start() are logged (at most once a minute while they repeat)
// and counted in ferry_input_errors_total{input,reason="collect_failed"|"start_failed"} (the
// inputs add reasons of their own to the same family); the input keeps being scheduled.
//
// Thread-safety: start/stop/join from the control thread.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "ferry/input.h"
#include "ferry/metrics.h"

namespace ferry {

class InputRunner {
 public:
  InputRunner(std::string name, std::unique_ptr<Input> input, Emitter& emitter, MetricsRegistry& metrics,
              const Clock& clock);
  ~InputRunner();
  InputRunner(const InputRunner&) = delete;
  InputRunner& operator=(const InputRunner&) = delete;

  void start();
  // The pipeline's stopInputs() must have been called (emitter.stopping() is true).
  void stop();
  void join();

 private:
  void run();

  const std::string name_;
  std::unique_ptr<Input> input_;
  Emitter& emitter_;
  const Clock& clock_;
  Counter& errors_;
  std::thread thread_;
};

}  // namespace ferry
