#include "tests/support/fakes.h"

namespace ferry::test {

size_t CaptureOutput::Shared::waitFor(size_t n, Duration timeout) {
  std::unique_lock lock(mu);
  cv.wait_for(lock, timeout, [&] { return records.size() >= n; });
  return records.size();
}

SendResult CaptureOutput::send(const Block& block, SteadyTime) {
  std::lock_guard lock(s_.mu);
  s_.seqs.push_back(block.seq);
  if (!s_.script.empty()) {
    SendResult r = s_.script.front();
    s_.script.erase(s_.script.begin());
    if (r.kind != SendResult::Kind::kDelivered) return r;
  }
  for (size_t i = 0; i < block.records.size(); ++i) s_.records.emplace_back(block.records[i]);
  s_.cv.notify_all();
  return SendResult::delivered();
}

void CaptureOutput::close() {
  std::lock_guard lock(s_.mu);
  s_.closed = true;
}

}  // namespace ferry::test
