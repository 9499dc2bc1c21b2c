#include "agent/buffer/disk_buffer.h"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/table_properties_collectors.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "ferry/log.h"
#include "ferry/options.h"

namespace ferry {
namespace {

constexpr char kFormat[] = "ferry-buffer 1";

std::string seqKey(uint64_t seq) {
  std::string k(8, '\0');
  for (int i = 7; i >= 0; --i) {
    k[static_cast<size_t>(i)] = static_cast<char>(seq & 0xff);
    seq >>= 8;
  }
  return k;
}

uint64_t readU64(std::string_view s, size_t at = 0) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}
uint32_t readU32(std::string_view s, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}
void putU64(std::string& s, uint64_t v) {
  for (int i = 7; i >= 0; --i) s.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}
void putU32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}

// The `index` column family's value for a stored block: records u32 | stored bytes u32 |
// created_ms i64.
std::string indexValue(const Block& b, size_t stored_bytes) {
  std::string v;
  putU32(v, static_cast<uint32_t>(b.records.size()));
  putU32(v, static_cast<uint32_t>(stored_bytes));
  putU64(v, static_cast<uint64_t>(b.created_ms));
  return v;
}

// The `dead_letters` column family's value: at_ms i64 | output_len u16 | output
// | reason_len u32 | reason | the block exactly as stored (sealed, so it stays encrypted).
struct DeadLetterValue {
  int64_t at_ms = 0;
  std::string_view output;
  std::string_view reason;
  std::string_view stored;
};

std::string encodeDeadLetter(int64_t at_ms, std::string_view output, std::string_view reason,
                             std::string_view stored) {
  std::string v;
  output = output.substr(0, 0xFFFF);
  reason = reason.substr(0, 4096);
  putU64(v, static_cast<uint64_t>(at_ms));
  v.push_back(static_cast<char>(output.size() >> 8));
  v.push_back(static_cast<char>(output.size() & 0xff));
  v.append(output);
  putU32(v, static_cast<uint32_t>(reason.size()));
  v.append(reason);
  v.append(stored);
  return v;
}

// False when `v` is too short for the lengths it states.
bool decodeDeadLetter(std::string_view v, DeadLetterValue* out) {
  if (v.size() < 14) return false;
  const size_t out_len = (static_cast<uint8_t>(v[8]) << 8) | static_cast<uint8_t>(v[9]);
  if (v.size() < 14 + out_len) return false;
  const size_t why_len = readU32(v, 10 + out_len);
  if (v.size() < 14 + out_len + why_len) return false;
  out->at_ms = static_cast<int64_t>(readU64(v));
  out->output = v.substr(10, out_len);
  out->reason = v.substr(14 + out_len, why_len);
  out->stored = v.substr(14 + out_len + why_len);
  return true;
}

Status fromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::ok();
  std::string m = std::string(what) + ": " + s.ToString();
  if (s.IsCorruption()) return corruption(m);
  // A full disk is not a full quota: the caller backs off rather than waiting for acks.
  if (s.IsNoSpace()) return unavailable(m + " (disk full)");
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut()) return unavailable(m);
  if (s.IsNotFound()) return notFound(m);
  if (s.IsInvalidArgument()) return invalidArgument(m);
  return ioError(m);
}

// RocksDB settings for a FIFO queue of ~30 KiB values on slow flash, each with its reason.
rocksdb::ColumnFamilyOptions queueCfOptions(const std::shared_ptr<rocksdb::Cache>& cache, uint64_t budget) {
  rocksdb::ColumnFamilyOptions cf;
  // Values are sealed (already zstd-compressed and encrypted): compressing again wastes CPU.
  cf.compression = rocksdb::kNoCompression;
  cf.bottommost_compression = rocksdb::kNoCompression;
  // Small memtables: acked data usually dies in the memtable (its DeleteRange is applied at
  // flush), and a small memtable bounds memory and WAL replay time.
  cf.write_buffer_size = std::max<uint64_t>(1 << 20, budget / 4);
  cf.max_write_buffer_number = 2;
  cf.min_write_buffer_number_to_merge = 1;
  // Few, small levels: the backlog is at most max_bytes and is consumed oldest first.
  cf.num_levels = 4;
  cf.level0_file_num_compaction_trigger = 4;
  cf.target_file_size_base = 8 << 20;
  cf.max_bytes_for_level_base = 64 << 20;
  // Whole files below the slowest cursor are dropped by DeleteFilesInRange; files with many
  // range-deleted keys are compacted early so tombstones do not pile up.
  cf.table_properties_collector_factories.emplace_back(
      rocksdb::NewCompactOnDeletionCollectorFactory(128, 64, 0.5));
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache;
  // Keep index/filter blocks in the bounded cache rather than unbounded table-reader memory.
  t.cache_index_and_filter_blocks = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  // Reads are sequential scans and Gets of keys that exist: a bloom filter buys nothing.
  t.filter_policy = nullptr;
  // Values are ~30 KiB; 16 KiB blocks keep the index small without much read amplification.
  t.block_size = 16 << 10;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return cf;
}

}  // namespace

DiskBuffer::DiskBuffer(DiskBufferOptions options, MetricsRegistry& metrics, const Clock& clock)
    : options_(std::move(options)),
      metrics_(metrics),
      clock_(clock),
      drops_(metrics, clock),
      bytes_gauge_(metrics.gauge("ferry_buffer_bytes", {}, "bytes held by the buffer")),
      quarantined_counter_(metrics.counter("ferry_buffer_quarantined_blocks_total", {},
                                           "blocks that failed their check, kept in quarantine")),
      lost_counter_(metrics.counter("ferry_buffer_lost_blocks_total", {},
                                    "stored blocks found missing at open (damaged write-ahead log)")) {}

DiskBuffer::~DiskBuffer() {
  interrupt();
  if (db_) {
    if (!options_.read_only) {
      // A clean stop leaves nothing to replay: the next open is fast.
      rocksdb::FlushOptions fo;
      (void)db_->Flush(fo, handles_);
    }
    for (auto* h : handles_) (void)db_->DestroyColumnFamilyHandle(h);
    handles_.clear();
    (void)db_->Close();
    db_.reset();
  }
}

Result<std::unique_ptr<DiskBuffer>> DiskBuffer::open(DiskBufferOptions options, MetricsRegistry& metrics,
                                                     const Clock& clock) {
  std::unique_ptr<DiskBuffer> b(new DiskBuffer(std::move(options), metrics, clock));
  for (size_t i = 0; i < b->options_.keys.size(); ++i) b->keyring_.addMaster(b->options_.keys[i]);
  FERRY_RETURN_IF_ERROR(b->openDb());
  FERRY_RETURN_IF_ERROR(b->loadState());
  FERRY_RETURN_IF_ERROR(b->loadDeadLetters());
  CodecOptions co;
  co.compress = b->options_.compress;
  co.zstd_level = b->options_.zstd_level;
  co.keyring = &b->keyring_;
  b->writer_codec_ = std::make_unique<BlockCodec>(co);
  if (!b->options_.read_only) FERRY_RETURN_IF_ERROR(b->restoreQuarantined());
  return b;
}

Status DiskBuffer::restoreQuarantined() {
  // A block quarantined because its key was missing opens again once the key file is
  // configured: it goes back into the log (after the current backlog, under a new
  // sequence) instead of staying locked away. Damaged blocks stay where they are.
  std::vector<std::pair<std::string, std::string>> found;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), quarantine_cf_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->key().size() == 8 && it->value().size() > 0) found.emplace_back(it->key().ToString(), it->value().ToString());
    }
  }
  if (found.empty()) return Status::ok();
  auto reader = takeCodec();
  uint64_t restored = 0;
  for (const auto& [key, stored] : found) {
    auto block = reader->open(stored, readU64(key));
    if (!block.isOk()) continue;
    Block b = std::move(block).value();
    std::string sealed;
    {
      std::lock_guard lock(mu_);
      b.seq = next_seq_;
    }
    FERRY_RETURN_IF_ERROR(writer_codec_->seal(b, &sealed));
    rocksdb::WriteBatch batch;
    const std::string new_key = seqKey(b.seq);
    batch.Put(blocks_cf_, new_key, sealed);
    batch.Put(index_cf_, new_key, indexValue(b, sealed.size()));
    batch.Delete(quarantine_cf_, key);
    batch.Delete(meta_cf_, "quarantine/" + key);
    rocksdb::WriteOptions wo;
    wo.sync = options_.fsync;
    FERRY_RETURN_IF_ERROR(fromRocks(db_->Write(wo, &batch), "restoring a quarantined block"));
    std::lock_guard lock(mu_);
    index_.push_back({b.seq, static_cast<uint32_t>(b.records.size()), static_cast<uint32_t>(sealed.size()),
                      b.created_ms});
    bytes_ += sealed.size();
    records_ += b.records.size();
    ++next_seq_;
    --quarantined_;
    ++restored;
  }
  giveCodec(std::move(reader));
  if (restored > 0) {
    logInfo("buffer", "restored ", restored, " quarantined block(s) that open with the configured keys now; they are "
            "sent after the current backlog");
  }
  return Status::ok();
}

Status DiskBuffer::openDb() {
  const std::string& path = options_.path;
  const bool exists = std::filesystem::exists(path + "/CURRENT");
  if (!exists) {
    if (options_.read_only) return notFound("no buffer at " + path);
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) return ioError("cannot create buffer directory " + path + ": " + ec.message());
    ::chmod(path.c_str(), 0700);
  }
  cache_ = rocksdb::NewLRUCache(std::max<uint64_t>(1 << 20, options_.memory_budget / 2));
  rocksdb::DBOptions db;
  db.create_if_missing = !options_.read_only;
  db.create_missing_column_families = !options_.read_only;
  // Memtables of every column family and the block cache share one budget.
  db.write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(options_.memory_budget / 2, cache_);
  // Bound the WAL so old memtables get flushed and WAL files recycled.
  db.max_total_wal_size = 32 << 20;
  // No WAL recycling: a recycled file holds stale records after the new ones, which only
  // point-in-time recovery knows to stop at, and RocksDB disables recycling with that mode
  // anyway; with our skip-damaged-records recovery it must stay off.
  db.recycle_log_file_num = 0;
  // A small device: a couple of background threads, few open files.
  db.max_background_jobs = 2;
  db.max_open_files = 256;
  // RocksDB's info LOG is kept small and quiet; Ferry logs what matters itself.
  db.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  db.keep_log_file_num = 2;
  db.max_log_file_size = 1 << 20;
  db.stats_dump_period_sec = 0;
  db.stats_persist_period_sec = 0;
  // Checksums are verified on every read; a damaged block is quarantined, not served.
  db.paranoid_checks = true;
  // A torn WAL tail after a crash is cut; a damaged record inside the WAL is skipped and
  // everything around it kept (point-in-time recovery would silently drop all that follows).
  // What was skipped shows as a hole in the sequences and is reported (findHoles).
  db.wal_recovery_mode = rocksdb::WALRecoveryMode::kSkipAnyCorruptedRecords;

  rocksdb::ColumnFamilyOptions cf = queueCfOptions(cache_, options_.memory_budget);
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const char* name : {rocksdb::kDefaultColumnFamilyName.c_str(), "blocks", "index", "meta", "quarantine"}) {
    cfs.emplace_back(name, cf);
  }
  constexpr size_t kRequiredCfs = 5;  // dead_letters came later; a tool may open an older buffer
  bool with_dead_letters = true;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  rocksdb::Options merged(db, cf);
  if (options_.read_only) {
    // A buffer whose creation was interrupted (killed before all column families existed)
    // holds no blocks yet; the agent's next read-write open completes it.
    std::vector<std::string> existing;
    if (rocksdb::DB::ListColumnFamilies(merged, path, &existing).ok() && existing.size() < kRequiredCfs) {
      return notFound("buffer at " + path + " was never completely created (it holds no blocks)");
    }
    with_dead_letters = std::find(existing.begin(), existing.end(), "dead_letters") != existing.end();
    if (with_dead_letters) cfs.emplace_back("dead_letters", cf);
    s = rocksdb::DB::OpenForReadOnly(merged, path, cfs, &handles_, &raw);
  } else {
    cfs.emplace_back("dead_letters", cf);
    s = rocksdb::DB::Open(db, path, cfs, &handles_, &raw);
  }
  if (!s.ok() && s.ToString().find("lock") != std::string::npos && !s.IsCorruption()) {
    return Status(StatusCode::kFailedPrecondition,
                  "the buffer at " + path + " is in use by another process (" + s.ToString() +
                      "); is another ferry running with the same agent.data_dir?");
  }
  if (!s.ok()) {
    return Status(s.IsCorruption() ? StatusCode::kCorruption : StatusCode::kIoError,
                  "cannot open the buffer at " + path + ": " + s.ToString() +
                      ". The data was left as it is; run `ferry buffer check --data-dir <data_dir>` to see "
                      "what can be salvaged");
  }
  db_.reset(raw);
  blocks_cf_ = handles_[1];
  index_cf_ = handles_[2];
  meta_cf_ = handles_[3];
  quarantine_cf_ = handles_[4];
  dead_letters_cf_ = with_dead_letters ? handles_[5] : nullptr;
  return Status::ok();
}

Status DiskBuffer::loadState() {
  rocksdb::ReadOptions ro;
  std::string format;
  rocksdb::Status s = db_->Get(ro, meta_cf_, "format", &format);
  if (s.IsNotFound()) {
    if (!options_.read_only) {
      FERRY_RETURN_IF_ERROR(fromRocks(db_->Put(rocksdb::WriteOptions(), meta_cf_, "format", kFormat), "buffer"));
    }
  } else if (!s.ok()) {
    return fromRocks(s, "reading the buffer format");
  } else if (format != kFormat) {
    return invalidArgument("buffer at " + options_.path + " has format \"" + format + "\"; this agent reads \"" +
                           kFormat + "\"");
  }

  uint64_t max_seq = 0;
  std::vector<uint32_t> dek_ids;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_cf_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string_view k(it->key().data(), it->key().size());
      std::string_view v(it->value().data(), it->value().size());
      if (k.starts_with("cursor/") && v.size() >= 8) {
        Cursor c;
        c.seq = readU64(v);
        c.state.assign(v.substr(8));
        max_seq = std::max(max_seq, c.seq);
        cursors_[std::string(k.substr(7))] = std::move(c);
      } else if (k.starts_with("dek/") && k.size() == 8) {
        uint32_t id = readU32(k, 4);
        dek_ids.push_back(id);
        Status st = keyring_.addWrapped(id, v);
        if (!st.isOk()) {
          logWarn("buffer", "data key 0x", std::hex, id, std::dec, ": ", st.message(),
                  "; blocks sealed with it cannot be read until its key file is configured "
                  "(buffer.encryption.previous_key_files)");
        }
      } else if (k == "seq_floor" && v.size() == 8) {
        max_seq = std::max(max_seq, readU64(v));
      }
    }
    FERRY_RETURN_IF_ERROR(fromRocks(it->status(), "reading buffer metadata"));
  }

  // The index: small values, so a large backlog opens in milliseconds.
  bool index_ok = true;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, index_cf_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->key().size() != 8 || it->value().size() != 16) continue;
      std::string_view v(it->value().data(), it->value().size());
      IndexEntry e{readU64(std::string_view(it->key().data(), 8)), readU32(v, 0), readU32(v, 4),
                   static_cast<int64_t>(readU64(v, 8))};
      index_.push_back(e);
    }
    if (!it->status().ok()) {
      logError("buffer", "the block index is damaged (", it->status().ToString(), "); rebuilding it from the blocks");
      index_ok = false;
    }
  }
  if (!index_ok) FERRY_RETURN_IF_ERROR(rebuildIndexFromBlocks());

  for (const IndexEntry& e : index_) {
    bytes_ += e.bytes;
    records_ += e.records;
  }
  if (!index_.empty()) max_seq = std::max(max_seq, index_.back().seq);
  std::vector<uint64_t> quarantined_seqs;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, quarantine_cf_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      ++quarantined_;
      if (it->key().size() != 8) continue;
      const uint64_t q = readU64(std::string_view(it->key().data(), 8));
      quarantined_seqs.push_back(q);
      max_seq = std::max(max_seq, q);
    }
  }
  findHoles(quarantined_seqs);
  next_seq_ = max_seq + 1;
  deleted_below_ = index_.empty() ? next_seq_ : index_.front().seq;

  dek_ids_ = std::move(dek_ids);
  if (keyring_.enabled() && !options_.read_only) FERRY_RETURN_IF_ERROR(newDataKey());
  updateGaugesLocked();
  if (quarantined_ > 0) {
    logWarn("buffer", quarantined_, " block(s) are in quarantine at ", options_.path, "; see `ferry buffer check`");
  }
  return Status::ok();
}

void DiskBuffer::findHoles(const std::vector<uint64_t>& quarantined) {
  // Sequences are consecutive from the oldest kept block on, except for quarantined ones.
  // A hole means blocks that were written are gone: RocksDB skipped a damaged WAL record
  // (WALRecoveryMode::kSkipAnyCorruptedRecords keeps everything around it). Say so loudly.
  for (size_t i = 1; i < index_.size(); ++i) {
    const uint64_t from = index_[i - 1].seq + 1;
    const uint64_t to = index_[i].seq;  // exclusive
    if (from >= to) continue;
    uint64_t missing = to - from;
    for (uint64_t q : quarantined) missing -= (q >= from && q < to) ? 1 : 0;
    if (missing == 0) continue;
    missing_blocks_ += missing;
    if (missing_ranges_.size() < 16) missing_ranges_.emplace_back(from, to - 1);
  }
  if (missing_blocks_ > 0) {
    lost_counter_.add(missing_blocks_);
    std::string ranges;
    for (const auto& [a, b] : missing_ranges_) ranges += " " + std::to_string(a) + ".." + std::to_string(b);
    logError("buffer", missing_blocks_, " stored block(s) are missing from ", options_.path, " (sequences", ranges,
             "): the write-ahead log was damaged and RocksDB skipped what it could not read; the rest is "
             "served. Counted in ferry_buffer_lost_blocks_total; see `ferry buffer check`");
  }
}

Status DiskBuffer::newDataKey() {
  auto dek = keyring_.newDataKey(dek_ids_);
  if (!dek.isOk()) return dek.status();
  dek_ids_.push_back(dek->first);
  pending_dek_ = std::move(dek).value();
  return storePendingDataKey();
}

Status DiskBuffer::storePendingDataKey() {
  if (!pending_dek_) return Status::ok();
  std::string key = "dek/";
  putU32(key, pending_dek_->first);
  rocksdb::WriteOptions wo;
  wo.sync = true;  // the wrapped key must be durable before any block sealed with it
  FERRY_RETURN_IF_ERROR(fromRocks(db_->Put(wo, meta_cf_, key, pending_dek_->second), "storing the data key"));
  pending_dek_.reset();
  return Status::ok();
}

Status DiskBuffer::rebuildIndexFromBlocks() {
  index_.clear();
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, blocks_cf_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().size() != 8) continue;
    uint64_t seq = readU64(std::string_view(it->key().data(), 8));
    auto h = BlockCodec::peekHeader(std::string_view(it->value().data(), it->value().size()));
    if (!h.isOk()) continue;  // served later as damaged
    index_.push_back({seq, h->record_count, static_cast<uint32_t>(it->value().size()), h->created_ms});
  }
  if (!it->status().ok()) {
    logError("buffer", "some blocks could not be scanned while rebuilding the index: ", it->status().ToString());
  }
  return Status::ok();
}

void DiskBuffer::updateGaugesLocked() { bytes_gauge_.set(static_cast<double>(bytes_)); }

Status DiskBuffer::setOutputs(std::span<const std::string> outputs) {
  std::lock_guard write_lock(cursor_write_mu_);
  rocksdb::WriteBatch batch;
  {
    std::lock_guard lock(mu_);
    std::map<std::string, Cursor, std::less<>> next;
    for (const std::string& name : outputs) {
      auto it = cursors_.find(name);
      if (it != cursors_.end()) {
        next[name] = it->second;
        continue;
      }
      // A new output starts at the tail: it sees what is accepted from now on.
      Cursor c;
      c.seq = next_seq_ - 1;
      std::string v;
      putU64(v, c.seq);
      batch.Put(meta_cf_, "cursor/" + name, v);
      next[name] = std::move(c);
    }
    for (const auto& [name, c] : cursors_) {
      if (!next.count(name)) {
        batch.Delete(meta_cf_, "cursor/" + name);
        logInfo("buffer", "output ", name, " is no longer configured; its cursor (", c.seq, ") is removed");
      }
    }
    cursors_ = std::move(next);
    releaseLocked(&batch);
    updateGaugesLocked();
  }
  rocksdb::WriteOptions wo;
  wo.sync = options_.fsync;
  return fromRocks(db_->Write(wo, &batch), "declaring outputs");
}

void DiskBuffer::dropFrontLocked(void* wb, std::string_view reason) {
  auto* batch = static_cast<rocksdb::WriteBatch*>(wb);
  const IndexEntry e = index_.front();
  index_.pop_front();
  drops_.drop(reason, e.records, reason == "max_age" ? "older than buffer.max_age" : "buffer.max_bytes reached");
  bytes_ -= e.bytes;
  records_ -= e.records;
  const std::string from = seqKey(e.seq);
  const std::string to = seqKey(e.seq + 1);
  batch->DeleteRange(blocks_cf_, from, to);
  batch->DeleteRange(index_cf_, from, to);
  unwritten_evictions_.push_back(e.seq);
  deleted_below_ = std::max(deleted_below_, e.seq + 1);
  released_since_reclaim_ += e.bytes;
}

void DiskBuffer::expireLocked(void* wb) {
  if (options_.max_age <= Duration::zero()) return;
  const int64_t cutoff =
      clock_.wallMs() - std::chrono::duration_cast<std::chrono::milliseconds>(options_.max_age).count();
  while (!index_.empty() && index_.front().created_ms < cutoff) dropFrontLocked(wb, "max_age");
}

void DiskBuffer::releaseLocked(void* wb) {
  if (cursors_.empty()) return;
  auto* batch = static_cast<rocksdb::WriteBatch*>(wb);
  uint64_t slowest = UINT64_MAX;
  for (const auto& [name, c] : cursors_) slowest = std::min(slowest, c.seq);
  bool freed = false;
  while (!index_.empty() && index_.front().seq <= slowest) {
    bytes_ -= index_.front().bytes;
    records_ -= index_.front().records;
    released_since_reclaim_ += index_.front().bytes;
    index_.pop_front();
    freed = true;
  }
  const uint64_t end = std::min(slowest, next_seq_ - 1) + 1;
  if (end > deleted_below_) {
    const std::string from = seqKey(deleted_below_);
    const std::string to = seqKey(end);
    batch->DeleteRange(blocks_cf_, from, to);
    batch->DeleteRange(index_cf_, from, to);
    deleted_below_ = end;
  }
  if (freed) space_cv_.notify_all();
}

Status DiskBuffer::append(std::span<Block> blocks, Duration wait) {
  if (options_.read_only) return Status(StatusCode::kFailedPrecondition, "buffer opened read-only");
  // Seal outside the lock (only this thread appends, so next_seq_ is ours to plan with).
  uint64_t seq;
  {
    std::lock_guard lock(mu_);
    seq = next_seq_;
  }
  const uint64_t first_seq = seq;
  // Nothing is sealed under a data key that is not stored yet (a failed store is retried).
  FERRY_RETURN_IF_ERROR(storePendingDataKey());
  if (keyring_.enabled() && keyring_.sealedUnderCurrent() + blocks.size() > options_.rotate_data_key_after) {
    FERRY_RETURN_IF_ERROR(newDataKey());
    logInfo("buffer", "rotated the data key after ", options_.rotate_data_key_after, " blocks");
  }
  std::vector<std::string> sealed;
  sealed.reserve(blocks.size());
  std::vector<size_t> stored;  // indexes of blocks with records
  uint64_t total = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (blocks[i].records.empty()) continue;
    blocks[i].seq = seq;
    sealed.emplace_back();
    Status sealed_ok = writer_codec_->seal(blocks[i], &sealed.back());
    if (sealed_ok.isOk() && sealed.back().size() > options_.max_bytes) {
      sealed_ok = invalidArgument("a block of " + std::to_string(sealed.back().size()) +
                                  " stored bytes is larger than buffer.max_bytes");
    }
    if (sealed_ok.code() == StatusCode::kInvalidArgument) {
      // This block can never be stored; the others in the group still are.
      drops_.drop("too_large", blocks[i].records.size(), sealed_ok.message());
      sealed.pop_back();
      continue;
    }
    FERRY_RETURN_IF_ERROR(sealed_ok);
    ++seq;
    total += sealed.back().size();
    stored.push_back(i);
  }

  rocksdb::WriteBatch batch;
  std::unique_lock lock(mu_);
  // Evictions whose write failed before (disk full): their blocks are out of the index
  // already; delete them for real with this write.
  for (uint64_t q : unwritten_evictions_) {
    batch.DeleteRange(blocks_cf_, seqKey(q), seqKey(q + 1));
    batch.DeleteRange(index_cf_, seqKey(q), seqKey(q + 1));
  }
  expireLocked(&batch);
  size_t keep = stored.size();
  if (bytes_ + total > options_.max_bytes) {
    switch (options_.when_full) {
      case WhenFull::kBlock: {
        const auto deadline = std::chrono::steady_clock::now() + wait;
        while (bytes_ + total > options_.max_bytes && !interrupted_) {
          if (space_cv_.wait_until(lock, deadline) == std::cv_status::timeout) break;
        }
        if (interrupted_) return cancelled("buffer is shutting down");
        if (bytes_ + total > options_.max_bytes) {
          // Expired/evicted deletes already in `batch` must not be lost with the refusal.
          if (batch.Count() > 0 && db_->Write(rocksdb::WriteOptions(), &batch).ok()) unwritten_evictions_.clear();
          return resourceExhausted("buffer full (" + formatSize(options_.max_bytes) + ")");
        }
        break;
      }
      case WhenFull::kDropOldest:
        while (!index_.empty() && bytes_ + total > options_.max_bytes) dropFrontLocked(&batch, "drop_oldest");
        break;
      case WhenFull::kDropNewest: {
        uint64_t room = options_.max_bytes - std::min(bytes_, options_.max_bytes);
        uint64_t used = 0;
        keep = 0;
        while (keep < stored.size() && used + sealed[keep].size() <= room) used += sealed[keep++].size();
        for (size_t j = keep; j < stored.size(); ++j) {
          drops_.drop("drop_newest", blocks[stored[j]].records.size(), "buffer.max_bytes reached");
        }
        break;
      }
    }
  }
  std::vector<IndexEntry> added;
  for (size_t j = 0; j < keep; ++j) {
    const Block& b = blocks[stored[j]];
    const std::string key = seqKey(b.seq);
    batch.Put(blocks_cf_, key, sealed[j]);
    batch.Put(index_cf_, key, indexValue(b, sealed[j].size()));
    added.push_back({b.seq, static_cast<uint32_t>(b.records.size()), static_cast<uint32_t>(sealed[j].size()),
                     b.created_ms});
  }
  // Source checkpoints of every block, including dropped ones (their records were consumed).
  for (Block& b : blocks) {
    for (const auto& [k, v] : b.checkpoints) batch.Put(meta_cf_, "source/" + k, v);
  }
  // Sequence numbers handed out are never handed out again, even when every block is
  // released: the floor is stored with the blocks.
  // Stored blocks have consecutive sequences (blocks dropped by drop_newest are the last
  // ones planned and give theirs back), so a hole in the log always means lost data.
  const uint64_t new_next = added.empty() ? first_seq : added.back().seq + 1;
  if (added.empty()) {
    std::string floor;
    putU64(floor, new_next - 1);
    batch.Put(meta_cf_, "seq_floor", floor);
  }
  lock.unlock();

  rocksdb::WriteOptions wo;
  wo.sync = options_.fsync;
  Status st = fromRocks(db_->Write(wo, &batch), "appending to the buffer");
  if (!st.isOk()) return st;  // the writer retries and logs (rate-limited); evictions stay pending
  lock.lock();
  unwritten_evictions_.clear();
  for (const IndexEntry& e : added) {
    index_.push_back(e);
    bytes_ += e.bytes;
    records_ += e.records;
  }
  next_seq_ = new_next;
  if (index_.empty()) deleted_below_ = std::max(deleted_below_, next_seq_);
  updateGaugesLocked();
  lock.unlock();
  data_cv_.notify_all();
  for (Block& b : blocks) b.checkpoints.clear();
  return Status::ok();
}

std::unique_ptr<BlockCodec> DiskBuffer::takeCodec() {
  {
    std::lock_guard lock(codec_mu_);
    if (!spare_codecs_.empty()) {
      auto c = std::move(spare_codecs_.back());
      spare_codecs_.pop_back();
      return c;
    }
  }
  CodecOptions co;
  co.compress = options_.compress;
  co.zstd_level = options_.zstd_level;
  co.keyring = &keyring_;
  return std::make_unique<BlockCodec>(co);
}

void DiskBuffer::giveCodec(std::unique_ptr<BlockCodec> codec) {
  std::lock_guard lock(codec_mu_);
  spare_codecs_.push_back(std::move(codec));
}

void DiskBuffer::quarantine(uint64_t seq, const std::string& stored, const std::string& reason) {
  if (options_.read_only) return;
  rocksdb::WriteBatch batch;
  const std::string key = seqKey(seq);
  batch.Put(quarantine_cf_, key, stored);
  batch.Put(meta_cf_, "quarantine/" + key, reason);
  batch.Delete(blocks_cf_, key);
  batch.Delete(index_cf_, key);
  rocksdb::WriteOptions wo;
  wo.sync = options_.fsync;
  rocksdb::Status s = db_->Write(wo, &batch);
  if (!s.ok()) logError("buffer", "quarantining block ", seq, " failed: ", s.ToString());
  {
    std::lock_guard lock(mu_);
    auto it = std::lower_bound(index_.begin(), index_.end(), seq,
                               [](const IndexEntry& e, uint64_t q) { return e.seq < q; });
    if (it != index_.end() && it->seq == seq) {
      bytes_ -= it->bytes;
      records_ -= it->records;
      index_.erase(it);
    }
    ++quarantined_;
    updateGaugesLocked();
  }
  quarantined_counter_.add();
  logError("buffer", "block ", seq, " quarantined: ", reason, "; the other blocks are served (see `ferry buffer check`)");
}

Result<std::vector<BlockRef>> DiskBuffer::read(std::string_view output, uint64_t after_seq, size_t max_blocks,
                                               Duration wait) {
  std::vector<uint64_t> seqs;
  {
    std::unique_lock lock(mu_);
    const auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
      if (interrupted_) return cancelled("buffer is shutting down");
      auto c = cursors_.find(output);
      if (c == cursors_.end()) return notFound("output " + std::string(output) + " is not declared");
      after_seq = std::max(after_seq, c->second.seq);
      auto it = std::upper_bound(index_.begin(), index_.end(), after_seq,
                                 [](uint64_t s, const IndexEntry& e) { return s < e.seq; });
      for (; it != index_.end() && seqs.size() < max_blocks; ++it) seqs.push_back(it->seq);
      if (!seqs.empty()) break;
      if (data_cv_.wait_until(lock, deadline) == std::cv_status::timeout) return std::vector<BlockRef>{};
    }
  }
  std::vector<BlockRef> out;
  out.reserve(seqs.size());
  // One MultiGet for the run: a damaged value fails alone, the others are served.
  std::vector<std::string> keys;
  keys.reserve(seqs.size());
  for (uint64_t q : seqs) keys.push_back(seqKey(q));
  std::vector<rocksdb::Slice> key_slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  rocksdb::ReadOptions ro;
  db_->MultiGet(ro, blocks_cf_, key_slices.size(), key_slices.data(), values.data(), statuses.data());
  auto codec = takeCodec();
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (statuses[i].IsNotFound()) continue;  // released or dropped meanwhile
    if (statuses[i].IsCorruption()) {
      // Keep what is there for a later look: the same read without checksum verification.
      rocksdb::ReadOptions raw_ro;
      raw_ro.verify_checksums = false;
      std::string raw;
      (void)db_->Get(raw_ro, blocks_cf_, keys[i], &raw);
      quarantine(seqs[i], raw, "RocksDB checksum failed: " + statuses[i].ToString());
      continue;
    }
    if (!statuses[i].ok()) {
      // An I/O error may pass (EIO, too many open files): serve what came before, in
      // order, and try this block again on the next read.
      logError("buffer", "reading block ", seqs[i], " failed: ", statuses[i].ToString(), "; will retry");
      break;
    }
    std::string_view stored(values[i].data(), values[i].size());
    auto block = codec->open(stored, seqs[i]);
    if (!block.isOk()) {
      quarantine(seqs[i], std::string(stored), block.status().message());
      continue;
    }
    out.push_back(std::make_shared<const Block>(std::move(block).value()));
  }
  giveCodec(std::move(codec));
  return out;
}

Status DiskBuffer::ack(std::string_view output, uint64_t seq, std::string_view commit_state) {
  if (options_.read_only) return Status(StatusCode::kFailedPrecondition, "buffer opened read-only");
  Status st = storeCursor(output, seq, commit_state);
  if (st.isOk()) maybeReclaim();
  return st;
}

Status DiskBuffer::storeCursor(std::string_view output, uint64_t seq, std::string_view commit_state,
                               const std::function<Status(void* write_batch)>& extra) {
  // Cursor writes are serialised with their RocksDB write: a release computed from another
  // output's cursor must not reach the disk before that cursor does.
  std::lock_guard write_lock(cursor_write_mu_);
  return storeCursorLocked(output, seq, commit_state, extra, nullptr);
}

Status DiskBuffer::storeCursorLocked(std::string_view output, uint64_t seq, std::string_view commit_state,
                                     const std::function<Status(void* write_batch)>& extra, bool* wrote) {
  if (wrote != nullptr) *wrote = false;
  rocksdb::WriteBatch batch;
  Cursor before;
  {
    std::lock_guard lock(mu_);
    auto c = cursors_.find(output);
    if (c == cursors_.end()) return notFound("output " + std::string(output) + " is not declared");
    if (seq < c->second.seq || (seq == c->second.seq && commit_state.empty())) return Status::ok();
    if (seq >= next_seq_) return invalidArgument("ack of sequence " + std::to_string(seq) + " not yet written");
    if (extra) FERRY_RETURN_IF_ERROR(extra(&batch));
    before = c->second;
    c->second.seq = seq;
    if (!commit_state.empty()) c->second.state = commit_state;
    std::string v;
    putU64(v, seq);
    v += c->second.state;
    batch.Put(meta_cf_, "cursor/" + std::string(output), v);
    releaseLocked(&batch);
    updateGaugesLocked();
  }
  // Not synced: losing an ack on power loss only replays blocks (at-least-once).
  Status st = fromRocks(db_->Write(rocksdb::WriteOptions(), &batch), "storing the cursor of " + std::string(output));
  if (!st.isOk()) {
    // The cursor stays where the disk has it, so the ack (or dead letter) can be retried.
    std::lock_guard lock(mu_);
    auto c = cursors_.find(output);
    if (c != cursors_.end() && c->second.seq == seq) c->second = before;
    return st;
  }
  if (wrote != nullptr) *wrote = true;
  return st;
}

// Adds a dead-letter entry (and the evictions the bound asks for) to `batch`; the queue's
// bookkeeping changes only in commitDeadLetterLocked(), once the write succeeded.
// cursor_write_mu_ is held.
DiskBuffer::PendingDeadLetterEntry DiskBuffer::planDeadLetterLocked(void* wb, std::string_view output,
                                                                    std::string_view reason, std::string_view stored,
                                                                    uint64_t records) {
  auto& batch = *static_cast<rocksdb::WriteBatch*>(wb);
  PendingDeadLetterEntry e;
  const std::string v = encodeDeadLetter(clock_.wallMs(), output, reason, stored);
  e.id = next_dead_letter_id_;
  e.bytes = v.size();
  e.records = records;
  batch.Put(dead_letters_cf_, seqKey(e.id), v);
  const uint64_t cap = deadLetterCap();
  uint64_t total = dead_letter_bytes_.load() + e.bytes;
  for (const DeadLetterEntry& old : dead_letters_) {
    if (total <= cap) break;
    batch.Delete(dead_letters_cf_, seqKey(old.id));
    total -= old.bytes;
    e.evicted_bytes += old.bytes;
    e.evicted_records += old.records;
    ++e.evict;
  }
  return e;
}

void DiskBuffer::commitDeadLetterLocked(const PendingDeadLetterEntry& e) {
  next_dead_letter_id_ = e.id + 1;
  dead_letters_.erase(dead_letters_.begin(), dead_letters_.begin() + static_cast<std::ptrdiff_t>(e.evict));
  dead_letters_.push_back({e.id, e.bytes, e.records});
  dead_letter_bytes_ += e.bytes;
  dead_letter_bytes_ -= e.evicted_bytes;
  dead_letter_records_ += e.records;
  dead_letter_records_ -= e.evicted_records;
  if (e.evicted_records > 0) {
    drops_.drop("dead_letter_overflow", e.evicted_records,
                "the dead-letter queue is full (" + formatSize(deadLetterCap()) + "); its oldest entries made room");
  }
}

Result<uint64_t> DiskBuffer::deadLetter(std::string_view output, const Block& block, std::string_view reason,
                                        std::string_view commit_state) {
  if (options_.read_only) return Status(StatusCode::kFailedPrecondition, "buffer opened read-only");
  if (dead_letters_cf_ == nullptr) return Status(StatusCode::kFailedPrecondition, "no dead-letter queue");
  // The stored form of the block: still there, the cursor has not passed it. Gone only if
  // a bound dropped it meanwhile; then it was counted as dropped already.
  std::string stored;
  rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), blocks_cf_, seqKey(block.seq), &stored);
  if (!got.ok() && !got.IsNotFound()) return fromRocks(got, "reading block " + std::to_string(block.seq));
  // The queue's bookkeeping is guarded by cursor_write_mu_, held across the write.
  std::lock_guard write_lock(cursor_write_mu_);
  PendingDeadLetterEntry entry;
  bool wrote = false;
  Status st = storeCursorLocked(
      output, block.seq, commit_state,
      [&](void* wb) -> Status {
        if (got.ok()) entry = planDeadLetterLocked(wb, output, reason, stored, block.records.size());
        return Status::ok();
      },
      &wrote);
  if (!st.isOk()) return st;
  if (!wrote || entry.id == 0) return uint64_t{0};  // already acked, or the block was dropped by a bound
  commitDeadLetterLocked(entry);
  return entry.id;
}

Result<uint64_t> DiskBuffer::keepDeadLetter(std::string_view source, const Block& block, std::string_view reason) {
  if (options_.read_only) return Status(StatusCode::kFailedPrecondition, "buffer opened read-only");
  if (dead_letters_cf_ == nullptr) return Status(StatusCode::kFailedPrecondition, "no dead-letter queue");
  // Sealed like a log block (the writer's codec: this is the writer thread), with seq 0.
  FERRY_RETURN_IF_ERROR(storePendingDataKey());
  Block b;
  b.created_ms = block.created_ms;
  b.lineage = block.lineage;
  b.records.appendAll(block.records);
  std::string sealed;
  FERRY_RETURN_IF_ERROR(writer_codec_->seal(b, &sealed));
  std::lock_guard write_lock(cursor_write_mu_);
  rocksdb::WriteBatch batch;
  PendingDeadLetterEntry entry = planDeadLetterLocked(&batch, source, reason, sealed, b.records.size());
  rocksdb::WriteOptions wo;
  wo.sync = options_.fsync;
  FERRY_RETURN_IF_ERROR(fromRocks(db_->Write(wo, &batch), "keeping a dead letter"));
  commitDeadLetterLocked(entry);
  return entry.id;
}

uint64_t DiskBuffer::deadLetterCap() const { return std::max<uint64_t>(options_.max_bytes / 8, 1u << 20); }

Status DiskBuffer::loadDeadLetters() {
  if (dead_letters_cf_ == nullptr) return Status::ok();
  std::lock_guard write_lock(cursor_write_mu_);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), dead_letters_cf_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().size() != 8) continue;
    const uint64_t id = readU64(std::string_view(it->key().data(), 8));
    std::string_view v(it->value().data(), it->value().size());
    uint64_t records = 0;
    // Count records from the stored block's header (no keys needed).
    DeadLetterValue d;
    if (decodeDeadLetter(v, &d)) {
      auto h = BlockCodec::peekHeader(d.stored);
      if (h.isOk()) records = h->record_count;
    }
    dead_letters_.push_back({id, v.size(), records});
    dead_letter_bytes_ += v.size();
    dead_letter_records_ += records;
    next_dead_letter_id_ = id + 1;
  }
  return fromRocks(it->status(), "reading the dead-letter queue");
}

Status DiskBuffer::forEachDeadLetter(const std::function<void(const DeadLetter&)>& fn) const {
  if (dead_letters_cf_ == nullptr) return Status::ok();
  auto* self = const_cast<DiskBuffer*>(this);  // codecs are pooled scratch state
  auto codec = self->takeCodec();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), dead_letters_cf_));
  Status result;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view v(it->value().data(), it->value().size());
    DeadLetter d;
    d.id = it->key().size() == 8 ? readU64(std::string_view(it->key().data(), 8)) : 0;
    DeadLetterValue parsed;
    if (!decodeDeadLetter(v, &parsed)) {
      result = corruption("dead letter " + std::to_string(d.id) + " is truncated");
      continue;
    }
    d.at_ms = parsed.at_ms;
    d.output.assign(parsed.output);
    d.reason.assign(parsed.reason);
    const std::string_view stored = parsed.stored;
    auto header = BlockCodec::peekHeader(stored);
    if (!header.isOk()) {
      result = header.status();
      continue;
    }
    auto block = codec->open(stored, header->seq);
    if (!block.isOk()) {
      logWarn("buffer", "dead letter ", d.id, " skipped: ", block.status().message());
      result = block.status();
      continue;
    }
    d.block = std::move(*block);
    fn(d);
  }
  self->giveCodec(std::move(codec));
  if (!it->status().ok()) return fromRocks(it->status(), "reading the dead-letter queue");
  return result;
}

void DiskBuffer::maybeReclaim() {
  {
    std::lock_guard lock(mu_);
    const auto now = clock_.now();
    if (released_since_reclaim_ < (64u << 20) || now - last_reclaim_ < std::chrono::seconds(10)) return;
    last_reclaim_ = now;
    released_since_reclaim_ = 0;
  }
  if (reclaiming_.exchange(true)) return;
  (void)compact();
  reclaiming_ = false;
}

Status DiskBuffer::compact() {
  if (options_.read_only) return Status::ok();
  uint64_t below;
  {
    std::lock_guard lock(mu_);
    below = deleted_below_;
  }
  const std::string end = seqKey(below);
  rocksdb::Slice end_slice(end);
  // Whole SST files below the slowest cursor go at once, without rewriting anything.
  for (auto* cf : {blocks_cf_, index_cf_}) {
    rocksdb::Status s = rocksdb::DeleteFilesInRange(db_.get(), cf, nullptr, &end_slice, false);
    if (!s.ok()) return fromRocks(s, "reclaiming released blocks");
    rocksdb::CompactRangeOptions cro;
    s = db_->CompactRange(cro, cf, nullptr, &end_slice);
    if (!s.ok()) return fromRocks(s, "compacting released blocks");
  }
  return Status::ok();
}

uint64_t DiskBuffer::cursor(std::string_view output) const {
  std::lock_guard lock(mu_);
  auto c = cursors_.find(output);
  return c == cursors_.end() ? 0 : c->second.seq;
}

std::string DiskBuffer::commitState(std::string_view output) const {
  std::lock_guard lock(mu_);
  auto c = cursors_.find(output);
  return c == cursors_.end() ? std::string() : c->second.state;
}

std::optional<std::string> DiskBuffer::checkpoint(std::string_view key) const {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_cf_, "source/" + std::string(key), &v);
  if (!s.ok()) return std::nullopt;
  return v;
}

std::vector<std::pair<std::string, std::string>> DiskBuffer::checkpoints(std::string_view prefix) const {
  std::vector<std::pair<std::string, std::string>> out;
  const std::string full = "source/" + std::string(prefix);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_cf_));
  for (it->Seek(full); it->Valid() && it->key().starts_with(full); it->Next()) {
    out.emplace_back(it->key().ToString().substr(7), it->value().ToString());
  }
  return out;
}

BufferStats DiskBuffer::stats() const {
  std::lock_guard lock(mu_);
  BufferStats s;
  s.blocks = index_.size();
  s.records = records_;
  s.bytes = bytes_;
  s.max_bytes = options_.max_bytes;
  s.next_seq = next_seq_;
  s.dead_letter_records = dead_letter_records_.load(std::memory_order_relaxed);
  s.dead_letter_bytes = dead_letter_bytes_.load(std::memory_order_relaxed);
  for (const auto& [name, c] : cursors_) {
    OutputBacklog o;
    o.output = name;
    o.cursor = c.seq;
    auto it = std::upper_bound(index_.begin(), index_.end(), c.seq,
                               [](uint64_t q, const IndexEntry& e) { return q < e.seq; });
    if (it != index_.end()) o.oldest_ms = it->created_ms;
    for (; it != index_.end(); ++it) {
      ++o.blocks;
      o.records += it->records;
      o.bytes += it->bytes;
    }
    s.outputs.push_back(std::move(o));
  }
  return s;
}

void DiskBuffer::interrupt() {
  {
    std::lock_guard lock(mu_);
    interrupted_ = true;
  }
  data_cv_.notify_all();
  space_cv_.notify_all();
}

std::vector<std::string> DiskBuffer::knownOutputs() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, c] : cursors_) out.push_back(name);
  return out;
}

uint64_t DiskBuffer::quarantinedBlocks() const {
  std::lock_guard lock(mu_);
  return quarantined_;
}

CheckReport DiskBuffer::check() {
  CheckReport r;
  std::vector<uint64_t> seqs;
  {
    std::lock_guard lock(mu_);
    r.quarantined = quarantined_;
    for (const IndexEntry& e : index_) seqs.push_back(e.seq);
  }
  // Blocks the index does not know (it is written in the same batch, so none expected).
  {
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, blocks_cf_));
    size_t i = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      uint64_t seq = readU64(std::string_view(it->key().data(), 8));
      while (i < seqs.size() && seqs[i] < seq) ++i;
      if (i == seqs.size() || seqs[i] != seq) {
        ++r.index_mismatches;
        r.problems.push_back("block " + std::to_string(seq) + " is stored but not indexed");
      }
    }
    if (!it->status().ok()) r.problems.push_back("scan stopped early: " + it->status().ToString());
  }
  {
    std::lock_guard lock(mu_);
    r.blocks_missing = missing_blocks_;
    for (const auto& [a, b] : missing_ranges_) {
      r.problems.push_back("blocks " + std::to_string(a) + ".." + std::to_string(b) +
                           " are missing (a damaged write-ahead log record was skipped)");
    }
  }
  auto codec = takeCodec();
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  ro.fill_cache = false;
  std::string value;
  for (uint64_t seq : seqs) {
    rocksdb::Status s = db_->Get(ro, blocks_cf_, seqKey(seq), &value);
    if (s.IsNotFound()) {
      ++r.index_mismatches;
      r.problems.push_back("block " + std::to_string(seq) + " is indexed but not stored");
      continue;
    }
    if (!s.ok()) {
      ++r.blocks_damaged;
      r.problems.push_back("block " + std::to_string(seq) + ": RocksDB cannot read it: " + s.ToString());
      continue;
    }
    auto block = codec->open(value, seq);
    if (block.isOk()) {
      ++r.blocks_ok;
      r.records_ok += block->records.size();
    } else if (block.status().code() == StatusCode::kNotFound) {
      ++r.blocks_unknown_key;
      r.problems.push_back("block " + std::to_string(seq) + ": " + block.status().message());
    } else {
      ++r.blocks_damaged;
      r.problems.push_back("block " + std::to_string(seq) + ": " + block.status().message());
    }
  }
  giveCodec(std::move(codec));
  return r;
}

Status DiskBuffer::forEachBlock(const std::function<void(const Block&, const std::vector<std::string>&)>& fn) {
  std::map<std::string, uint64_t> cursors;
  {
    std::lock_guard lock(mu_);
    for (const auto& [n, c] : cursors_) cursors[n] = c.seq;
  }
  auto codec = takeCodec();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), blocks_cf_));
  Status result;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    uint64_t seq = readU64(std::string_view(it->key().data(), 8));
    auto block = codec->open(std::string_view(it->value().data(), it->value().size()), seq);
    if (!block.isOk()) {
      logWarn("buffer", "block ", seq, " skipped: ", block.status().message());
      result = block.status();
      continue;
    }
    std::vector<std::string> pending;
    for (const auto& [n, c] : cursors) {
      if (c < seq) pending.push_back(n);
    }
    fn(*block, pending);
  }
  giveCodec(std::move(codec));
  if (!it->status().ok()) return fromRocks(it->status(), "reading the buffer");
  return result;
}

}  // namespace ferry
