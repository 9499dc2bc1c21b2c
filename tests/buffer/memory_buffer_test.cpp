#include "agent/buffer/memory_buffer.h"

#include <doctest/doctest.h>

#include <thread>

#include "tests/support/fakes.h"

using namespace ferry;
using namespace std::chrono_literals;

namespace {

Block makeBlock(const std::string& stream, int first, int count, int64_t created_ms = 0) {
  Block b;
  b.lineage.stream = stream;
  b.created_ms = created_ms;
  // Fixed width, so every block of `count` records has the same size.
  char buf[32];
  for (int i = 0; i < count; ++i) {
    std::snprintf(buf, sizeof buf, "{\"n\":%04d}", first + i);
    b.records.append(buf);
  }
  return b;
}

Status appendOne(MemoryBuffer& buf, Block b, Duration wait = 0ms) {
  Block arr[] = {std::move(b)};
  return buf.append(arr, wait);
}

std::vector<uint64_t> seqs(const std::vector<BlockRef>& blocks) {
  std::vector<uint64_t> out;
  for (const auto& b : blocks) out.push_back(b->seq);
  return out;
}

struct Fixture {
  MetricsRegistry metrics;
  test::ManualClock clock;
  uint64_t dropped(const char* reason) {
    return metrics.counterValue("ferry_dropped_records_total", {{"reason", reason}});
  }
};

}  // namespace

TEST_SUITE("buffer.memory") {
  TEST_CASE_FIXTURE(Fixture, "blocks come out in order, each output at its own cursor") {
    MemoryBuffer buf({1 << 20, WhenFull::kBlock, {}}, metrics, clock);
    std::vector<std::string> outs = {"a", "b"};
    REQUIRE(buf.setOutputs(outs).isOk());
    for (int i = 0; i < 5; ++i) REQUIRE(appendOne(buf, makeBlock("s", i * 10, 10)).isOk());

    auto all = buf.read("a", 0, 100, 0ms);
    REQUIRE(all.isOk());
    CHECK(seqs(*all) == std::vector<uint64_t>{1, 2, 3, 4, 5});
    auto two = buf.read("b", 0, 2, 0ms);
    CHECK(seqs(*two) == std::vector<uint64_t>{1, 2});

    REQUIRE(buf.ack("a", 3, {}).isOk());
    CHECK(buf.cursor("a") == 3);
    CHECK(buf.cursor("b") == 0);
    // b still holds everything back.
    CHECK(buf.stats().blocks == 5);
    REQUIRE(buf.ack("b", 4, {}).isOk());
    CHECK(buf.stats().blocks == 2);  // 4 and 5 left (a is at 3)
    auto rest = buf.read("a", 3, 100, 0ms);
    CHECK(seqs(*rest) == std::vector<uint64_t>{4, 5});
    // Acks below the cursor are ignored; acks of unwritten sequences refused.
    CHECK(buf.ack("b", 2, {}).isOk());
    CHECK(buf.cursor("b") == 4);
    CHECK_FALSE(buf.ack("b", 99, {}).isOk());
    CHECK(buf.read("nosuch", 0, 1, 0ms).status().code() == StatusCode::kNotFound);
  }

  TEST_CASE_FIXTURE(Fixture, "backlog per output is visible") {
    MemoryBuffer buf({1 << 20, WhenFull::kBlock, {}}, metrics, clock);
    std::vector<std::string> outs = {"a", "b"};
    REQUIRE(buf.setOutputs(outs).isOk());
    REQUIRE(appendOne(buf, makeBlock("s", 0, 3, 1000)).isOk());
    REQUIRE(appendOne(buf, makeBlock("s", 3, 4, 2000)).isOk());
    REQUIRE(buf.ack("a", 1, {}).isOk());
    BufferStats s = buf.stats();
    REQUIRE(s.outputs.size() == 2);
    CHECK(s.outputs[0].output == "a");
    CHECK(s.outputs[0].records == 4);
    CHECK(s.outputs[0].oldest_ms == 2000);
    CHECK(s.outputs[1].records == 7);
    CHECK(s.outputs[1].oldest_ms == 1000);
  }

  TEST_CASE_FIXTURE(Fixture, "a new output starts at the tail; a removed one stops holding data") {
    MemoryBuffer buf({1 << 20, WhenFull::kBlock, {}}, metrics, clock);
    std::vector<std::string> one = {"a"};
    REQUIRE(buf.setOutputs(one).isOk());
    REQUIRE(appendOne(buf, makeBlock("s", 0, 1)).isOk());
    std::vector<std::string> two = {"a", "b"};
    REQUIRE(buf.setOutputs(two).isOk());
    CHECK(buf.cursor("a") == 0);  // kept
    CHECK(buf.cursor("b") == 1);  // starts after what exists
    CHECK(buf.read("b", 0, 10, 0ms)->empty());
    REQUIRE(appendOne(buf, makeBlock("s", 1, 1)).isOk());
    CHECK(seqs(*buf.read("b", 0, 10, 0ms)) == std::vector<uint64_t>{2});
    std::vector<std::string> only_b = {"b"};
    REQUIRE(buf.setOutputs(only_b).isOk());
    CHECK(buf.stats().blocks == 1);  // block 1 was only waiting for a
  }

  TEST_CASE_FIXTURE(Fixture, "when_full block waits for room, then reports exhausted") {
    Block probe = makeBlock("s", 0, 10);
    const uint64_t one_block = probe.records.bytes() + probe.records.size() * 4;
    MemoryBuffer buf({one_block * 2, WhenFull::kBlock, {}}, metrics, clock);
    std::vector<std::string> outs = {"a"};
    REQUIRE(buf.setOutputs(outs).isOk());
    REQUIRE(appendOne(buf, makeBlock("s", 0, 10)).isOk());
    REQUIRE(appendOne(buf, makeBlock("s", 10, 10)).isOk());
    Status full = appendOne(buf, makeBlock("s", 20, 10), 0ms);
    CHECK(full.code() == StatusCode::kResourceExhausted);
    CHECK(dropped("drop_newest") == 0);
    // An ack from another thread makes room for a waiting append.
    std::thread acker([&] {
      std::this_thread::sleep_for(50ms);
      (void)buf.ack("a", 1, {});
    });
    Block b = makeBlock("s", 20, 10);
    Block arr[] = {std::move(b)};
    // The manual clock does not move, so use a real wait bound via a long duration.
    Status ok = buf.append(arr, 10s);
    acker.join();
    CHECK(ok.isOk());
    CHECK(arr[0].seq == 3);
  }

  TEST_CASE_FIXTURE(Fixture, "drop_oldest evicts the oldest blocks and counts them") {
    Block probe = makeBlock("s", 0, 10);
    const uint64_t one_block = probe.records.bytes() + probe.records.size() * 4;
    MemoryBuffer buf({one_block * 2, WhenFull::kDropOldest, {}}, metrics, clock);
    std::vector<std::string> outs = {"a"};
    REQUIRE(buf.setOutputs(outs).isOk());
    for (int i = 0; i < 4; ++i) REQUIRE(appendOne(buf, makeBlock("s", i * 10, 10)).isOk());
    CHECK(dropped("drop_oldest") == 20);
    CHECK(seqs(*buf.read("a", 0, 10, 0ms)) == std::vector<uint64_t>{3, 4});
  }

  TEST_CASE_FIXTURE(Fixture, "drop_newest refuses the incoming blocks and counts them") {
    Block probe = makeBlock("s", 0, 10);
    const uint64_t one_block = probe.records.bytes() + probe.records.size() * 4;
    MemoryBuffer buf({one_block * 2, WhenFull::kDropNewest, {}}, metrics, clock);
    std::vector<std::string> outs = {"a"};
    REQUIRE(buf.setOutputs(outs).isOk());
    for (int i = 0; i < 4; ++i) REQUIRE(appendOne(buf, makeBlock("s", i * 10, 10)).isOk());
    CHECK(dropped("drop_newest") == 20);
    auto got = buf.read("a", 0, 10, 0ms);
    REQUIRE(got->size() == 2);
    CHECK((*got)[0]->records[0] == "{\"n\":0000}");
    CHECK((*got)[1]->records[0] == "{\"n\":0010}");
  }

  TEST_CASE_FIXTURE(Fixture, "max_age drops old blocks and counts them") {
    MemoryBuffer buf({1 << 20, WhenFull::kBlock, 1h}, metrics, clock);
    std::vector<std::string> outs = {"a"};
    REQUIRE(buf.setOutputs(outs).isOk());
    REQUIRE(appendOne(buf, makeBlock("s", 0, 5, clock.wallMs())).isOk());
    clock.advance(2h);
    REQUIRE(appendOne(buf, makeBlock("s", 5, 5, clock.wallMs())).isOk());
    CHECK(dropped("max_age") == 5);
    CHECK(seqs(*buf.read("a", 0, 10, 0ms)) == std::vector<uint64_t>{2});
  }

  TEST_CASE_FIXTURE(Fixture, "a block larger than the quota is an error; interrupt wakes readers") {
    MemoryBuffer buf({16, WhenFull::kBlock, {}}, metrics, clock);
    std::vector<std::string> outs = {"a"};
    REQUIRE(buf.setOutputs(outs).isOk());
    CHECK(appendOne(buf, makeBlock("s", 0, 10)).code() == StatusCode::kInvalidArgument);
    std::thread stopper([&] {
      std::this_thread::sleep_for(30ms);
      buf.interrupt();
    });
    auto r = buf.read("a", 0, 1, 60s);
    stopper.join();
    CHECK(r.status().code() == StatusCode::kCancelled);
  }

  TEST_CASE_FIXTURE(Fixture, "undelivered records are counted at shutdown") {
    MemoryBuffer buf({1 << 20, WhenFull::kBlock, {}}, metrics, clock);
    std::vector<std::string> outs = {"a"};
    REQUIRE(buf.setOutputs(outs).isOk());
    REQUIRE(appendOne(buf, makeBlock("s", 0, 7)).isOk());
    REQUIRE(appendOne(buf, makeBlock("s", 7, 3)).isOk());
    REQUIRE(buf.ack("a", 1, {}).isOk());
    buf.discardAtShutdown();
    CHECK(dropped("shutdown") == 3);
    CHECK(buf.stats().blocks == 0);
  }
}
