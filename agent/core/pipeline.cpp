#include "agent/core/pipeline.h"

#include <algorithm>

#include "ferry/log.h"

namespace ferry {

// Checkpoints of one input: the buffer's, under the prefix "<input>/".
class ScopedCheckpoints final : public CheckpointReader {
 public:
  ScopedCheckpoints(const Buffer& buffer, std::string prefix) : buffer_(buffer), prefix_(std::move(prefix)) {}
  std::optional<std::string> get(std::string_view key) const override {
    return buffer_.checkpoint(prefix_ + std::string(key));
  }
  std::vector<std::pair<std::string, std::string>> list(std::string_view prefix) const override {
    auto all = buffer_.checkpoints(prefix_ + std::string(prefix));
    for (auto& [k, v] : all) k.erase(0, prefix_.size());
    return all;
  }

 private:
  const Buffer& buffer_;
  const std::string prefix_;
};

class Pipeline::InputEmitter final : public Emitter {
 public:
  InputEmitter(Pipeline& p, std::string input, std::string stream, Counter& records, std::string route = {},
               bool until_flush = false)
      : pipeline_(p),
        input_(std::move(input)),
        stream_(std::move(stream)),
        route_(std::move(route)),
        until_flush_(until_flush),
        records_(records),
        checkpoints_(p.buffer_, input_ + "/") {}

  Status emit(const RecordBatch& batch, std::string_view stream) override {
    return pipeline_.emit(*this, batch, streamOr(stream), nullptr);
  }
  Status emitWithCheckpoint(const RecordBatch& batch, const SourceCheckpoint& checkpoint,
                            std::string_view stream) override {
    return pipeline_.emit(*this, batch, streamOr(stream), &checkpoint);
  }
  Status tryEmit(const RecordBatch& batch, Duration wait, std::string_view stream) override {
    const SteadyTime deadline = SteadyTime(std::chrono::steady_clock::now().time_since_epoch()) + wait;
    return pipeline_.emit(*this, batch, streamOr(stream), nullptr, &deadline);
  }
  Status waitForRoom(uint64_t bytes, Duration wait) override { return pipeline_.waitForRoom(bytes, wait); }
  Result<uint64_t> emitTracked(const RecordBatch& batch, std::string_view stream, Duration wait) override {
    std::pair<uint64_t, uint64_t> range{0, 0};
    SteadyTime deadline{};
    if (wait != Duration::max()) deadline = SteadyTime(std::chrono::steady_clock::now().time_since_epoch()) + wait;
    FERRY_RETURN_IF_ERROR(pipeline_.emit(*this, batch, streamOr(stream), nullptr,
                                         wait == Duration::max() ? nullptr : &deadline, &range));
    std::lock_guard lock(tracked_mu_);
    tracked_.push_back(range);
    return range.second;
  }
  Status waitCommitted(uint64_t ticket, Duration d) override {
    std::pair<uint64_t, uint64_t> range{ticket, ticket};
    {
      std::lock_guard lock(tracked_mu_);
      for (const auto& r : tracked_) {
        if (r.second == ticket) range = r;
      }
    }
    Status st = pipeline_.waitCommitted(range, d);
    if (st.code() != StatusCode::kDeadlineExceeded) {
      // Settled: forget this ticket and every older one.
      std::lock_guard lock(tracked_mu_);
      while (!tracked_.empty() && tracked_.front().second <= ticket) tracked_.pop_front();
    }
    return st;
  }
  Status deadLetter(const RecordBatch& batch, std::string_view reason) override {
    return pipeline_.deadLetter(*this, batch, reason);
  }
  void countDropped(std::string_view reason, uint64_t n) override {
    if (n == 0) return;
    pipeline_.metrics_.counter("ferry_dropped_records_total", {{"reason", std::string(reason)}}).add(n);
    pipeline_.metrics_
        .counter("ferry_input_dropped_records_total", {{"input", input_}, {"reason", std::string(reason)}},
                 "records an input could not read from its source, by reason")
        .add(n);
  }
  const CheckpointReader& checkpoints() const override { return checkpoints_; }
  bool stopping() const override {
    std::lock_guard lock(pipeline_.mu_);
    return pipeline_.inputs_stopping_;
  }
  bool waitFor(Duration d) override {
    std::unique_lock lock(pipeline_.mu_);
    pipeline_.stop_cv_.wait_for(lock, d, [&] { return pipeline_.inputs_stopping_; });
    return pipeline_.inputs_stopping_;
  }

  std::string_view streamOr(std::string_view stream) const {
    return stream.empty() ? std::string_view(stream_) : stream;
  }

  Pipeline& pipeline_;
  std::mutex tracked_mu_;
  std::deque<std::pair<uint64_t, uint64_t>> tracked_;  // block ranges of unsettled tickets
  const std::string input_;
  const std::string stream_;
  const std::string route_;
  const bool until_flush_;  // accepts records after stopInputs() (tickEmitterFor)
  Counter& records_;
  ScopedCheckpoints checkpoints_;
};

Pipeline::Pipeline(Buffer& buffer, BatchingOptions options, std::string agent_id, uint64_t config_version,
                   MetricsRegistry& metrics, const Clock& clock)
    : buffer_(buffer),
      options_([&] {
        BatchingOptions o = options;
        if (o.max_records == 0) o.max_records = 1;
        if (o.max_bytes == 0) o.max_bytes = 1;
        if (o.staging_max_bytes == 0) o.staging_max_bytes = std::max<uint64_t>(4 * o.max_bytes, 1 << 20);
        return o;
      }()),
      agent_id_(std::move(agent_id)),
      config_version_(config_version),
      metrics_(metrics),
      clock_(clock) {}

Pipeline::~Pipeline() {
  if (writer_.joinable()) flushAndStop(clock_.now());
}

Emitter& Pipeline::emitterFor(const std::string& input, const std::string& stream) {
  Counter& c = metrics_.counter("ferry_input_records_total", {{"input", input}},
                                "records accepted from each input");
  emitters_.push_back(std::make_unique<InputEmitter>(*this, input, stream, c));
  return *emitters_.back();
}

Emitter& Pipeline::routedEmitterFor(const std::string& input, const std::string& route) {
  Counter& c = metrics_.counter("ferry_input_records_total", {{"input", input}},
                                "records accepted from each input");
  emitters_.push_back(std::make_unique<InputEmitter>(*this, input, input, c, route));
  return *emitters_.back();
}

Emitter& Pipeline::tickEmitterFor(const std::string& input) {
  Counter& c = metrics_.counter("ferry_input_records_total", {{"input", input}},
                                "records accepted from each input");
  emitters_.push_back(std::make_unique<InputEmitter>(*this, input, input, c, std::string(), true));
  return *emitters_.back();
}

void Pipeline::start() { writer_ = std::thread([this] { writerLoop(); }); }

void Pipeline::stopInputs() {
  {
    std::lock_guard lock(mu_);
    if (!inputs_stopping_) stopping_since_ = std::chrono::steady_clock::now();
    inputs_stopping_ = true;
  }
  stop_cv_.notify_all();
  space_cv_.notify_all();
  commit_cv_.notify_all();  // waitCommitted / deadLetter callers: see kStopGrace
}

void Pipeline::cutLocked(OpenBlock& open) {
  ++cut_count_;
  open.block.created_ms = clock_.wallMs();
  Lineage lineage = open.block.lineage;
  ready_.push_back(std::move(open.block));
  open.block = Block{};
  open.block.lineage = std::move(lineage);
}

Status Pipeline::emit(InputEmitter& from, const RecordBatch& batch, std::string_view stream,
                      const SourceCheckpoint* checkpoint, const SteadyTime* deadline,
                      std::pair<uint64_t, uint64_t>* cut_range) {
  if (batch.empty() && checkpoint == nullptr) {
    // Nothing to commit (every record was filtered): a ticket settled at once, whatever
    // happened to other inputs' blocks.
    if (cut_range != nullptr) *cut_range = {0, 0};
    return Status::ok();
  }
  std::unique_lock lock(mu_);
  // Back-pressure: wait for the writer to drain the staging area.
  // An emit with a deadline also waits while the buffer refuses appends (full): its caller
  // would rather push back on its source than have records wait in the stage.
  auto has_room = [&] {
    if (inputs_stopping_) return true;
    if (deadline != nullptr && buffer_full_) return false;
    return staged_bytes_ == 0 || staged_bytes_ + batch.bytes() <= options_.staging_max_bytes;
  };
  if (deadline == nullptr) {
    space_cv_.wait(lock, has_room);
  } else if (!space_cv_.wait_until(lock, std::chrono::steady_clock::time_point(deadline->time_since_epoch()),
                                   has_room)) {
    return resourceExhausted("the buffer takes no more records right now");
  }
  if (inputs_stopping_ && (!from.until_flush_ || writer_stopping_)) return cancelled("agent is stopping");
  const uint64_t first_cut = cut_count_ + 1;

  auto it = std::find_if(open_.begin(), open_.end(), [&](const OpenBlock& o) {
    return o.block.lineage.input == from.input_ && o.block.lineage.stream == stream;
  });
  if (it == open_.end()) {
    OpenBlock ob;
    ob.block.lineage = Lineage{agent_id_, from.input_, std::string(stream), config_version_, from.route_};
    open_.push_back(std::move(ob));
    it = std::prev(open_.end());
  }
  if (checkpoint != nullptr) {
    // A checkpointed batch is never split: its position must be committed with all of its
    // records, so they go into one block (cut the open block first if they do not fit).
    OpenBlock& ob = *it;
    RecordBatch& recs = ob.block.records;
    if (!recs.empty() && (recs.size() + batch.size() > options_.max_records ||
                          recs.bytes() + batch.bytes() > options_.max_bytes)) {
      cutLocked(ob);
    }
    if (recs.empty()) ob.first_record = clock_.now();
    recs.appendAll(batch);
    std::string key = from.input_ + "/" + checkpoint->key;
    auto& cps = ob.block.checkpoints;
    auto same = std::find_if(cps.begin(), cps.end(), [&](const auto& kv) { return kv.first == key; });
    if (same != cps.end()) {
      same->second = checkpoint->value;
    } else {
      cps.emplace_back(std::move(key), checkpoint->value);
    }
    if (recs.size() >= options_.max_records || recs.bytes() >= options_.max_bytes) cutLocked(ob);
  }
  size_t i = checkpoint != nullptr ? batch.size() : 0;
  while (i < batch.size()) {
    OpenBlock& ob = *it;
    RecordBatch& recs = ob.block.records;
    if (recs.empty()) {
      ob.first_record = clock_.now();
      recs.reserve(std::min<uint64_t>(options_.max_records, batch.size() - i), 0);
    }
    // Take as many records as fit under both limits (at least one, so a record larger
    // than max_bytes still travels, alone in its block).
    size_t room = static_cast<size_t>(options_.max_records - recs.size());
    size_t end = std::min(batch.size(), i + room);
    while (end > i + 1 && recs.bytes() + batch.rangeBytes(i, end) > options_.max_bytes) {
      // Binary search would be faster; batches larger than a block are rare.
      end = i + std::max<size_t>(1, (end - i) / 2);
    }
    if (!recs.empty() && recs.bytes() + batch.rangeBytes(i, end) > options_.max_bytes) {
      cutLocked(ob);
      continue;
    }
    recs.appendRange(batch, i, end);
    i = end;
    if (recs.size() >= options_.max_records || recs.bytes() >= options_.max_bytes) {
      cutLocked(ob);
    }
  }
  if (cut_range != nullptr) {
    // Cut now: the caller waits for the commit, max_wait would only delay it.
    if (!it->block.records.empty() || !it->block.checkpoints.empty()) cutLocked(*it);
    *cut_range = {first_cut, cut_count_};
  }
  staged_bytes_ += batch.bytes();
  from.records_.add(batch.size());
  lock.unlock();
  // Wake the writer for a cut block, and for a new open block so it learns its max_wait
  // (glibc's notify costs no syscall when nobody waits).
  writer_cv_.notify_one();
  return Status::ok();
}

void Pipeline::writerLoop() {
  std::vector<Block> work;
  std::unique_lock lock(mu_);
  for (;;) {
    // Cut open blocks whose wait is over (all of them when stopping).
    SteadyTime now = clock_.now();
    SteadyTime next_wake = now + std::chrono::seconds(1);
    for (auto it = open_.begin(); it != open_.end();) {
      if (it->block.records.empty() && it->block.checkpoints.empty()) {
        it = open_.erase(it);
        continue;
      }
      SteadyTime due = it->first_record + options_.max_wait;
      if (writer_stopping_ || due <= now) {
        cutLocked(*it);
        it = open_.erase(it);
        continue;
      }
      next_wake = std::min(next_wake, due);
      ++it;
    }
    if (!dead_letters_.empty()) storeDeadLettersLocked(lock);
    if (ready_.empty()) {
      if (writer_stopping_) break;
      writer_cv_.wait_until(lock, next_wake);
      continue;
    }
    work.clear();
    while (!ready_.empty()) {
      work.push_back(std::move(ready_.front()));
      ready_.pop_front();
    }
    uint64_t bytes = 0;
    uint64_t records = 0;
    for (const Block& b : work) {
      bytes += b.records.bytes();
      records += b.records.size();
    }
    bool stopping = writer_stopping_;
    SteadyTime deadline = flush_deadline_;
    lock.unlock();

    // Never drop what inputs handed over: a full buffer (when_full: block) or a failing
    // disk (I/O error, disk full) is retried until it works or the agent stops; inputs
    // wait meanwhile (their stage is full). Only a block the buffer can never take
    // (larger than its quota) is dropped, and counted.
    Status st = Status::ok();
    SteadyTime last_error_log{};
    bool error_logged = false;
    size_t done = 0;             // blocks of `work` stored so far
    size_t chunk = work.size();  // all in one append (group commit) until the quota pushes back
    for (;;) {
      Duration wait = std::chrono::milliseconds(200);
      if (stopping) wait = std::max(Duration::zero(), deadline - clock_.now());
      std::span<Block> part(work.data() + done, std::min(chunk, work.size() - done));
      st = buffer_.append(part, wait);
      if (st.isOk()) {
        done += part.size();
        setBufferFull(false);
        if (done == work.size()) break;
        continue;
      }
      if (st.code() == StatusCode::kResourceExhausted) setBufferFull(true);
      if (st.code() == StatusCode::kInvalidArgument || st.code() == StatusCode::kCancelled) break;
      if (stopping && clock_.now() >= deadline) break;
      // kResourceExhausted: the quota is full and append already waited for acks. Go on one
      // block at a time: a group larger than what acks can free must not wait forever.
      // Anything else (disk full, I/O error): back off, say it once a minute.
      if (st.code() == StatusCode::kResourceExhausted) {
        chunk = 1;
      } else {
        if (!error_logged || clock_.now() - last_error_log >= std::chrono::minutes(1)) {
          logError("pipeline", "cannot store ", records, " records: ", st.toString(), "; retrying every second");
          last_error_log = clock_.now();
          error_logged = true;
        }
        std::unique_lock wait_lock(mu_);
        writer_cv_.wait_for(wait_lock, std::chrono::seconds(1), [&] { return writer_stopping_; });
      }
      lock.lock();
      stopping = writer_stopping_;
      deadline = flush_deadline_;
      // Dead letters are outside the quota: keep them even while appends wait for room.
      if (!dead_letters_.empty()) storeDeadLettersLocked(lock);
      lock.unlock();
    }
    lock.lock();
    records = 0;  // what is left of this group
    for (size_t i = done; i < work.size(); ++i) records += work[i].records.size();
    if (done < work.size()) failed_.emplace_back(processed_ + done + 1, processed_ + work.size());
    processed_ += work.size();
    commit_cv_.notify_all();
    if (!st.isOk() && stopping && carry_ && st.code() != StatusCode::kInvalidArgument) {
      // A reload: the next pipeline appends these first. Still staged, so still counted.
      for (size_t i = done; i < work.size(); ++i) carried_.push_back(std::move(work[i]));
      continue;
    }
    if (!st.isOk()) {
      const char* reason = st.code() == StatusCode::kInvalidArgument ? "too_large" : "shutdown";
      if (stopping) shutdown_dropped_ += records;
      logError("pipeline", "dropped ", records, " records that could not be stored: ", st.toString());
      metrics_.counter("ferry_dropped_records_total", {{"reason", reason}}).add(records);
    } else if (error_logged) {
      logInfo("pipeline", "storing works again");
    }
    staged_bytes_ -= std::min(staged_bytes_, bytes);
    space_cv_.notify_all();
  }
}

Status Pipeline::waitForRoom(uint64_t bytes, Duration wait) {
  std::unique_lock lock(mu_);
  const bool room = space_cv_.wait_for(lock, wait, [&] {
    return inputs_stopping_ ||
           (!buffer_full_ && (staged_bytes_ == 0 || staged_bytes_ + bytes <= options_.staging_max_bytes));
  });
  if (inputs_stopping_) return cancelled("agent is stopping");
  if (!room) return resourceExhausted("the buffer takes no more records right now");
  return Status::ok();
}

void Pipeline::setBufferFull(bool full) {
  {
    std::lock_guard lock(mu_);
    if (buffer_full_ == full) return;
    buffer_full_ = full;
  }
  if (!full) space_cv_.notify_all();
}

Status Pipeline::waitCommitted(std::pair<uint64_t, uint64_t> range, Duration d) {
  std::unique_lock lock(mu_);
  // Inputs are joined before the final flush, so once they are asked to stop a waiter gets
  // kStopGrace more at most: a stuck writer (full buffer, failing disk) must not hold the stop.
  const auto deadline = std::chrono::steady_clock::now() + d;
  for (;;) {
    if (processed_ >= range.second || writer_stopped_) break;
    auto until = deadline;
    if (inputs_stopping_) until = std::min(until, stopping_since_ + kStopGrace);
    if (std::chrono::steady_clock::now() >= until) break;
    commit_cv_.wait_until(lock, until);
  }
  if (processed_ < range.second) {
    if (writer_stopped_ || inputs_stopping_) return cancelled("agent is stopping");
    return Status(StatusCode::kDeadlineExceeded, "not committed yet");
  }
  for (const auto& [lo, hi] : failed_) {
    if (range.second > 0 && lo <= range.second && hi >= range.first) {
      return Status(StatusCode::kIoError, "the records were not stored (dropped or left to the next configuration)");
    }
  }
  return Status::ok();
}

Status Pipeline::deadLetter(InputEmitter& from, const RecordBatch& batch, std::string_view reason) {
  if (batch.empty()) return Status::ok();
  PendingDeadLetter pending;
  pending.source = "input:" + from.input_;
  pending.block.created_ms = clock_.wallMs();
  pending.block.lineage = Lineage{agent_id_, from.input_, from.stream_, config_version_, {}};
  pending.block.records.appendAll(batch);
  pending.reason = std::string(reason);
  std::unique_lock lock(mu_);
  if (inputs_stopping_ || writer_stopped_) return cancelled("agent is stopping");
  dead_letters_.push_back(&pending);
  writer_cv_.notify_one();
  // A stop releases a dead letter the writer has not taken yet (it may be stuck retrying a
  // full buffer); one it is storing is waited for (keepDeadLetter does not wait for room).
  commit_cv_.wait(lock, [&] { return pending.done || (inputs_stopping_ && !pending.taken); });
  if (!pending.done) {
    dead_letters_.remove(&pending);
    return cancelled("agent is stopping; the dead letter was not kept");
  }
  return pending.result;
}

void Pipeline::storeDeadLettersLocked(std::unique_lock<std::mutex>& lock) {
  while (!dead_letters_.empty()) {
    PendingDeadLetter* p = dead_letters_.front();
    dead_letters_.pop_front();
    p->taken = true;
    lock.unlock();
    Result<uint64_t> kept = buffer_.keepDeadLetter(p->source, p->block, p->reason);
    const uint64_t n = p->block.records.size();
    if (kept.isOk()) {
      metrics_.counter("ferry_dead_letter_records_total", {{"output", p->source}}).add(n);
    } else {
      logError("pipeline", "could not keep ", n, " dead-lettered record(s) of ", p->source, ": ",
               kept.status().toString());
      metrics_.counter("ferry_dropped_records_total", {{"reason", "dead_letter_failed"}}).add(n);
    }
    lock.lock();
    p->result = kept.isOk() ? Status::ok() : kept.status();
    p->done = true;
    commit_cv_.notify_all();
  }
}

void Pipeline::adopt(std::vector<Block> blocks) {
  std::lock_guard lock(mu_);
  for (Block& b : blocks) {
    ++cut_count_;
    staged_bytes_ += b.records.bytes();
    ready_.push_back(std::move(b));
  }
}

uint64_t Pipeline::flushAndStop(SteadyTime deadline, std::vector<Block>* carry) {
  {
    std::lock_guard lock(mu_);
    inputs_stopping_ = true;
    writer_stopping_ = true;
    flush_deadline_ = deadline;
    carry_ = carry != nullptr;
  }
  stop_cv_.notify_all();
  space_cv_.notify_all();
  writer_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  std::lock_guard lock(mu_);
  writer_stopped_ = true;
  for (PendingDeadLetter* p : dead_letters_) {  // queued after the writer's last look
    p->result = cancelled("agent is stopping");
    p->done = true;
  }
  dead_letters_.clear();
  commit_cv_.notify_all();
  if (carry != nullptr) {
    for (Block& b : carried_) carry->push_back(std::move(b));
    carried_.clear();
  }
  return shutdown_dropped_;
}

}  // namespace ferry
