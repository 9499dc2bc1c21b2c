// Records and the containers they travel in.
//
// A record is one JSON object serialised on one line (no trailing newline). Records
// never travel alone: inputs fill a RecordBatch (one contiguous byte arena plus end
// offsets) and hand the whole batch to the core, which copies it into a block with
// one memcpy per batch. Appending to a batch whose capacity was reserved allocates
// nothing; clear() keeps the capacity so a batch can be reused for every collection.
//
// Thread-safety: value types; a batch is owned by one thread at a time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry {

class RecordBatch {
 public:
  // Appends one record. `record` must not contain a newline.
  void append(std::string_view record) {
    data_.append(record);
    ends_.push_back(static_cast<uint32_t>(data_.size()));
  }
  // Appends every record of `other` (one copy of its arena).
  void appendAll(const RecordBatch& other) { appendRange(other, 0, other.size()); }
  // Appends records [begin, end) of `other` with one copy of their bytes.
  void appendRange(const RecordBatch& other, size_t begin, size_t end);
  // Bytes of records [begin, end).
  size_t rangeBytes(size_t begin, size_t end) const {
    if (begin >= end) return 0;
    return ends_[end - 1] - (begin == 0 ? 0 : ends_[begin - 1]);
  }

  // Starts a record written piecewise into mutableData(); finish with commitRecord().
  std::string& mutableData() { return data_; }
  void commitRecord() { ends_.push_back(static_cast<uint32_t>(data_.size())); }

  size_t size() const { return ends_.size(); }
  bool empty() const { return ends_.empty(); }
  size_t bytes() const { return data_.size(); }
  std::string_view operator[](size_t i) const {
    uint32_t begin = i == 0 ? 0 : ends_[i - 1];
    return std::string_view(data_).substr(begin, ends_[i] - begin);
  }
  void clear() {
    data_.clear();
    ends_.clear();
  }
  void reserve(size_t records, size_t bytes) {
    ends_.reserve(records);
    data_.reserve(bytes);
  }
  // The arena and the end offsets, for codecs that serialise a batch in one piece.
  const std::string& data() const { return data_; }
  const std::vector<uint32_t>& ends() const { return ends_; }

  // Writes every record followed by '\n' to `out` (NDJSON).
  void appendNdjson(std::string& out) const;

 private:
  std::string data_;
  std::vector<uint32_t> ends_;
};

// Where a block came from. Every block carries it, so an upstream can tell which agent,
// input, stream and config version produced its records.
struct Lineage {
  std::string agent;
  std::string input;
  std::string stream;
  uint64_t config_version = 0;
  // Non-empty: only the output of this name sends the block; the others pass it by
  // (forwarded dead letters, see agent/core/sender.h). Empty: outputs choose by `match`.
  std::string route;

  bool operator==(const Lineage&) const = default;
};

// The unit the buffer stores and outputs send: records of one stream, cut by the
// batcher, numbered by the buffer. `seq` is the buffer's sequence of the block
// (strictly increasing, never reused while the block exists); it names the batch
// upstream (idempotency key <agent>/<output>/<seq>).
struct Block {
  uint64_t seq = 0;
  int64_t created_ms = 0;  // wall clock (unix ms) when the block was cut
  Lineage lineage;
  RecordBatch records;
  // Source positions to commit atomically with this block ("<input>/<key>" → value).
  // Not part of the stored block; the buffer writes them beside it in the same write.
  std::vector<std::pair<std::string, std::string>> checkpoints;
};

}  // namespace ferry
