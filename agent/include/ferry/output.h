// The output plugin interface.
//
// Exactly one sender loop (agent/core/sender.h) owns an output and calls it from one
// thread. The loop reads blocks from the buffer, calls send(), and acts on the answer:
// delivered acks the block; retry backs off (capped exponential, full jitter, honouring
// retry_after) and sends the same block again; rejected counts the records as dead
// letters and moves on. Outputs never buffer, drop or retry by themselves.
#pragma once

#include <optional>
#include <string>

#include "ferry/clock.h"
#include "ferry/record.h"
#include "ferry/status.h"

namespace ferry {

struct SendResult {
  enum class Kind { kDelivered, kRetry, kRejected };
  Kind kind = Kind::kDelivered;
  std::optional<Duration> retry_after;  // kRetry: the peer asked to wait this long
  std::string reason;                   // kRetry/kRejected: why, for logs and metrics

  static SendResult delivered() { return {}; }
  static SendResult retry(std::string why, std::optional<Duration> after = std::nullopt) {
    return {Kind::kRetry, after, std::move(why)};
  }
  static SendResult rejected(std::string why) { return {Kind::kRejected, {}, std::move(why)}; }
};

class Output {
 public:
  virtual ~Output() = default;

  // Called on the sender thread before the first send and again after a failed open.
  // Any error makes the loop back off and call open() again (a non-retryable code is also
  // logged as an operator problem: the cause, e.g. a missing directory, may be fixed on
  // the device without a reload).
  virtual Status open() { return Status::ok(); }

  // Delivers one block. Called on the sender thread; may block until `deadline`, a time
  // on the agent's Clock (PluginContext::clock).
  // The block is owned by the caller and stays valid for the duration of the call.
  virtual SendResult send(const Block& block, SteadyTime deadline) = 0;

  // Called on the sender thread once, after the last send.
  virtual void close() {}
};

}  // namespace ferry
