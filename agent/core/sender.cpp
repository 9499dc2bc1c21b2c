#include "agent/core/sender.h"

#include <fnmatch.h>

#include <algorithm>
#include <random>

#include "agent/core/backoff.h"
#include "ferry/log.h"

namespace ferry {

namespace {
constexpr Duration kDownAfter = std::chrono::seconds(30);
std::string ms(Duration d) { return formatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(d)); }
}  // namespace

struct Sender::Slot {
  enum class Phase { kQueued, kSending, kDone, kFailed };
  BlockRef block;
  bool skip = false;  // not for this output: acked with the others
  Phase phase = Phase::kQueued;
  SendResult result;
};

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
                                    "records the upstream refused for good (kept in the dead-letter queue)")),
      in_flight_gauge_(metrics.gauge("ferry_output_in_flight", {{"output", options_.name}},
                                     "batches being sent or waiting to be resent")),
      latency_(metrics.histogram("ferry_output_latency_seconds", {{"output", options_.name}},
                                 {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400},
                                 "age of records when their output acknowledged them (block cut to ack)")) {
  const char* names[] = {"ok", "backing_off", "down"};
  for (int i = 0; i < 3; ++i) {
    state_gauges_[i] = &metrics.gauge("ferry_output_state", {{"output", options_.name}, {"state", names[i]}},
                                      "1 for the output's current state: ok, backing_off or down");
  }
  state_gauges_[0]->set(1);
}

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
    // A draining stop ends at its own deadline: sends still in flight then are interrupted.
    if (stop_ && drain_ && deadline_ < deadline) {
      cv_.wait_until(lock, deadline_, [&] { return finished_; });
      if (!finished_) {
        lock.unlock();
        output_->interrupt();
        cv_.notify_all();
        lock.lock();
      }
    }
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
  if (!drain) output_->interrupt();
}

void Sender::join() {
  if (thread_.joinable()) thread_.join();
}

Sender::State Sender::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

void Sender::setState(State s) {
  {
    std::lock_guard lock(mu_);
    if (state_ == s) return;
    state_ = s;
  }
  for (int i = 0; i < 3; ++i) state_gauges_[i]->set(static_cast<int>(s) == i ? 1 : 0);
}

bool Sender::mustStopLocked() const { return stop_ && (!drain_ || clock_.now() >= deadline_); }

bool Sender::mustStop() {
  std::lock_guard lock(mu_);
  return mustStopLocked();
}

bool Sender::pause(Duration d) {
  std::unique_lock lock(mu_);
  SteadyTime until = clock_.now() + d;
  if (stop_ && drain_) until = std::min(until, deadline_);
  cv_.wait_until(lock, until, [&] { return mustStopLocked(); });
  return !mustStopLocked();
}

SteadyTime Sender::sendDeadline() {
  SteadyTime d = clock_.now() + options_.send_timeout;
  std::lock_guard lock(mu_);
  if (stop_) d = std::min(d, deadline_);
  return d;
}

bool Sender::openOutput() {
  Backoff backoff(options_.initial_backoff, options_.max_backoff, std::random_device{}());
  for (;;) {
    if (mustStop()) return false;
    Status st = output_->open(buffer_.commitState(options_.name));
    if (st.isOk()) return true;
    setState(State::kDown);
    Duration wait = backoff.next();
    logWarn("output", options_.name, ": cannot open: ", st.toString(), "; retrying in ", ms(wait));
    if (!st.retryable() && backoff.failures() == 1) {
      logError("output", options_.name, ": the error is not transient; fix the config and reload");
    }
    if (!pause(wait)) return false;
  }
}

void Sender::runSend(Slot& slot) {
  SendResult r = output_->send(*slot.block, sendDeadline());
  {
    std::lock_guard lock(mu_);
    slot.result = std::move(r);
    slot.phase = Slot::Phase::kDone;
    ++completions_;
  }
  cv_.notify_all();
}

void Sender::workerLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    Slot* next = nullptr;
    cv_.wait(lock, [&] {
      if (workers_stop_) return true;
      for (auto& s : slots_) {
        if (s->phase == Slot::Phase::kQueued) {
          next = s.get();
          return true;
        }
      }
      return false;
    });
    if (workers_stop_) return;
    next->phase = Slot::Phase::kSending;
    lock.unlock();
    runSend(*next);
    lock.lock();
  }
}

bool Sender::flushAck(uint64_t seq, const std::string& state) {
  Status st = buffer_.ack(options_.name, seq, state);
  if (!st.isOk()) logError("output", options_.name, ": ack of block ", seq, " failed: ", st.toString());
  return true;
}

bool Sender::deadLetter(const Slot& slot, const std::string& state) {
  const Block& b = *slot.block;
  const std::string& reason = slot.result.reason;
  // Kept and acked in one write; retried while the storage fails (the block holds the
  // output back meanwhile, nothing after it is acked).
  uint64_t id = 0;
  for (int attempt = 1;; ++attempt) {
    auto kept = buffer_.deadLetter(options_.name, b, reason, state);
    if (kept.isOk()) {
      id = *kept;
      break;
    }
    if (attempt == 1 || attempt % 60 == 0) {
      logError("output", options_.name, ": keeping block ", b.seq, " in the dead-letter queue failed: ",
               kept.status().toString(), "; retrying");
    }
    if (mustStop() || !pause(std::chrono::seconds(1))) return false;
  }
  if (id == 0) {
    logWarn("output", options_.name, ": block ", b.seq, " refused (", reason,
            ") after a buffer bound had already dropped it (counted in ferry_dropped_records_total)");
    return true;
  }
  dead_letters_.add(b.records.size());
  // A forwarded dead letter that is refused again stays in the queue only: no loops.
  const bool forward = options_.forward_dead_letters && b.lineage.route.empty();
  logError("output", options_.name, ": block ", b.seq, " (", b.records.size(), " records of stream ",
           b.lineage.stream, ") refused: ", reason, "; kept in the dead-letter queue",
           forward ? " and forwarded" : "", " (ferry buffer export --dead-letters)");
  if (forward) {
    Status st = options_.forward_dead_letters(id, b, reason);
    if (!st.isOk()) {
      logWarn("output", options_.name, ": forwarding dead letter ", id, ": ", st.toString(),
              "; it stays in the queue and is forwarded at the next start");
    }
  }
  return true;
}

bool Sender::commitHead(std::string* state) {
  uint64_t ack_seq = 0;
  for (;;) {
    Slot* s = nullptr;
    {
      std::lock_guard lock(mu_);
      if (slots_.empty() || slots_.front()->phase != Slot::Phase::kDone ||
          slots_.front()->result.kind == SendResult::Kind::kRetry) {
        break;
      }
      s = slots_.front().get();  // done: no worker touches it any more
    }
    const Block& b = *s->block;
    if (s->skip) {
      ack_seq = b.seq;
    } else if (s->result.kind == SendResult::Kind::kDelivered) {
      if (!s->result.commit_state.empty()) *state = std::move(s->result.commit_state);
      records_out_.add(b.records.size());
      bytes_out_.add(b.records.bytes());
      latency_.observe(static_cast<double>(std::max<int64_t>(0, clock_.wallMs() - b.created_ms)) / 1000.0,
                       b.records.size());
      ack_seq = b.seq;
    } else {
      // Rejected: the acks before it first, then its dead-letter write (which acks it).
      if (ack_seq != 0) flushAck(ack_seq, *state);
      ack_seq = 0;
      if (!deadLetter(*s, *state)) {
        // Not kept (stopping): it stays unacked and holds back everything after it.
        std::lock_guard lock(mu_);
        s->phase = Slot::Phase::kFailed;
        return false;
      }
    }
    std::lock_guard lock(mu_);
    slots_.pop_front();
  }
  if (ack_seq != 0) flushAck(ack_seq, *state);
  return true;
}

void Sender::loop() {
  if (options_.forward_backlog) options_.forward_backlog();
  if (!openOutput()) return;
  setState(State::kOk);
  window_ = static_cast<size_t>(std::max(1, options_.window));
  window_ = std::max<size_t>(1, std::min(window_, output_->maxInFlight()));
  if (window_ > 1) {
    for (size_t i = 0; i < window_; ++i) workers_.emplace_back([this] { workerLoop(); });
  }

  uint64_t read_pos = buffer_.cursor(options_.name);
  std::string state = buffer_.commitState(options_.name);
  if (state.empty()) {
    // First run of this output: store where it starts, so a crash before the first ack
    // is cut back as well.
    state = output_->openedState();
    if (!state.empty()) {
      Status st = buffer_.ack(options_.name, read_pos, state);
      if (!st.isOk()) logError("output", options_.name, ": storing its start state: ", st.toString());
    }
  }

  Backoff backoff(options_.initial_backoff, options_.max_backoff, std::random_device{}());
  std::deque<BlockRef> ahead;
  bool failing = false;  // a send failed: no new block until the oldest failed one is delivered
  bool probing = false;  // the oldest failed block was resent alone
  uint64_t probe_seq = 0;
  std::optional<Duration> retry_after;
  std::string last_reason;
  SteadyTime last_delivery = clock_.now();
  uint64_t seen_completions = 0;
  bool ended = false;

  while (!ended) {
    if (mustStop()) break;

    // 1. Fill the window (not while failing).
    bool window_empty;
    {
      std::lock_guard lock(mu_);
      window_empty = slots_.empty();
    }
    while (!failing) {
      size_t in_window = 0;  // blocks being sent or waiting for their turn (passed-by ones do not count)
      size_t held = 0;
      bool failed_now = false;  // a send just failed: step 4 parks it; start nothing new
      {
        std::lock_guard lock(mu_);
        held = slots_.size();
        for (const auto& sl : slots_) {
          in_window += sl->skip ? 0 : 1;
          failed_now = failed_now || (sl->phase == Slot::Phase::kDone && sl->result.kind == SendResult::Kind::kRetry);
        }
      }
      if (failed_now || in_window >= window_ || held >= 4 * window_ + 64) break;
      if (ahead.empty()) {
        Duration wait = held == 0 ? Duration(std::chrono::milliseconds(200)) : Duration::zero();
        // Read ahead a little: decoded blocks waiting here are memory (up to a block each).
        auto blocks = buffer_.read(options_.name, read_pos, std::max<size_t>(4, 2 * window_), wait);
        if (!blocks.isOk()) {
          if (blocks.status().code() == StatusCode::kCancelled) {
            ended = true;
            break;
          }
          logError("output", options_.name, ": buffer read failed: ", blocks.status().toString());
          if (!pause(std::chrono::seconds(1))) ended = true;
          break;
        }
        if (blocks->empty()) {
          if (held == 0) {
            std::lock_guard lock(mu_);
            if (stop_) ended = true;  // draining and nothing left
          }
          break;
        }
        for (auto& b : *blocks) ahead.push_back(std::move(b));
      }
      auto slot = std::make_unique<Slot>();
      slot->block = std::move(ahead.front());
      ahead.pop_front();
      read_pos = slot->block->seq;
      const Lineage& lin = slot->block->lineage;
      const bool routed = !lin.route.empty() &&
                          (lin.route == options_.name ||
                           std::find(options_.outputs.begin(), options_.outputs.end(), lin.route) != options_.outputs.end());
      slot->skip = routed ? lin.route != options_.name : ::fnmatch(options_.match.c_str(), lin.stream.c_str(), 0) != 0;
      if (slot->skip) slot->phase = Slot::Phase::kDone;
      {
        std::lock_guard lock(mu_);
        slots_.push_back(std::move(slot));
        window_empty = false;
      }
      cv_.notify_all();
    }
    if (ended) break;
    if (window_empty) continue;

    // 2. Progress: send inline (window 1) or wait for the workers.
    if (window_ == 1) {
      Slot* next = nullptr;
      {
        std::lock_guard lock(mu_);
        for (auto& s : slots_) {
          if (s->phase == Slot::Phase::kQueued) {
            next = s.get();
            next->phase = Slot::Phase::kSending;
            break;
          }
        }
      }
      if (next != nullptr) runSend(*next);
    } else {
      std::unique_lock lock(mu_);
      auto progressed = [&] {
        return mustStopLocked() || completions_ != seen_completions ||
               (!slots_.empty() && slots_.front()->phase == Slot::Phase::kDone);
      };
      if (!failing && slots_.size() < window_) {
        cv_.wait_for(lock, std::chrono::milliseconds(20), progressed);
      } else if (stop_ && drain_) {
        cv_.wait_until(lock, deadline_, progressed);
      } else {
        cv_.wait(lock, progressed);
      }
      seen_completions = completions_;
    }

    // 3. Commit what is done at the head, in order.
    if (!commitHead(&state)) break;

    // 4. Failures: park them; once nothing is in flight, back off and probe.
    bool busy = false;
    bool any_failed = false;
    bool probe_pending = false;
    int new_failures = 0;
    {
      std::lock_guard lock(mu_);
      for (auto& s : slots_) {
        if (s->phase == Slot::Phase::kDone && s->result.kind == SendResult::Kind::kRetry) {
          s->phase = Slot::Phase::kFailed;
          ++new_failures;
          last_reason = s->result.reason;
          if (s->result.retry_after) retry_after = std::max(retry_after.value_or(Duration::zero()), *s->result.retry_after);
        }
        busy = busy || s->phase == Slot::Phase::kQueued || s->phase == Slot::Phase::kSending;
        any_failed = any_failed || s->phase == Slot::Phase::kFailed;
        probe_pending = probe_pending || (probing && s->block->seq == probe_seq);
      }
      in_flight_gauge_.set(static_cast<double>(slots_.size()));
    }
    if (new_failures > 0) {
      retries_.add(static_cast<uint64_t>(new_failures));
      failing = true;
    }
    if (!failing) {
      last_delivery = clock_.now();
      continue;
    }
    if (busy) continue;
    if (!any_failed) {
      // Everything that failed went through.
      failing = probing = false;
      backoff.reset();
      retry_after.reset();
      setState(State::kOk);
      last_delivery = clock_.now();
      logInfo("output", options_.name, ": delivering again");
      continue;
    }
    if (probing && !probe_pending) {
      // The probe was delivered: resend the other failed blocks, window open again.
      probing = false;
      backoff.reset();
      retry_after.reset();
      setState(State::kOk);
      last_delivery = clock_.now();
      {
        std::lock_guard lock(mu_);
        for (auto& s : slots_) {
          if (s->phase == Slot::Phase::kFailed) s->phase = Slot::Phase::kQueued;
        }
      }
      cv_.notify_all();
      continue;
    }
    setState(clock_.now() - last_delivery >= kDownAfter ? State::kDown : State::kBackingOff);
    Duration wait = backoff.next(retry_after);
    retry_after.reset();
    logWarn("output", options_.name, ": send failed (", last_reason, "); retry ", backoff.failures(), " in ", ms(wait));
    if (!pause(wait)) break;
    {
      std::lock_guard lock(mu_);
      for (auto& s : slots_) {
        if (s->phase == Slot::Phase::kFailed) {
          s->phase = Slot::Phase::kQueued;
          probing = true;
          probe_seq = s->block->seq;
          break;
        }
      }
    }
    cv_.notify_all();
  }

  // Let the sends in flight finish (each is bounded by the stop deadline), keep what was
  // delivered, then end the workers.
  {
    std::unique_lock lock(mu_);
    for (auto& s : slots_) {
      if (s->phase == Slot::Phase::kQueued) s->phase = Slot::Phase::kFailed;  // not started: not sent
    }
    cv_.wait(lock, [&] {
      return std::none_of(slots_.begin(), slots_.end(),
                          [](const auto& s) { return s->phase == Slot::Phase::kSending; });
    });
  }
  (void)commitHead(&state);
  {
    std::lock_guard lock(mu_);
    workers_stop_ = true;
    slots_.clear();
  }
  cv_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
  in_flight_gauge_.set(0);
  output_->close();
}

}  // namespace ferry
