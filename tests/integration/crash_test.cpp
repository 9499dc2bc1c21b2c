// Durability under SIGKILL: a real child process appends with fsync durability and is
// killed at random moments; every append that returned before a kill must be present
// exactly once and in order.
#include <doctest/doctest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "agent/buffer/disk_buffer.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

using namespace ferry;
using namespace std::chrono_literals;

namespace {

// The last number the child reported as appended (0 when none).
uint64_t lastAcked(const std::string& out) {
  uint64_t last = 0;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) last = std::stoull(line);
  }
  return last;
}

// Reads every record of the buffer; checks 1..N contiguous, no duplicates. Returns N.
uint64_t verify(const std::string& path) {
  MetricsRegistry metrics;
  DiskBufferOptions o;
  o.path = path;
  o.read_only = true;
  auto opened = DiskBuffer::open(o, metrics, systemClock());
  if (!opened.isOk() && opened.status().code() == StatusCode::kNotFound) return 0;  // killed before creating it
  INFO(opened.status().toString());
  REQUIRE(opened.isOk());
  uint64_t expect = 1;
  bool ordered = true;
  Status st = (*opened)->forEachBlock([&](const Block& b, const std::vector<std::string>&) {
    for (size_t i = 0; i < b.records.size(); ++i) {
      uint64_t n = std::stoull(std::string(b.records[i].substr(5)));
      if (n != expect) ordered = false;
      expect = n + 1;
    }
  });
  CHECK(st.isOk());
  CHECK(ordered);
  CHECK((*opened)->check().damaged() == false);
  return expect - 1;
}

}  // namespace

TEST_SUITE("integration.crash") {
  TEST_CASE("SIGKILL at random moments never loses or repeats an acknowledged append") {
    test::TempDir dir;
    const std::string path = dir.file("buffer");
    std::mt19937 rng(20261124);  // seeded: a failure can be replayed
    std::uniform_int_distribution<int> delay_ms(10, 250);
    const int kKills = 60;
    uint64_t acked_total = 0;
    int kills = 0;
    for (int round = 0; round < kKills; ++round) {
      test::Process child({FERRY_CRASH_CHILD, path}, dir.path().string(), "child");
      // Let it reach the append loop at least sometimes, then kill at a random moment.
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
      child.signal(SIGKILL);
      auto code = child.wait(10s);
      REQUIRE(code.has_value());
      if (*code != 128 + SIGKILL) {
        INFO("child exited by itself: ", *code, " stderr: ", child.stderrText());
        REQUIRE(*code == 128 + SIGKILL);
      }
      ++kills;
      const uint64_t acked = lastAcked(child.stdoutText());
      const uint64_t stored = verify(path);
      INFO("round ", round, ": acked up to ", acked, ", stored up to ", stored);
      CHECK(stored >= acked);
      CHECK(stored >= acked_total);  // nothing acknowledged earlier went missing
      acked_total = std::max(acked_total, acked);
    }
    CHECK(kills == kKills);
    CHECK(acked_total > 0);
    MESSAGE("crash test: ", kills, " kills, ", acked_total, " records acknowledged, all present once, in order");
  }

  TEST_CASE("a damaged write-ahead log: the blocks around the damage are served, the lost ones reported") {
    test::TempDir dir;
    const std::string path = dir.file("buffer");
    {
      test::Process child({FERRY_CRASH_CHILD, path}, dir.path().string(), "child");
      REQUIRE(test::eventually([&] { return lastAcked(child.stdoutText()) >= 20000; }, 20s));
      child.signal(SIGKILL);  // no clean close: the blocks are only in the WAL
      REQUIRE(child.wait(10s).has_value());
    }
    const uint64_t acked = lastAcked(test::readFile(dir.file("child.stdout")));
    REQUIRE(test::flipMiddleByteOfLargest(path, ".log", 0x40) > 100000);
    MetricsRegistry metrics;
    DiskBufferOptions o;
    o.path = path;
    auto opened = DiskBuffer::open(o, metrics, systemClock());
    REQUIRE(opened.isOk());
    DiskBuffer& buf = **opened;
    CheckReport r = buf.check();
    CHECK(r.blocks_missing > 0);
    CHECK(r.damaged());
    CHECK(metrics.counterValue("ferry_buffer_lost_blocks_total") == r.blocks_missing);
    // Blocks after the damage are still there (not cut at the damage point).
    std::vector<std::string> outs = {"check"};
    REQUIRE(buf.setOutputs(outs).isOk());
    uint64_t last = 0;
    uint64_t after = 0;
    for (;;) {
      auto blocks = buf.read("check", after, 64, std::chrono::milliseconds(0));
      REQUIRE(blocks.isOk());
      if (blocks->empty()) break;
      for (const BlockRef& b : *blocks) {
        after = b->seq;
        last = std::stoull(std::string(b->records[b->records.size() - 1].substr(5)));
      }
    }
    CHECK(last >= acked);
    MESSAGE("WAL damage: ", r.blocks_missing, " blocks reported missing, the last acknowledged record (", acked,
            ") still served");
  }
}
