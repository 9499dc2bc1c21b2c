// The sender loop of one output: buffer → Output::send → ack.
//
// One thread per output. It reads blocks after its position, skips (and acks) blocks
// whose stream does not match the output's `match` glob, and sends the others one at a
// time, in order. delivered: ack. retry: wait (Backoff; honours retry_after) and send the
// same block again, so order is kept. rejected: count the records as dead letters,
// log, ack, move on. Open failures back off the same way.
//
// Thread-safety: start/stop/join from the control thread; the loop owns the Output.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/config/config.h"
#include "ferry/buffer.h"
#include "ferry/metrics.h"
#include "ferry/output.h"

namespace ferry {

struct SenderOptions {
  std::string name;
  std::string match = "*";
  Duration initial_backoff = std::chrono::seconds(1);
  Duration max_backoff = std::chrono::seconds(60);
  Duration send_timeout = std::chrono::seconds(30);
};

class Sender {
 public:
  Sender(SenderOptions options, std::unique_ptr<Output> output, Buffer& buffer, MetricsRegistry& metrics,
         const Clock& clock);
  ~Sender();
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  void start();
  // Asks the loop to stop. With `drain`, it first sends what the buffer holds for it
  // until nothing is left or `deadline` passes; without, it stops after the current send.
  void stop(bool drain, SteadyTime deadline);
  void join();
  // Waits until `deadline` for the loop to end; false when it is still inside a send that
  // does not return (a blocked pipe, a hung peer). The caller may then abandon it.
  bool joinUntil(SteadyTime deadline);

  const std::string& name() const { return options_.name; }

 private:
  void loop();
  // Sleeps up to `d`; returns false when the loop must end now.
  bool pause(Duration d);
  bool mustStop();

  const SenderOptions options_;
  std::unique_ptr<Output> output_;
  Buffer& buffer_;
  const Clock& clock_;
  Counter& records_out_;
  Counter& bytes_out_;
  Counter& retries_;
  Counter& dead_letters_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool finished_ = false;  // the loop returned
  bool drain_ = false;
  SteadyTime deadline_{};
  std::thread thread_;
};

}  // namespace ferry
