// A child process for the buffer crash test (tests/integration/crash_test.cpp).
//
//   ferry_crash_child DIR
// Opens the disk buffer in DIR (fsync durability), finds the last record number stored,
// then appends blocks of 50 records numbered on from there, forever. After each append
// returns it writes the last number of that block to stdout (one write per line): the
// parent knows every number up to the last line printed was acknowledged as durable.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "agent/buffer/disk_buffer.h"
#include "ferry/log.h"

using namespace ferry;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 64;
  }
  setLogLevel(LogLevel::kError);
  MetricsRegistry metrics;
  DiskBufferOptions o;
  o.path = argv[1];
  o.fsync = true;
  o.memory_budget = 8 << 20;
  auto opened = DiskBuffer::open(o, metrics, systemClock());
  if (!opened.isOk()) {
    std::fprintf(stderr, "open: %s\n", opened.status().toString().c_str());
    return 1;
  }
  DiskBuffer& buf = **opened;
  std::vector<std::string> outs = {"check"};
  if (!buf.setOutputs(outs).isOk()) return 1;
  // The output is never acked, so everything ever appended is still there.
  uint64_t next = 1;
  uint64_t after = 0;
  for (;;) {
    auto blocks = buf.read("check", after, 64, std::chrono::milliseconds(0));
    if (!blocks.isOk() || blocks->empty()) break;
    for (const BlockRef& b : *blocks) {
      after = b->seq;
      std::string_view last = b->records[b->records.size() - 1];
      next = std::strtoull(std::string(last.substr(5)).c_str(), nullptr, 10) + 1;  // {"n":N}
    }
  }
  char line[64];
  for (;;) {
    Block b;
    b.lineage = {"crash", "child", "numbers", 0};
    b.created_ms = systemClock().wallMs();
    for (int i = 0; i < 50; ++i) {
      std::snprintf(line, sizeof line, "{\"n\":%llu}", static_cast<unsigned long long>(next++));
      b.records.append(line);
    }
    Block arr[] = {std::move(b)};
    Status st = buf.append(arr, std::chrono::seconds(1));
    if (!st.isOk()) {
      std::fprintf(stderr, "append: %s\n", st.toString().c_str());
      return 1;
    }
    int n = std::snprintf(line, sizeof line, "%llu\n", static_cast<unsigned long long>(next - 1));
    if (::write(STDOUT_FILENO, line, static_cast<size_t>(n)) != n) return 1;
  }
}
