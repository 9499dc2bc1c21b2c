// `buffer.type: memory`: the Buffer contract held in RAM.
//
// Bounded by max_bytes (record bytes of the blocks held), with the same when_full and
// max_age policies as the disk buffer. Nothing survives the process: at shutdown the
// records no output has acknowledged are counted as dropped (reason "shutdown") and
// logged. For devices where losing the backlog on restart is acceptable, or tests.
//
// Thread-safety: append() from the writer thread, read()/ack() from each output's
// sender thread, the rest from any thread; one mutex guards the log and the cursors.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>

#include "agent/buffer/drop_counter.h"
#include "ferry/buffer.h"
#include "ferry/metrics.h"

namespace ferry {

struct BufferLimits {
  uint64_t max_bytes = 64ull << 20;
  WhenFull when_full = WhenFull::kBlock;
  Duration max_age{};  // zero: none
};

class MemoryBuffer final : public Buffer {
 public:
  MemoryBuffer(BufferLimits limits, MetricsRegistry& metrics, const Clock& clock);
  ~MemoryBuffer() override;

  Status setOutputs(std::span<const std::string> outputs) override;
  Status append(std::span<Block> blocks, Duration wait) override;
  Result<std::vector<BlockRef>> read(std::string_view output, uint64_t after_seq, size_t max_blocks,
                                     Duration wait) override;
  Status ack(std::string_view output, uint64_t seq, std::string_view commit_state) override;
  Result<uint64_t> keepDeadLetter(std::string_view source, const Block& block, std::string_view reason) override;
  Result<uint64_t> deadLetter(std::string_view output, const Block& block, std::string_view reason,
                              std::string_view commit_state) override;
  Status forEachDeadLetter(const std::function<void(const DeadLetter&)>& fn) const override;
  uint64_t cursor(std::string_view output) const override;
  std::string commitState(std::string_view output) const override;
  std::optional<std::string> checkpoint(std::string_view key) const override;
  std::vector<std::pair<std::string, std::string>> checkpoints(std::string_view prefix) const override;
  BufferStats stats() const override;
  void interrupt() override;

  // Counts what is still unacknowledged as dropped (reason "shutdown"). Called once at exit.
  void discardAtShutdown();

 private:
  uint64_t keepLocked(std::string_view output, const Block& block, std::string_view reason, uint64_t seq);
  void countOverflow(uint64_t evicted);
  static uint64_t blockBytes(const Block& b) { return b.records.bytes() + b.records.size() * 4; }
  void releaseLocked();         // frees blocks every cursor passed
  void expireLocked();          // max_age
  void dropFrontLocked(std::string_view reason);
  void updateGaugesLocked();

  const BufferLimits limits_;
  MetricsRegistry& metrics_;
  const Clock& clock_;
  DropCounter drops_;
  Gauge& bytes_gauge_;

  mutable std::mutex mu_;
  std::condition_variable data_cv_;   // readers wait for new blocks
  std::condition_variable space_cv_;  // the writer waits for room
  std::deque<BlockRef> log_;          // ascending seq
  std::map<std::string, uint64_t, std::less<>> cursors_;
  std::map<std::string, std::string, std::less<>> commit_states_;
  std::map<std::string, std::string, std::less<>> checkpoints_;
  uint64_t next_seq_ = 1;
  uint64_t bytes_ = 0;
  uint64_t records_ = 0;
  std::deque<DeadLetter> dead_letters_;  // bounded like the disk buffer's (buffer.h)
  uint64_t next_dead_letter_id_ = 1;
  uint64_t dead_letter_bytes_ = 0;
  uint64_t dead_letter_records_ = 0;
  bool interrupted_ = false;
};

}  // namespace ferry
