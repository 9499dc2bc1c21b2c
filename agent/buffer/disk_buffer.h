// `buffer.type: disk` (the default): the Buffer contract on RocksDB. The only module that
// knows RocksDB.
//
// Layout (column families):
//   blocks      seq (u64 BE) -> sealed block (agent/codec/block_codec.h)
//   index       seq (u64 BE) -> records u32 | stored bytes u32 | created_ms i64
//               (small, so opening a large backlog reads kilobytes, not the blocks)
//   meta        "cursor/<output>" -> acked seq u64 BE | commit state
//               "source/<input>/<key>" -> source checkpoint
//               "dek/<id u32 BE>" -> data key wrapped by a master key
//               "format" -> "ferry-buffer 1"
//   quarantine  seq -> the stored bytes of a block that failed its check (or a note when
//               RocksDB itself could not read it); kept, counted, never served
// One append = one WriteBatch (blocks, index entries, source checkpoints), synced when
// durability is fsync: group commit, since the writer hands every ready block of every
// input to one append. An ack writes the cursor (and the output's commit state) and
// deletes (DeleteRange) what every output has passed, in one unsynced WriteBatch: a lost
// ack only means a replay (at-least-once), and a local file output cuts back to the
// commit state stored with the cursor it finds.
//
// Memory: memtables and block cache are charged to one budget (WriteBufferManager with
// the cache), iterators are bounded, the index holds 16 bytes + deque overhead per block.
//
// Thread-safety: append() from the writer thread; read()/ack() from each output's sender
// thread; the rest from any thread. mu_ guards the index and cursors; RocksDB calls are
// made outside it except where noted.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/buffer/drop_counter.h"
#include "agent/codec/block_codec.h"
#include "agent/codec/keyring.h"
#include "ferry/buffer.h"
#include "ferry/metrics.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class Cache;
}  // namespace rocksdb

namespace ferry {

struct DiskBufferOptions {
  std::string path;  // the RocksDB directory (<data_dir>/buffer)
  uint64_t max_bytes = 1ull << 30;  // stored (sealed) bytes of unreleased blocks
  WhenFull when_full = WhenFull::kBlock;
  Duration max_age{};  // zero: none
  bool fsync = true;   // durability: fsync (append returns after the WAL sync) or os
  bool compress = true;
  int zstd_level = 3;
  std::vector<KeyMaterial> keys;  // [0] seals new blocks; all open old ones; empty: plaintext
  uint64_t memory_budget = 16ull << 20;  // memtables + block cache
  bool read_only = false;  // tools: no writes, no new data key, safe beside a running agent
  // A fresh data key is made after this many blocks under one: about the 1 TiB per key
  // margin of the AEAD-limits draft, far below GCM's 2^32 invocations.
  uint64_t rotate_data_key_after = 1ull << 22;  // 4 Mi blocks: ~1 TiB at 256 KiB
};

// What `ferry buffer check` found.
struct CheckReport {
  uint64_t blocks_ok = 0;
  uint64_t records_ok = 0;
  uint64_t blocks_damaged = 0;      // failed RocksDB's checksum, our CRC, or the AEAD tag
  uint64_t blocks_unknown_key = 0;  // sealed with a data key no loaded master key opens
  uint64_t quarantined = 0;         // moved to quarantine earlier
  uint64_t index_mismatches = 0;
  uint64_t blocks_missing = 0;  // holes in the sequence: skipped damaged WAL records
  std::vector<std::string> problems;  // one line each
  bool damaged() const {
    return blocks_damaged + blocks_unknown_key + index_mismatches + blocks_missing > 0;
  }
};

class DiskBuffer final : public Buffer {
 public:
  // Opens (creating if needed) the buffer. A buffer that exists but cannot be opened is
  // an error naming the path and `ferry buffer check`; it is never replaced by an empty one.
  static Result<std::unique_ptr<DiskBuffer>> open(DiskBufferOptions options, MetricsRegistry& metrics,
                                                  const Clock& clock);
  ~DiskBuffer() override;

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

  // Tools. check() verifies every stored block without moving anything.
  CheckReport check();
  // Calls `fn` for every readable block in order, with the outputs that have not acked it.
  Status forEachBlock(const std::function<void(const Block&, const std::vector<std::string>&)>& fn);
  // Output names with a persisted cursor (tools; the running agent uses setOutputs).
  std::vector<std::string> knownOutputs() const;
  uint64_t quarantinedBlocks() const;
  // Flushes memtables and reclaims the space of released blocks now (tests, bench, shutdown).
  Status compact();

 private:
  struct IndexEntry {
    uint64_t seq;
    uint32_t records;
    uint32_t bytes;
    int64_t created_ms;
  };
  struct Cursor {
    uint64_t seq = 0;
    std::string state;
  };

  DiskBuffer(DiskBufferOptions options, MetricsRegistry& metrics, const Clock& clock);
  Status openDb();
  Status loadState();
  Status rebuildIndexFromBlocks();
  void findHoles(const std::vector<uint64_t>& quarantined);
  Status restoreQuarantined();
  // Makes a fresh data key current and stores it (synced) before anything is sealed with it.
  Status newDataKey();
  Status storePendingDataKey();
  // Adds DeleteRange of released blocks to `batch` and drops them from the index. mu_ held.
  void releaseLocked(void* write_batch);
  // Drops the oldest block for `reason` into `batch`. mu_ held.
  void dropFrontLocked(void* write_batch, std::string_view reason);
  void expireLocked(void* write_batch);
  void quarantine(uint64_t seq, const std::string& stored, const std::string& reason);
  void maybeReclaim();
  // `extra` (may be null) adds to the same write batch, after the cursor change was accepted.
  Status storeCursor(std::string_view output, uint64_t seq, std::string_view commit_state,
                     const std::function<Status(void* write_batch)>& extra = nullptr);
  // cursor_write_mu_ held. `wrote`: set when the cursor moved and the write succeeded.
  Status storeCursorLocked(std::string_view output, uint64_t seq, std::string_view commit_state,
                           const std::function<Status(void* write_batch)>& extra, bool* wrote);
  Status loadDeadLetters();
  uint64_t deadLetterCap() const;
  struct PendingDeadLetterEntry {
    uint64_t id = 0;
    uint64_t bytes = 0;
    uint64_t records = 0;
    size_t evict = 0;
    uint64_t evicted_records = 0;
    uint64_t evicted_bytes = 0;
  };
  PendingDeadLetterEntry planDeadLetterLocked(void* write_batch, std::string_view output, std::string_view reason,
                                              std::string_view stored, uint64_t records);
  void commitDeadLetterLocked(const PendingDeadLetterEntry& entry);
  std::unique_ptr<BlockCodec> takeCodec();
  void giveCodec(std::unique_ptr<BlockCodec> codec);
  void updateGaugesLocked();

  const DiskBufferOptions options_;
  MetricsRegistry& metrics_;
  const Clock& clock_;
  DropCounter drops_;
  Gauge& bytes_gauge_;
  Counter& quarantined_counter_;
  Counter& lost_counter_;

  Keyring keyring_;
  std::shared_ptr<rocksdb::Cache> cache_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* blocks_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* index_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* quarantine_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* dead_letters_cf_ = nullptr;  // null: a read-only open of an older buffer

  std::unique_ptr<BlockCodec> writer_codec_;  // writer thread only
  std::vector<uint32_t> dek_ids_;              // every data key id stored; writer/open only
  std::optional<std::pair<uint32_t, std::string>> pending_dek_;  // current, not yet stored
  std::mutex codec_mu_;
  std::vector<std::unique_ptr<BlockCodec>> spare_codecs_;

  std::mutex cursor_write_mu_;  // held across a cursor change and its RocksDB write; before mu_
  mutable std::mutex mu_;
  std::condition_variable data_cv_;
  std::condition_variable space_cv_;
  std::deque<IndexEntry> index_;
  std::map<std::string, Cursor, std::less<>> cursors_;
  uint64_t next_seq_ = 1;
  uint64_t deleted_below_ = 0;  // every seq < this has been range-deleted
  uint64_t bytes_ = 0;
  uint64_t records_ = 0;
  uint64_t quarantined_ = 0;
  uint64_t missing_blocks_ = 0;  // found at open
  std::vector<uint64_t> unwritten_evictions_;  // dropped from the index, delete not yet written
  std::vector<std::pair<uint64_t, uint64_t>> missing_ranges_;
  uint64_t released_since_reclaim_ = 0;
  // The dead-letter queue (guarded by cursor_write_mu_): id, stored bytes, records.
  struct DeadLetterEntry {
    uint64_t id;
    uint64_t bytes;
    uint64_t records;
  };
  std::deque<DeadLetterEntry> dead_letters_;
  uint64_t next_dead_letter_id_ = 1;
  std::atomic<uint64_t> dead_letter_bytes_{0};    // atomics: stats() reads them under mu_ only
  std::atomic<uint64_t> dead_letter_records_{0};
  bool interrupted_ = false;
  std::atomic<bool> reclaiming_{false};
  SteadyTime last_reclaim_{};
};

}  // namespace ferry
