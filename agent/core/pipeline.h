// The batcher and the writer: inputs' record batches in, sealed blocks into the buffer.
//
// Each input gets an Emitter (emitterFor). emit() copies the batch into the open block
// of its (input, stream) with one memcpy per batch; a block is cut when it reaches
// max_records or max_bytes, or max_wait after its first record. One writer thread hands
// cut blocks to Buffer::append in groups (one call per wake-up, so many inputs share one
// buffer write). Staged bytes (open and cut blocks not yet appended) are capped; when
// the cap is reached emit() waits: that is how a full buffer (when_full: block) pushes
// back to inputs.
//
// Thread-safety: emitters are called from input threads; start/stop from the control
// thread. One mutex guards the staging area; it is taken once per emitted batch.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/config/config.h"
#include "ferry/buffer.h"
#include "ferry/input.h"
#include "ferry/metrics.h"

namespace ferry {

struct BatchingOptions {
  uint64_t max_records = 10000;
  uint64_t max_bytes = 256 << 10;
  Duration max_wait = std::chrono::milliseconds(50);
  // Staging cap; 0 means 4 blocks' worth (at least 1 MiB).
  uint64_t staging_max_bytes = 0;
};

class Pipeline {
 public:
  Pipeline(Buffer& buffer, BatchingOptions options, std::string agent_id, uint64_t config_version,
           MetricsRegistry& metrics, const Clock& clock);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Control thread, before start(). The emitter lives as long as the pipeline.
  Emitter& emitterFor(const std::string& input, const std::string& stream);
  // An emitter whose blocks only the output `route` sends (Lineage::route); the stream is
  // given with each emit. Used to forward dead letters to their configured output.
  Emitter& routedEmitterFor(const std::string& input, const std::string& route);

  // An emitter for records the core itself produces (processor ticks, input "processor:<name>";
  // the stream is given with each emit). Unlike input emitters it still accepts records after
  // stopInputs() — without waiting for room then — until flushAndStop(), so what processors
  // flush at stop is stored with the rest.
  Emitter& tickEmitterFor(const std::string& input);

  // Starts the writer thread.
  void start();

  // Makes every emitter report stopping(): blocked emit() calls return kCancelled and
  // waitFor() returns at once. Inputs then finish and their threads are joined by the caller.
  void stopInputs();

  // After the inputs stopped: cuts the open blocks, appends everything staged, and stops
  // the writer. What cannot be appended before `deadline` (buffer full) is counted as
  // dropped (reason "shutdown") and logged. Returns the number of records dropped so.
  // With `carry` (a config reload), what could not be appended by the deadline is moved
  // there instead of dropped, for the next pipeline to adopt().
  uint64_t flushAndStop(SteadyTime deadline, std::vector<Block>* carry = nullptr);

  // Control thread, before start(): blocks a previous pipeline could not append; they are
  // appended first, in their order.
  void adopt(std::vector<Block> blocks);

 private:
  class InputEmitter;
  struct OpenBlock {
    Block block;
    SteadyTime first_record{};
  };

  // `deadline`: give up (kResourceExhausted) when no room by then; null waits until stop.
  // `cut_range`: set to the range of block indexes (cut order, 1-based) that hold the batch;
  // the open block is cut at once then.
  Status emit(InputEmitter& from, const RecordBatch& batch, std::string_view stream,
              const SourceCheckpoint* checkpoint, const SteadyTime* deadline = nullptr,
              std::pair<uint64_t, uint64_t>* cut_range = nullptr);
  Status waitCommitted(std::pair<uint64_t, uint64_t> range, Duration d);
  Status waitForRoom(uint64_t bytes, Duration wait);
  Status deadLetter(InputEmitter& from, const RecordBatch& batch, std::string_view reason);
  void cutLocked(OpenBlock& open);
  // Writer thread: stores the queued input dead letters (lock held on entry and exit).
  void storeDeadLettersLocked(std::unique_lock<std::mutex>& lock);
  void writerLoop();
  void setBufferFull(bool full);  // writer thread

  Buffer& buffer_;
  const BatchingOptions options_;
  const std::string agent_id_;
  const uint64_t config_version_;
  MetricsRegistry& metrics_;
  const Clock& clock_;

  std::list<std::unique_ptr<InputEmitter>> emitters_;

  std::mutex mu_;
  std::condition_variable writer_cv_;  // work for the writer
  std::condition_variable space_cv_;   // room for emitters
  std::condition_variable stop_cv_;    // emitters' waitFor()
  std::list<OpenBlock> open_;          // one per (input, stream) with records
  std::deque<Block> ready_;            // cut, waiting for the writer
  // Commit tracking (Emitter::emitTracked): blocks are numbered in cut order (adopted ones
  // too); the writer takes ready_ in that order, so `processed_` blocks are done. Ranges of
  // block numbers that were not stored (dropped or carried) are kept in `failed_`.
  uint64_t cut_count_ = 0;
  uint64_t processed_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> failed_;
  std::condition_variable commit_cv_;  // processed_ moved, or a dead letter was stored
  // Input dead letters waiting for the writer (it alone may seal into the buffer).
  struct PendingDeadLetter {
    std::string source;
    Block block;
    std::string reason;
    bool taken = false;  // the writer took it from the list
    bool done = false;
    Status result;
  };
  std::list<PendingDeadLetter*> dead_letters_;
  uint64_t staged_bytes_ = 0;
  bool inputs_stopping_ = false;
  std::chrono::steady_clock::time_point stopping_since_{};
  // How long waitCommitted() still waits for a commit once inputs are asked to stop.
  static constexpr std::chrono::milliseconds kStopGrace{500};
  bool writer_stopping_ = false;
  bool writer_stopped_ = false;
  bool buffer_full_ = false;  // the writer's last append was refused for lack of room
  SteadyTime flush_deadline_{};
  uint64_t shutdown_dropped_ = 0;
  bool carry_ = false;               // flushAndStop(…, carry): keep what cannot be appended
  std::vector<Block> carried_;
  std::thread writer_;
};

}  // namespace ferry
