// The buffer: one append-only log of blocks plus one cursor per output.
//
// The writer (one thread) appends sealed blocks; each output's sender reads blocks after
// its own read position and acks them when delivered. A block is released when every
// output's cursor has passed it. Outputs added to the config start at the tail of the
// log (they see data accepted from then on); outputs removed from the config stop
// holding data back. Neither changes the others' cursors.
//
// Bounds: `max_bytes` with a when_full policy and `max_age`. Every record dropped by a
// bound is counted in ferry_dropped_records_total{reason} (drop_oldest, drop_newest,
// max_age) and logged at most once a minute.
//
// Implementations: MemoryBuffer (agent/buffer/memory_buffer.h, `buffer.type: memory`).
// Only the buffer knows its storage.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/clock.h"
#include "ferry/record.h"
#include "ferry/status.h"

namespace ferry {

enum class WhenFull { kBlock, kDropOldest, kDropNewest };
bool parseWhenFull(std::string_view text, WhenFull* out);

struct OutputBacklog {
  std::string output;
  uint64_t cursor = 0;   // last acked sequence
  uint64_t blocks = 0;   // blocks after the cursor
  uint64_t records = 0;  // records after the cursor
  uint64_t bytes = 0;    // record bytes after the cursor
  int64_t oldest_ms = 0; // created_ms of the oldest unacked block; 0 when none
};

// One entry of the dead-letter queue: a block an output refused permanently.
struct DeadLetter {
  uint64_t id = 0;      // position in the queue (increasing)
  std::string output;   // the output that refused it
  std::string reason;   // e.g. "HTTP 400: field x is not a number"
  int64_t at_ms = 0;    // wall clock when it was refused
  Block block;          // the records, with the block's seq and lineage
};

struct BufferStats {
  uint64_t blocks = 0;
  uint64_t records = 0;
  uint64_t bytes = 0;  // counted against max_bytes
  uint64_t max_bytes = 0;
  uint64_t next_seq = 0;
  uint64_t dead_letter_records = 0;  // kept in the dead-letter queue
  uint64_t dead_letter_bytes = 0;
  std::vector<OutputBacklog> outputs;
};

using BlockRef = std::shared_ptr<const Block>;

class Buffer {
 public:
  virtual ~Buffer() = default;

  // Control thread. Declares the current outputs (see the header comment). Idempotent.
  virtual Status setOutputs(std::span<const std::string> outputs) = 0;

  // Writer thread only. Numbers `blocks` in order (sets Block::seq) and stores them.
  // when_full=block: waits up to `wait` for room, then returns kResourceExhausted and
  // stores nothing. drop_oldest / drop_newest: makes room by dropping, counted, and
  // returns OK. A single block larger than max_bytes is an kInvalidArgument error.
  // The blocks' contents are moved out on success.
  virtual Status append(std::span<Block> blocks, Duration wait) = 0;

  // Sender thread of `output`. Up to `max_blocks` blocks with seq > after_seq, oldest
  // first; waits up to `wait` when there are none (returns an empty vector then).
  // kNotFound if `output` is not declared; kCancelled after interrupt().
  virtual Result<std::vector<BlockRef>> read(std::string_view output, uint64_t after_seq,
                                             size_t max_blocks, Duration wait) = 0;

  // Sender thread of `output`: every block of `output` up to `seq` is done (delivered
  // or dead-lettered). `commit_state` (may be empty) is stored with the cursor in one
  // atomic write (see SendResult::commit_state). Acks lower than the cursor are ignored;
  // an ack at the cursor only stores a non-empty commit state (Output::openedState).
  virtual Status ack(std::string_view output, uint64_t seq, std::string_view commit_state) = 0;

  // Sender thread of `output`: keeps `block` in the dead-letter queue with `reason` and
  // acks block.seq for `output` (as ack() does, with `commit_state`) in one atomic write.
  // Returns the entry's id (increasing), or 0 when nothing was kept: the block was already
  // acked, or a bound dropped it meanwhile (counted then). The queue is bounded (an eighth
  // of max_bytes, at least 1 MiB, outside the max_bytes quota): the oldest entries make
  // room and are counted as dropped (reason "dead_letter_overflow").
  virtual Result<uint64_t> deadLetter(std::string_view output, const Block& block, std::string_view reason,
                                      std::string_view commit_state) = 0;

  // Writer thread only (the thread that calls append()): keeps `block` (not part of the
  // log; its seq is ignored) in the dead-letter queue under the name `source` (e.g.
  // "input:<name>": records an input could not deliver as records) with `reason`. Same
  // bound as deadLetter(). Returns the entry's id.
  virtual Result<uint64_t> keepDeadLetter(std::string_view source, const Block& block, std::string_view reason) = 0;

  // Tools and tests: every dead letter kept, oldest first.
  virtual Status forEachDeadLetter(const std::function<void(const DeadLetter&)>& fn) const = 0;

  // Last acked sequence of `output` (0 when none or unknown) and its commit state.
  virtual uint64_t cursor(std::string_view output) const = 0;
  virtual std::string commitState(std::string_view output) const = 0;

  // Source checkpoints committed with blocks (Block::checkpoints), by full key.
  virtual std::optional<std::string> checkpoint(std::string_view key) const = 0;
  virtual std::vector<std::pair<std::string, std::string>> checkpoints(std::string_view prefix) const = 0;

  virtual BufferStats stats() const = 0;

  // Any thread: makes blocked append()/read() calls return kCancelled, now and later.
  virtual void interrupt() = 0;
};

}  // namespace ferry
