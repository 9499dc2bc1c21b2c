#include "agent/core/sender.h"

#include <fnmatch.h>

#include <random>

#include "agent/core/backoff.h"
#include "ferry/log.h"

namespace ferry {

Sender::Sender(SenderOptions options, std::unique_ptr<Output> output, Buffer& buffer, MetricsRegistry& metrics,
               const Clock& clock)
    : options_(std::move(options)),
      output_(std::move(output)),
      buffer_(buffer),
      clock_(clock),
      records_out_(metrics.counter("ferry_output_records_total", {{"output", options_.name}},
                                   "records delivered by each output")),
      bytes_out_(metrics.counter("ferry_output_bytes_total", {{"output", options_.name}},
                                 "record bytes delivered by each output")),
      retries_(metrics.counter("ferry_retries_total", {{"output", options_.name}},
                               "failed sends that will be retried")),
      dead_letters_(metrics.counter("ferry_dead_letter_records_total", {{"output", options_.name}},
                                    "records the upstream rejected")) {}

Sender::~Sender() {
  if (thread_.joinable()) {
    stop(false, clock_.now());
    join();
  }
}

void Sender::start() {
  thread_ = std::thread([this] {
    loop();
    std::lock_guard lock(mu_);
    finished_ = true;
    cv_.notify_all();
  });
}

bool Sender::joinUntil(SteadyTime deadline) {
  if (!thread_.joinable()) return true;
  {
    std::unique_lock lock(mu_);
    // Real time: the deadline comes from the agent's clock, which is the steady clock.
    while (!finished_) {
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && !finished_) return false;
    }
  }
  thread_.join();
  return true;
}

void Sender::stop(bool drain, SteadyTime deadline) {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    drain_ = drain;
    deadline_ = deadline;
  }
  cv_.notify_all();
}

void Sender::join() {
  if (thread_.joinable()) thread_.join();
}

bool Sender::mustStop() {
  std::lock_guard lock(mu_);
  return stop_ && (!drain_ || clock_.now() >= deadline_);
}

bool Sender::pause(Duration d) {
  std::unique_lock lock(mu_);
  SteadyTime until = clock_.now() + d;
  if (stop_ && drain_) until = std::min(until, deadline_);
  cv_.wait_until(lock, until, [&] { return stop_ && (!drain_ || clock_.now() >= deadline_); });
  return !(stop_ && (!drain_ || clock_.now() >= deadline_));
}

void Sender::loop() {
  Backoff backoff(options_.initial_backoff, options_.max_backoff, std::random_device{}());
  // Open, backing off while the output cannot open.
  for (;;) {
    if (mustStop()) return;
    Status st = output_->open(buffer_.commitState(options_.name));
    if (st.isOk()) break;
    Duration wait = backoff.next();
    logWarn("output", options_.name, ": cannot open: ", st.toString(), "; retrying in ",
            formatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(wait)));
    if (!st.retryable() && backoff.failures() == 1) {
      logError("output", options_.name, ": the error is not transient; fix the config and reload");
    }
    if (!pause(wait)) return;
  }
  backoff.reset();

  uint64_t pos = buffer_.cursor(options_.name);
  std::string state = buffer_.commitState(options_.name);
  if (state.empty()) {
    // First run of this output: store where it starts, so a crash before the first ack
    // is cut back as well.
    state = output_->openedState();
    if (!state.empty()) {
      Status st = buffer_.ack(options_.name, pos, state);
      if (!st.isOk()) logError("output", options_.name, ": storing its start state: ", st.toString());
    }
  }
  bool ended = false;
  while (!ended) {
    if (mustStop()) break;
    auto blocks = buffer_.read(options_.name, pos, 16, std::chrono::milliseconds(200));
    if (!blocks.isOk()) {
      if (blocks.status().code() != StatusCode::kCancelled) {
        logError("output", options_.name, ": buffer read failed: ", blocks.status().toString());
        if (!pause(std::chrono::seconds(1))) break;
        continue;
      }
      break;
    }
    if (blocks->empty()) {
      std::lock_guard lock(mu_);
      if (stop_) break;  // draining and nothing left
      continue;
    }
    for (const BlockRef& block : *blocks) {
      if (::fnmatch(options_.match.c_str(), block->lineage.stream.c_str(), 0) != 0) {
        pos = block->seq;
        continue;
      }
      for (;;) {
        SteadyTime send_deadline = clock_.now() + options_.send_timeout;
        {
          std::lock_guard lock(mu_);
          if (stop_) send_deadline = std::min(send_deadline, deadline_);
        }
        SendResult r = output_->send(*block, send_deadline);
        if (r.kind == SendResult::Kind::kDelivered) {
          state = std::move(r.commit_state);
          records_out_.add(block->records.size());
          bytes_out_.add(block->records.bytes());
          backoff.reset();
          break;
        }
        if (r.kind == SendResult::Kind::kRejected) {
          dead_letters_.add(block->records.size());
          logError("output", options_.name, ": block ", block->seq, " (", block->records.size(),
                   " records of stream ", block->lineage.stream, ") rejected: ", r.reason,
                   "; counted in ferry_dead_letter_records_total");
          break;
        }
        retries_.add();
        Duration wait = backoff.next(r.retry_after);
        logWarn("output", options_.name, ": send failed (", r.reason, "); retry ", backoff.failures(), " in ",
                formatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(wait)));
        if (!pause(wait)) {
          ended = true;
          break;
        }
      }
      if (ended) break;
      pos = block->seq;
      Status st = buffer_.ack(options_.name, pos, state);
      if (!st.isOk()) logError("output", options_.name, ": ack failed: ", st.toString());
    }
    // Acks for skipped blocks at the end of a run of them.
    if (!ended && pos > buffer_.cursor(options_.name)) {
      Status st = buffer_.ack(options_.name, pos, {});
      if (!st.isOk()) logError("output", options_.name, ": ack failed: ", st.toString());
    }
  }
  output_->close();
}

}  // namespace ferry
