// The sender of one output: buffer → Output::send → ack, with a bounded window.
//
// A dispatcher thread reads blocks after the output's position and keeps up to `window`
// of them in flight (min(window, Output::maxInFlight()); with 1 it sends on its own
// thread, otherwise `window` worker threads call send() concurrently). Results are
// committed strictly in block order, so the cursor never passes a block that is not
// done: consecutive finished blocks are acked with one Buffer::ack.
//  - delivered: acked.
//  - rejected (the upstream refuses it for good): the block goes to the buffer's
//    dead-letter queue with the reason, in the same write as its ack, and is counted in
//    ferry_dead_letter_records_total; with `forward_dead_letters`, its records are then
//    forwarded (wrapped with the reason, see dead_letter.h) to the configured output.
//  - retry: no new block is started; once the window has settled, the sender waits
//    (capped exponential backoff with full jitter, never shorter than the peer's
//    Retry-After) and resends the oldest failed block alone. When it is delivered the
//    other failed blocks go again and the window opens. So a recovering upstream sees
//    oldest-first replay with at most `window` requests in flight, and retries never end
//    by count: data waits in the buffer until delivered, dead-lettered or aged out.
// Blocks whose stream does not match `match` (or that are routed to another output,
// Lineage::route) are passed by and acked with the others. A block keeps its seq, so a
// batch replayed after a crash or outage carries the same identity upstream.
//
// State, in metrics ferry_output_state{output,state} (1 for the current one):
// ok (delivering or idle), backing_off (a send failed; retrying), down (the output
// cannot be opened, or nothing was delivered for 30 s while retrying).
//
// Thread-safety: start/stop/join from the control thread; the dispatcher owns the
// Output's lifecycle (open/close); workers only call send().
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/config/config.h"
#include "ferry/buffer.h"
#include "ferry/metrics.h"
#include "ferry/output.h"

namespace ferry {

// Hands the records of dead letter `id` (a refused block, wrapped with the reason) to
// another output; its position is committed with them, so each entry is forwarded once
// (kCancelled when the agent is stopping: forwardBacklog picks it up at the next start).
// Called on the dispatcher thread.
using DeadLetterForwarder = std::function<Status(uint64_t id, const Block& refused, std::string_view reason)>;

struct SenderOptions {
  std::string name;
  std::string match = "*";
  Duration initial_backoff = std::chrono::seconds(1);
  Duration max_backoff = std::chrono::seconds(60);
  Duration send_timeout = std::chrono::seconds(30);
  int window = 1;
  // Every output of this generation: a block routed to an output that no longer exists
  // (renamed or removed by a reload) is sent by `match` instead, never passed silently.
  std::vector<std::string> outputs;
  DeadLetterForwarder forward_dead_letters;  // empty: dead letters are only kept in the queue
  // Forwards the queue's entries of this output that were kept but not yet forwarded
  // (a stop or crash came in between). Called once when the sender starts.
  std::function<void()> forward_backlog;
};

class Sender {
 public:
  enum class State { kOk, kBackingOff, kDown };

  Sender(SenderOptions options, std::unique_ptr<Output> output, Buffer& buffer, MetricsRegistry& metrics,
         const Clock& clock);
  ~Sender();
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  void start();
  // Asks the loop to stop. With `drain`, it first sends what the buffer holds for it
  // until nothing is left or `deadline` passes; without, it stops after the sends in
  // flight (each bounded by `deadline`).
  void stop(bool drain, SteadyTime deadline);
  void join();
  // Waits until `deadline` for the loop to end; false when it is still inside a send that
  // does not return (a blocked pipe, a hung peer). The caller may then abandon it.
  bool joinUntil(SteadyTime deadline);

  const std::string& name() const { return options_.name; }
  State state() const;

 private:
  struct Slot;
  void loop();
  void workerLoop();
  // Runs one send for `slot` (any thread) and records the result.
  void runSend(Slot& slot);
  // Sleeps up to `d`; returns false when the loop must end now.
  bool pause(Duration d);
  bool mustStopLocked() const;
  bool mustStop();
  SteadyTime sendDeadline();
  void setState(State s);
  bool openOutput();
  // Commits the finished slots at the head of the window, in order. False: stop now.
  bool commitHead(std::string* state);
  // A rejected block: forward, keep in the dead-letter queue and ack. False: stop now.
  bool deadLetter(const Slot& slot, const std::string& state);
  bool flushAck(uint64_t seq, const std::string& state);

  const SenderOptions options_;
  std::unique_ptr<Output> output_;
  Buffer& buffer_;
  const Clock& clock_;
  Counter& records_out_;
  Counter& bytes_out_;
  Counter& retries_;
  Counter& dead_letters_;
  Gauge* state_gauges_[3];
  Gauge& in_flight_gauge_;
  Histogram& latency_;
  size_t window_ = 1;

  mutable std::mutex mu_;
  std::condition_variable cv_;       // stop requests, finished sends, queued work
  bool stop_ = false;
  bool finished_ = false;  // the loop returned
  bool drain_ = false;
  bool workers_stop_ = false;
  uint64_t completions_ = 0;  // sends finished so far
  SteadyTime deadline_{};
  State state_ = State::kOk;
  std::deque<std::unique_ptr<Slot>> slots_;  // the window, in block order; guarded by mu_
  std::thread thread_;
  std::vector<std::thread> workers_;
};

}  // namespace ferry
