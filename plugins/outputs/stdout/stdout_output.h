// The `stdout` output: every block's records as NDJSON on standard output.
//
// Meant for the default config (host metrics → buffer → stdout), for piping the agent
// into another program, and for debugging a pipeline. A block is rendered into one
// reusable buffer and written with one write loop: no per-record allocation or syscall.
//
// Failures: a write error (EPIPE when the reader went away — the agent ignores SIGPIPE —,
// EIO, ...) is answered with SendResult::retry naming the error; the output never
// rejects a block. When the descriptor is non-blocking (stdout inherited as O_NONBLOCK),
// send() waits for it to become writable until the deadline, then asks for a retry.
//
// No torn lines on retry: when a write stops half-way through a block, the rest of the
// rendering is kept and the retry of the same block (same seq) writes only the rest, so
// the reader sees each record once. This is not buffering: it is the unfinished tail of
// the one block the sender is still retrying. If a different block comes instead, the
// torn line is ended with '\n' first so the next record starts on a line of its own.
//
// Threading: one sender thread owns an instance (ferry/output.h); no internal locking.
// Ownership: the descriptor is borrowed, never closed.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <string>

#include "ferry/clock.h"
#include "ferry/output.h"
#include "ferry/plugin.h"

namespace ferry {

class StdoutOutput final : public Output {
 public:
  // `fd` is where the NDJSON goes: STDOUT_FILENO in production, a pipe or a temp file in
  // tests. `clock` measures the remaining time to a send's deadline; it must be the clock
  // the sender loop computes deadlines with, and it must outlive the output.
  explicit StdoutOutput(int fd = STDOUT_FILENO, const Clock& clock = systemClock());

  // Blocks while the descriptor blocks (a full pipe whose reader is slow); for a
  // non-blocking descriptor, at most until `deadline`.
  SendResult send(const Block& block, SteadyTime deadline) override;

 private:
  // Writes buf_[written_..] until done, an error, or (EAGAIN) the deadline. Returns 0 on
  // success or the errno that stopped it.
  int writeRest(SteadyTime deadline);
  SendResult retryWith(int err) const;

  const int fd_;
  const Clock& clock_;
  std::string buf_;          // the rendering of the block being written; capacity reused
  size_t written_ = 0;       // bytes of buf_ already written
  bool unfinished_ = false;  // buf_ holds a block whose write stopped half-way
  uint64_t unfinished_seq_ = 0;
};

// The descriptor the generated plugin table points at (plugins/CMakeLists.txt).
const PluginDescriptor& stdoutOutputDescriptor();

}  // namespace ferry
