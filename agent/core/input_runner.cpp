#include "agent/core/input_runner.h"

#include "ferry/log.h"

namespace ferry {

InputRunner::InputRunner(std::string name, std::unique_ptr<Input> input, Emitter& emitter,
                         MetricsRegistry& metrics, const Clock& clock)
    : name_(std::move(name)),
      input_(std::move(input)),
      emitter_(emitter),
      clock_(clock),
      errors_(metrics.counter("ferry_input_errors_total",
                              {{"input", name_}, {"reason", input_->interval() == Duration::zero() ? "start_failed"
                                                                                                   : "collect_failed"}},
                              "failures of inputs, by reason (the core's collect_failed / start_failed, and "
                              "each input's own)")) {}

InputRunner::~InputRunner() { join(); }

void InputRunner::start() { thread_ = std::thread([this] { run(); }); }

void InputRunner::stop() {
  if (input_->interval() == Duration::zero()) input_->stop();
}

void InputRunner::join() {
  if (thread_.joinable()) thread_.join();
}

void InputRunner::run() {
  const Duration interval = input_->interval();
  if (interval == Duration::zero()) {
    Status st = input_->start(emitter_);
    if (!st.isOk() && st.code() != StatusCode::kCancelled) {
      errors_.add();
      logError("input", name_, ": stopped: ", st.toString());
    }
    return;
  }
  SteadyTime last_log{};
  bool logged = false;
  SteadyTime next = clock_.now();
  while (!emitter_.stopping()) {
    Status st = input_->collect(emitter_);
    // Back-pressure (buffer full, when_full: block) is not a failure of the input: it
    // keeps its position and collects again next time.
    if (!st.isOk() && st.code() != StatusCode::kCancelled && st.code() != StatusCode::kResourceExhausted) {
      errors_.add();
      SteadyTime now = clock_.now();
      if (!logged || now - last_log >= std::chrono::minutes(1)) {
        logWarn("input", name_, ": collect failed: ", st.toString());
        last_log = now;
        logged = true;
      }
    }
    // Fixed-rate schedule; after a long stall, start again from now rather than bursting.
    next += interval;
    SteadyTime now = clock_.now();
    if (next < now) next = now;
    if (emitter_.waitFor(next - now)) break;
  }
}

}  // namespace ferry
