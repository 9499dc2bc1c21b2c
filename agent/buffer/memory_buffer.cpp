#include "agent/buffer/memory_buffer.h"

#include <algorithm>

#include "ferry/log.h"
#include "ferry/options.h"

namespace ferry {

MemoryBuffer::MemoryBuffer(BufferLimits limits, MetricsRegistry& metrics, const Clock& clock)
    : limits_(limits),
      metrics_(metrics),
      clock_(clock),
      drops_(metrics, clock),
      bytes_gauge_(metrics.gauge("ferry_buffer_bytes", {}, "bytes held by the buffer")) {}

MemoryBuffer::~MemoryBuffer() = default;

Status MemoryBuffer::setOutputs(std::span<const std::string> outputs) {
  std::lock_guard lock(mu_);
  std::map<std::string, uint64_t, std::less<>> next;
  for (const std::string& name : outputs) {
    auto it = cursors_.find(name);
    // A new output starts at the tail: it sees what is accepted from now on.
    next[name] = it != cursors_.end() ? it->second : next_seq_ - 1;
  }
  cursors_ = std::move(next);
  releaseLocked();
  updateGaugesLocked();
  return Status::ok();
}

void MemoryBuffer::dropFrontLocked(std::string_view reason) {
  const BlockRef& b = log_.front();
  drops_.drop(reason, b->records.size(),
              reason == "max_age" ? "older than buffer.max_age" : "buffer.max_bytes reached");
  bytes_ -= blockBytes(*b);
  records_ -= b->records.size();
  log_.pop_front();
}

void MemoryBuffer::expireLocked() {
  if (limits_.max_age <= Duration::zero()) return;
  const int64_t cutoff =
      clock_.wallMs() - std::chrono::duration_cast<std::chrono::milliseconds>(limits_.max_age).count();
  while (!log_.empty() && log_.front()->created_ms < cutoff) dropFrontLocked("max_age");
}

void MemoryBuffer::releaseLocked() {
  if (cursors_.empty()) return;  // nobody reads yet: keep everything
  uint64_t slowest = UINT64_MAX;
  for (const auto& [name, c] : cursors_) slowest = std::min(slowest, c);
  bool freed = false;
  while (!log_.empty() && log_.front()->seq <= slowest) {
    bytes_ -= blockBytes(*log_.front());
    records_ -= log_.front()->records.size();
    log_.pop_front();
    freed = true;
  }
  if (freed) space_cv_.notify_all();
}

void MemoryBuffer::updateGaugesLocked() { bytes_gauge_.set(static_cast<double>(bytes_)); }

Status MemoryBuffer::append(std::span<Block> blocks, Duration wait) {
  uint64_t total = 0;
  for (const Block& b : blocks) {
    if (blockBytes(b) > limits_.max_bytes) {
      return invalidArgument("a block of " + std::to_string(blockBytes(b)) +
                             " bytes is larger than buffer.max_bytes");
    }
    total += blockBytes(b);
  }
  std::unique_lock lock(mu_);
  expireLocked();
  if (bytes_ + total > limits_.max_bytes) {
    switch (limits_.when_full) {
      case WhenFull::kBlock: {
        // Waits are real time (condition variables); the injected clock only dates blocks.
        const auto deadline = std::chrono::steady_clock::now() + wait;
        while (bytes_ + total > limits_.max_bytes && !interrupted_) {
          if (space_cv_.wait_until(lock, deadline) == std::cv_status::timeout) break;
        }
        if (interrupted_) return cancelled("buffer is shutting down");
        if (bytes_ + total > limits_.max_bytes) {
          return resourceExhausted("buffer full (" + formatSize(limits_.max_bytes) + ")");
        }
        break;
      }
      case WhenFull::kDropOldest:
        while (!log_.empty() && bytes_ + total > limits_.max_bytes) dropFrontLocked("drop_oldest");
        break;
      case WhenFull::kDropNewest: {
        // Keep the incoming blocks that fit, in order; the rest are the newest data and go.
        uint64_t room = limits_.max_bytes - std::min(bytes_, limits_.max_bytes);
        uint64_t used = 0;
        size_t fit = 0;
        while (fit < blocks.size() && used + blockBytes(blocks[fit]) <= room) used += blockBytes(blocks[fit++]);
        for (size_t i = fit; i < blocks.size(); ++i) {
          drops_.drop("drop_newest", blocks[i].records.size(), "buffer.max_bytes reached");
        }
        blocks = blocks.first(fit);
        total = used;
        break;
      }
    }
  }
  for (Block& b : blocks) {
    for (auto& [k, v] : b.checkpoints) checkpoints_[k] = std::move(v);
    b.checkpoints.clear();
    if (b.records.empty()) continue;  // a block that only carried checkpoints
    b.seq = next_seq_++;
    bytes_ += blockBytes(b);
    records_ += b.records.size();
    log_.push_back(std::make_shared<const Block>(std::move(b)));
  }
  updateGaugesLocked();
  lock.unlock();
  data_cv_.notify_all();
  return Status::ok();
}

Result<std::vector<BlockRef>> MemoryBuffer::read(std::string_view output, uint64_t after_seq,
                                                 size_t max_blocks, Duration wait) {
  std::unique_lock lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    if (interrupted_) return cancelled("buffer is shutting down");
    auto c = cursors_.find(output);
    if (c == cursors_.end()) return notFound("output " + std::string(output) + " is not declared");
    after_seq = std::max(after_seq, c->second);
    auto it = std::upper_bound(log_.begin(), log_.end(), after_seq,
                               [](uint64_t s, const BlockRef& b) { return s < b->seq; });
    if (it != log_.end()) {
      std::vector<BlockRef> out;
      for (; it != log_.end() && out.size() < max_blocks; ++it) out.push_back(*it);
      return out;
    }
    if (data_cv_.wait_until(lock, deadline) == std::cv_status::timeout) return std::vector<BlockRef>{};
  }
}

Status MemoryBuffer::ack(std::string_view output, uint64_t seq, std::string_view commit_state) {
  std::lock_guard lock(mu_);
  auto c = cursors_.find(output);
  if (c == cursors_.end()) return notFound("output " + std::string(output) + " is not declared");
  if (seq == c->second && !commit_state.empty()) commit_states_[std::string(output)] = commit_state;
  if (seq <= c->second) return Status::ok();
  if (seq >= next_seq_) return invalidArgument("ack of sequence " + std::to_string(seq) + " not yet written");
  c->second = seq;
  if (!commit_state.empty()) commit_states_[std::string(output)] = commit_state;
  releaseLocked();
  updateGaugesLocked();
  return Status::ok();
}

// Adds a copy of `block` to the queue as the next entry and evicts the oldest entries over the
// bound; returns the records evicted. mu_ is held.
uint64_t MemoryBuffer::keepLocked(std::string_view output, const Block& block, std::string_view reason,
                                  uint64_t seq) {
  const uint64_t cap = std::max<uint64_t>(limits_.max_bytes / 8, 1u << 20);
  uint64_t evicted = 0;
  DeadLetter d;
  d.id = next_dead_letter_id_++;
  d.output = std::string(output);
  d.reason = std::string(reason.substr(0, 4096));
  d.at_ms = clock_.wallMs();
  d.block.seq = seq;
  d.block.created_ms = block.created_ms;
  d.block.lineage = block.lineage;
  d.block.records.appendAll(block.records);
  dead_letter_bytes_ += blockBytes(d.block);
  dead_letter_records_ += d.block.records.size();
  dead_letters_.push_back(std::move(d));
  while (dead_letter_bytes_ > cap && dead_letters_.size() > 1) {
    dead_letter_bytes_ -= blockBytes(dead_letters_.front().block);
    dead_letter_records_ -= dead_letters_.front().block.records.size();
    evicted += dead_letters_.front().block.records.size();
    dead_letters_.pop_front();
  }
  return evicted;
}

void MemoryBuffer::countOverflow(uint64_t evicted) {
  if (evicted == 0) return;
  const uint64_t cap = std::max<uint64_t>(limits_.max_bytes / 8, 1u << 20);
  drops_.drop("dead_letter_overflow", evicted,
              "the dead-letter queue is full (" + formatSize(cap) + "); its oldest entries made room");
}

Result<uint64_t> MemoryBuffer::deadLetter(std::string_view output, const Block& block, std::string_view reason,
                                          std::string_view commit_state) {
  uint64_t evicted = 0;
  uint64_t id = 0;
  {
    std::lock_guard lock(mu_);
    auto c = cursors_.find(output);
    if (c == cursors_.end()) return notFound("output " + std::string(output) + " is not declared");
    const bool held = std::any_of(log_.begin(), log_.end(), [&](const BlockRef& b) { return b->seq == block.seq; });
    if (block.seq > c->second && held) {
      id = next_dead_letter_id_;
      evicted = keepLocked(output, block, reason, block.seq);
    }
  }
  countOverflow(evicted);
  FERRY_RETURN_IF_ERROR(ack(output, block.seq, commit_state));
  return id;
}

Result<uint64_t> MemoryBuffer::keepDeadLetter(std::string_view source, const Block& block, std::string_view reason) {
  uint64_t evicted = 0;
  uint64_t id = 0;
  {
    std::lock_guard lock(mu_);
    id = next_dead_letter_id_;
    evicted = keepLocked(source, block, reason, /*seq=*/0);  // not a block of the log
  }
  countOverflow(evicted);
  return id;
}

Status MemoryBuffer::forEachDeadLetter(const std::function<void(const DeadLetter&)>& fn) const {
  std::deque<DeadLetter> copy;
  {
    std::lock_guard lock(mu_);
    for (const DeadLetter& d : dead_letters_) {
      DeadLetter c;
      c.id = d.id;
      c.output = d.output;
      c.reason = d.reason;
      c.at_ms = d.at_ms;
      c.block.seq = d.block.seq;
      c.block.created_ms = d.block.created_ms;
      c.block.lineage = d.block.lineage;
      c.block.records.appendAll(d.block.records);
      copy.push_back(std::move(c));
    }
  }
  for (const DeadLetter& d : copy) fn(d);
  return Status::ok();
}

uint64_t MemoryBuffer::cursor(std::string_view output) const {
  std::lock_guard lock(mu_);
  auto c = cursors_.find(output);
  return c == cursors_.end() ? 0 : c->second;
}

std::string MemoryBuffer::commitState(std::string_view output) const {
  std::lock_guard lock(mu_);
  auto it = commit_states_.find(output);
  return it == commit_states_.end() ? std::string() : it->second;
}

std::optional<std::string> MemoryBuffer::checkpoint(std::string_view key) const {
  std::lock_guard lock(mu_);
  auto it = checkpoints_.find(key);
  if (it == checkpoints_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::pair<std::string, std::string>> MemoryBuffer::checkpoints(std::string_view prefix) const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, std::string>> out;
  for (auto it = checkpoints_.lower_bound(prefix); it != checkpoints_.end() && it->first.starts_with(prefix); ++it) {
    out.emplace_back(it->first, it->second);
  }
  return out;
}

BufferStats MemoryBuffer::stats() const {
  std::lock_guard lock(mu_);
  BufferStats s;
  s.blocks = log_.size();
  s.records = records_;
  s.bytes = bytes_;
  s.max_bytes = limits_.max_bytes;
  s.next_seq = next_seq_;
  s.dead_letter_records = dead_letter_records_;
  s.dead_letter_bytes = dead_letter_bytes_;
  for (const auto& [name, c] : cursors_) {
    OutputBacklog o;
    o.output = name;
    o.cursor = c;
    for (const BlockRef& b : log_) {
      if (b->seq <= c) continue;
      if (o.blocks == 0) o.oldest_ms = b->created_ms;
      ++o.blocks;
      o.records += b->records.size();
      o.bytes += b->records.bytes();
    }
    s.outputs.push_back(std::move(o));
  }
  return s;
}

void MemoryBuffer::interrupt() {
  {
    std::lock_guard lock(mu_);
    interrupted_ = true;
  }
  data_cv_.notify_all();
  space_cv_.notify_all();
}

void MemoryBuffer::discardAtShutdown() {
  std::lock_guard lock(mu_);
  uint64_t slowest = UINT64_MAX;
  for (const auto& [name, c] : cursors_) slowest = std::min(slowest, c);
  uint64_t lost = 0;
  for (const BlockRef& b : log_) {
    if (b->seq > slowest) lost += b->records.size();
  }
  if (lost > 0) {
    drops_.drop("shutdown", lost, "the memory buffer does not keep undelivered records across restarts");
  }
  log_.clear();
  bytes_ = records_ = 0;
  updateGaugesLocked();
}

}  // namespace ferry
