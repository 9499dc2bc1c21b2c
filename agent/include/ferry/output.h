// The output plugin interface.
//
// Exactly one sender loop (agent/core/sender.h) owns an output; it calls send() from up
// to maxInFlight() threads at once (see there). The loop reads blocks from the buffer, calls send(), and acts on the answer:
// delivered acks the block; retry backs off (capped exponential, full jitter, honouring
// retry_after) and sends the same block again; rejected counts the records as dead
// letters and moves on. Outputs never buffer, drop or retry by themselves.
#pragma once

#include <cstddef>
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
  // kDelivered: the output's own position after this block (e.g. a file's length), stored
  // with the output's cursor in one atomic write and given back to open() after a restart.
  std::string commit_state;

  static SendResult delivered(std::string state = {}) {
    SendResult r;
    r.commit_state = std::move(state);
    return r;
  }
  static SendResult retry(std::string why, std::optional<Duration> after = std::nullopt) {
    return {Kind::kRetry, after, std::move(why), {}};
  }
  static SendResult rejected(std::string why) { return {Kind::kRejected, {}, std::move(why), {}}; }
};

class Output {
 public:
  virtual ~Output() = default;

  // Called on the sender thread before the first send and again after a failed open.
  // Any error makes the loop back off and call open() again (a non-retryable code is also
  // logged as an operator problem: the cause, e.g. a missing directory, may be fixed on
  // the device without a reload).
  // `committed_state` is the commit_state of the last block acknowledged for this output
  // (empty when none): an output that writes locally can cut back what it wrote after that
  // ack, which makes a local file exactly-once across crashes.
  virtual Status open(std::string_view /*committed_state*/) { return Status::ok(); }

  // Delivers one block. Called on the sender thread; may block until `deadline`, a time
  // on the agent's Clock (PluginContext::clock).
  // The block is owned by the caller and stays valid for the duration of the call.
  virtual SendResult send(const Block& block, SteadyTime deadline) = 0;

  // The commit state right after a successful open() (before any send), for an output
  // that never had one stored: the core stores it at the current cursor, so a crash
  // before the first ack is cut back too. Empty: nothing to store.
  virtual std::string openedState() const { return {}; }

  // How many send() calls this output can take at once, from different threads of its
  // sender (the output's `window`). 1 (the default): send() is only ever called from one
  // thread at a time. More: send() must be safe to call concurrently with itself; open()
  // and close() are still never concurrent with any send().
  virtual size_t maxInFlight() const { return 1; }

  // Called from the control thread when the agent stops (without draining): sends in
  // flight should give up soon (answer retry; the buffer keeps the block). Must be safe
  // to call concurrently with send(). Outputs whose sends are short may ignore it.
  virtual void interrupt() {}

  // Called on the sender thread once, after the last send.
  virtual void close() {}
};

}  // namespace ferry
