// Test doubles for the core: a manual clock, a capturing emitter, a capturing output and
// a small plugin table. Thread-safety: noted per class.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "ferry/input.h"
#include "ferry/output.h"
#include "ferry/plugin.h"

namespace ferry::test {

// Time moves only when advance() is called. Any thread.
class ManualClock final : public Clock {
 public:
  SteadyTime now() const override { return SteadyTime(Duration(ns_.load())); }
  int64_t wallMs() const override { return 1'764'000'000'000 + ns_.load() / 1'000'000; }
  void advance(Duration d) { ns_.fetch_add(d.count()); }

 private:
  std::atomic<int64_t> ns_{1'000'000'000};
};

// Keeps every emitted record. Any thread.
class CaptureEmitter final : public Emitter {
 public:
  Status emit(const RecordBatch& batch, std::string_view stream = {}) override {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < batch.size(); ++i) records.emplace_back(batch[i]);
    streams.emplace_back(stream);
    ++batches;
    return next_status;
  }
  Status emitWithCheckpoint(const RecordBatch& batch, const SourceCheckpoint& cp,
                            std::string_view stream = {}) override {
    Status st = emit(batch, stream);
    if (st.isOk()) {
      std::lock_guard lock(mu_);
      committed[cp.key] = cp.value;
    }
    return st;
  }
  // Waits for nothing: answers like emit().
  Status tryEmit(const RecordBatch& batch, Duration, std::string_view stream = {}) override {
    return emit(batch, stream);
  }
  // Room as next_status says: refused when it is kResourceExhausted or kCancelled.
  Status waitForRoom(uint64_t, Duration) override {
    std::lock_guard lock(mu_);
    if (next_status.code() == StatusCode::kResourceExhausted || next_status.code() == StatusCode::kCancelled) {
      return next_status;
    }
    return Status::ok();
  }
  // Tickets count tracked emits; a ticket is committed once commit_through reaches it
  // (tests move it; auto_commit commits every accepted emit at once).
  Result<uint64_t> emitTracked(const RecordBatch& batch, std::string_view stream = {},
                               Duration = Duration::max()) override {
    Status st = emit(batch, stream);
    if (!st.isOk()) return st;
    std::lock_guard lock(mu_);
    const uint64_t ticket = ++tickets;
    if (auto_commit) commit_through = ticket;
    return ticket;
  }
  Status waitCommitted(uint64_t ticket, Duration d) override {
    std::unique_lock lock(mu_);
    commit_cv.wait_for(lock, d, [&] { return commit_through >= ticket || stop; });
    if (commit_through >= ticket) return Status::ok();
    if (stop) return cancelled("stopping");
    return Status(StatusCode::kDeadlineExceeded, "not committed yet");
  }
  void commitThrough(uint64_t ticket) {
    {
      std::lock_guard lock(mu_);
      commit_through = ticket;
    }
    commit_cv.notify_all();
  }
  Status deadLetter(const RecordBatch& batch, std::string_view reason) override {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < batch.size(); ++i) dead_letters.emplace_back(std::string(reason), std::string(batch[i]));
    return Status::ok();
  }
  void countDropped(std::string_view reason, uint64_t n = 1) override {
    std::lock_guard lock(mu_);
    dropped[std::string(reason)] += n;
  }
  const CheckpointReader& checkpoints() const override { return reader_; }
  bool stopping() const override { return stop; }
  bool waitFor(Duration) override { return stop; }

  // Checkpoints "committed" so far; tests may preset them to simulate a restart.
  std::map<std::string, std::string> committed;
  std::vector<std::pair<std::string, std::string>> dead_letters;  // (reason, record)
  std::map<std::string, uint64_t> dropped;                        // reason → records
  uint64_t tickets = 0;
  uint64_t commit_through = 0;
  bool auto_commit = true;
  std::condition_variable commit_cv;

  std::mutex mu_;
  std::vector<std::string> records;
  std::vector<std::string> streams;
  int batches = 0;
  Status next_status;
  bool stop = false;

 private:
  class Reader final : public CheckpointReader {
   public:
    explicit Reader(const CaptureEmitter& e) : e_(e) {}
    std::optional<std::string> get(std::string_view key) const override {
      auto it = e_.committed.find(std::string(key));
      if (it == e_.committed.end()) return std::nullopt;
      return it->second;
    }
    std::vector<std::pair<std::string, std::string>> list(std::string_view prefix) const override {
      std::vector<std::pair<std::string, std::string>> out;
      for (const auto& [k, v] : e_.committed) {
        if (k.starts_with(prefix)) out.emplace_back(k, v);
      }
      return out;
    }

   private:
    const CaptureEmitter& e_;
  };
  Reader reader_{*this};
};

// Records what it was sent; answers from a script (then delivered). Sender thread + test.
class CaptureOutput final : public Output {
 public:
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::string> records;  // delivered, in order
    std::vector<uint64_t> seqs;        // every send attempt's block seq
    std::vector<SendResult> script;    // answers for the next sends, front first
    bool closed = false;
    size_t waitFor(size_t n, Duration timeout);
  };
  explicit CaptureOutput(Shared& shared) : s_(shared) {}
  SendResult send(const Block& block, SteadyTime) override;
  void close() override;

 private:
  Shared& s_;
};

}  // namespace ferry::test
