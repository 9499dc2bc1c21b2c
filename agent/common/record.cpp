#include "ferry/record.h"

namespace ferry {

void RecordBatch::appendRange(const RecordBatch& other, size_t begin, size_t end) {
  if (begin >= end) return;
  const uint32_t src_begin = begin == 0 ? 0 : other.ends_[begin - 1];
  // Offsets of the copied records shift from src_begin to the current end of the arena.
  const uint32_t shift = static_cast<uint32_t>(data_.size()) - src_begin;
  data_.append(other.data_, src_begin, other.ends_[end - 1] - src_begin);
  ends_.reserve(ends_.size() + (end - begin));
  for (size_t i = begin; i < end; ++i) ends_.push_back(other.ends_[i] + shift);
}

void RecordBatch::appendNdjson(std::string& out) const {
  out.reserve(out.size() + data_.size() + ends_.size());
  uint32_t begin = 0;
  for (uint32_t end : ends_) {
    out.append(data_, begin, end - begin);
    out.push_back('\n');
    begin = end;
  }
}

}  // namespace ferry
