#include "agent/core/pipeline.h"

#include <doctest/doctest.h>

#include <thread>

#include "agent/buffer/memory_buffer.h"
#include "tests/support/fakes.h"

using namespace ferry;
using namespace std::chrono_literals;

namespace {

RecordBatch numbered(int first, int count) {
  RecordBatch b;
  for (int i = 0; i < count; ++i) b.append("{\"n\":" + std::to_string(first + i) + "}");
  return b;
}

std::vector<BlockRef> readAll(Buffer& buf, const std::string& out) {
  auto r = buf.read(out, 0, 100000, 0ms);
  REQUIRE(r.isOk());
  return *r;
}

// A memory buffer of `limits` with one declared output "o", and its metrics.
struct OneOutput {
  explicit OneOutput(BufferLimits limits) : buf(limits, metrics, systemClock()) {
    std::vector<std::string> outs = {"o"};
    REQUIRE(buf.setOutputs(outs).isOk());
  }
  MetricsRegistry metrics;
  MemoryBuffer buf;
};

}  // namespace

TEST_SUITE("core.pipeline") {
  TEST_CASE("records are cut into blocks by count, keep order and carry lineage") {
    OneOutput f({64 << 20, WhenFull::kBlock, {}});
    auto& metrics = f.metrics;
    auto& buf = f.buf;
    BatchingOptions opts;
    opts.max_records = 100;
    opts.max_wait = 10s;
    Pipeline p(buf, opts, "gw-1", 7, metrics, systemClock());
    Emitter& e = p.emitterFor("sensors", "sensors");
    p.start();
    for (int i = 0; i < 10; ++i) REQUIRE(e.emit(numbered(i * 35, 35)).isOk());  // 350 records
    p.flushAndStop(std::chrono::steady_clock::now() + 2s);

    auto blocks = readAll(buf, "o");
    REQUIRE(blocks.size() == 4);  // 100, 100, 100, 50 (the last cut at stop)
    int next = 0;
    for (const BlockRef& b : blocks) {
      CHECK(b->lineage == Lineage{"gw-1", "sensors", "sensors", 7});
      CHECK(b->created_ms > 0);
      for (size_t i = 0; i < b->records.size(); ++i) {
        CHECK(b->records[i] == "{\"n\":" + std::to_string(next++) + "}");
      }
    }
    CHECK(next == 350);
    CHECK(blocks[0]->records.size() == 100);
    CHECK(blocks[3]->records.size() == 50);
    CHECK(metrics.counterValue("ferry_input_records_total", {{"input", "sensors"}}) == 350);
  }

  TEST_CASE("blocks are cut by bytes; a record larger than a block travels alone") {
    OneOutput f({64 << 20, WhenFull::kBlock, {}});
    auto& metrics = f.metrics;
    auto& buf = f.buf;
    BatchingOptions opts;
    opts.max_bytes = 100;
    opts.max_wait = 10s;
    Pipeline p(buf, opts, "gw", 0, metrics, systemClock());
    Emitter& e = p.emitterFor("in", "in");
    p.start();
    RecordBatch b;
    b.append(std::string(30, 'a'));
    b.append(std::string(30, 'b'));
    b.append(std::string(30, 'c'));
    b.append(std::string(250, 'd'));  // bigger than max_bytes
    b.append(std::string(30, 'e'));
    REQUIRE(e.emit(b).isOk());
    p.flushAndStop(std::chrono::steady_clock::now() + 2s);
    auto blocks = readAll(buf, "o");
    REQUIRE(blocks.size() == 3);
    CHECK(blocks[0]->records.size() == 3);
    CHECK(blocks[1]->records.size() == 1);
    CHECK(blocks[1]->records[0].size() == 250);
    CHECK(blocks[2]->records[0] == std::string(30, 'e'));
  }

  TEST_CASE("max_wait cuts a partial block without a stop") {
    OneOutput f({64 << 20, WhenFull::kBlock, {}});
    auto& metrics = f.metrics;
    auto& buf = f.buf;
    BatchingOptions opts;
    opts.max_wait = 20ms;
    Pipeline p(buf, opts, "gw", 0, metrics, systemClock());
    Emitter& e = p.emitterFor("in", "in");
    p.start();
    REQUIRE(e.emit(numbered(0, 3)).isOk());
    auto r = buf.read("o", 0, 10, 5s);  // waits for the writer
    REQUIRE(r.isOk());
    REQUIRE(r->size() == 1);
    CHECK((*r)[0]->records.size() == 3);
    p.flushAndStop(std::chrono::steady_clock::now() + 1s);
  }

  TEST_CASE("streams of one input go to separate blocks") {
    OneOutput f({64 << 20, WhenFull::kBlock, {}});
    auto& metrics = f.metrics;
    auto& buf = f.buf;
    Pipeline p(buf, BatchingOptions{}, "gw", 0, metrics, systemClock());
    Emitter& e = p.emitterFor("mqtt", "mqtt");
    p.start();
    REQUIRE(e.emit(numbered(0, 2), "temperature").isOk());
    REQUIRE(e.emit(numbered(2, 2)).isOk());
    REQUIRE(e.emit(numbered(4, 2), "temperature").isOk());
    p.flushAndStop(std::chrono::steady_clock::now() + 2s);
    auto blocks = readAll(buf, "o");
    REQUIRE(blocks.size() == 2);
    std::map<std::string, size_t> by_stream;
    for (const auto& b : blocks) by_stream[b->lineage.stream] = b->records.size();
    CHECK(by_stream["temperature"] == 4);
    CHECK(by_stream["mqtt"] == 2);
  }

  TEST_CASE("a full buffer pushes back to inputs; stopping releases them") {
    MetricsRegistry metrics;
    // Room for about one small block; nobody acks.
    MemoryBuffer buf({200, WhenFull::kBlock, {}}, metrics, systemClock());
    std::vector<std::string> outs = {"o"};
    REQUIRE(buf.setOutputs(outs).isOk());
    BatchingOptions opts;
    opts.max_records = 10;
    opts.max_wait = 1ms;
    opts.staging_max_bytes = 100;
    Pipeline p(buf, opts, "gw", 0, metrics, systemClock());
    Emitter& e = p.emitterFor("in", "in");
    p.start();
    std::atomic<int> accepted{0};
    Status last;
    std::thread input([&] {
      for (int i = 0; i < 1000; ++i) {
        last = e.emit(numbered(i * 10, 10));
        if (!last.isOk()) return;
        ++accepted;
      }
    });
    std::this_thread::sleep_for(300ms);
    const int stalled_at = accepted.load();
    CHECK(stalled_at < 1000);  // blocked, not dropping
    std::this_thread::sleep_for(100ms);
    CHECK(accepted.load() == stalled_at);
    p.stopInputs();
    input.join();
    CHECK(last.code() == StatusCode::kCancelled);
    uint64_t lost = p.flushAndStop(std::chrono::steady_clock::now() + 100ms);
    // What was accepted but could not be stored is counted, not silently lost.
    CHECK(lost == metrics.counterValue("ferry_dropped_records_total", {{"reason", "shutdown"}}));
    CHECK(buf.stats().records + lost == static_cast<uint64_t>(stalled_at) * 10);
    CHECK(metrics.counterValue("ferry_dropped_records_total", {{"reason", "drop_newest"}}) == 0);
  }

  TEST_CASE("a reload hands what the full buffer could not take to the next pipeline") {
    OneOutput f({200, WhenFull::kBlock, {}});
    auto& metrics = f.metrics;
    auto& buf = f.buf;
    BatchingOptions opts;
    opts.max_records = 10;
    opts.max_wait = 1ms;
    std::vector<Block> carried;
    uint64_t accepted = 0;
    {
      Pipeline old(buf, opts, "gw", 1, metrics, systemClock());
      Emitter& e = old.emitterFor("in", "in");
      old.start();
      for (int i = 0; i < 5; ++i) {
        REQUIRE(e.emit(numbered(i * 10, 10)).isOk());
        accepted += 10;
      }
      std::this_thread::sleep_for(100ms);
      old.stopInputs();
      uint64_t dropped = old.flushAndStop(std::chrono::steady_clock::now() + 50ms, &carried);
      CHECK(dropped == 0);
    }
    CHECK_FALSE(carried.empty());
    CHECK(metrics.counterValue("ferry_dropped_records_total", {{"reason", "shutdown"}}) == 0);
    uint64_t in_buffer = buf.stats().records;
    uint64_t in_carry = 0;
    for (const Block& b : carried) in_carry += b.records.size();
    CHECK(in_buffer + in_carry == accepted);

    Pipeline next(buf, opts, "gw", 2, metrics, systemClock());
    next.adopt(std::move(carried));
    next.start();
    // Room appears as the output acks; the adopted blocks are appended, in order.
    std::vector<std::string> seen;
    uint64_t pos = 0;
    auto until = std::chrono::steady_clock::now() + 5s;
    while (seen.size() < accepted && std::chrono::steady_clock::now() < until) {
      auto r = buf.read("o", pos, 100, 50ms);
      REQUIRE(r.isOk());
      for (const BlockRef& b : *r) {
        for (size_t i = 0; i < b->records.size(); ++i) seen.emplace_back(b->records[i]);
        pos = b->seq;
      }
      if (pos > 0) REQUIRE(buf.ack("o", pos, {}).isOk());
    }
    next.flushAndStop(std::chrono::steady_clock::now() + 1s);
    REQUIRE(seen.size() == accepted);
    for (size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == "{\"n\":" + std::to_string(i) + "}");
  }
}

TEST_SUITE("core.pipeline.emitter") {
  TEST_CASE("tryEmit gives up after its wait when the core is full, and takes records once there is room") {
    OneOutput f({200, WhenFull::kBlock, {}});
    auto& metrics = f.metrics;
    auto& buf = f.buf;
    BatchingOptions opts;
    opts.max_records = 10;
    opts.max_wait = 1ms;
    opts.staging_max_bytes = 100;
    Pipeline p(buf, opts, "gw", 0, metrics, systemClock());
    Emitter& e = p.emitterFor("in", "in");
    p.start();
    // Fill buffer and stage until a try fails; nobody acks.
    Status st;
    int accepted = 0;
    for (int i = 0; i < 100; ++i) {
      st = e.tryEmit(numbered(i * 10, 10), 50ms);
      if (!st.isOk()) break;
      ++accepted;
    }
    REQUIRE(st.code() == StatusCode::kResourceExhausted);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(e.tryEmit(numbered(0, 10), 100ms).code() == StatusCode::kResourceExhausted);
    CHECK(std::chrono::steady_clock::now() - t0 >= 90ms);
    // The output acks everything: room again.
    auto r = buf.read("o", 0, 1000, 0ms);
    REQUIRE(r.isOk());
    REQUIRE_FALSE(r->empty());
    REQUIRE(buf.ack("o", r->back()->seq, {}).isOk());
    CHECK(e.tryEmit(numbered(1000, 10), 2s).isOk());
    p.stopInputs();
    p.flushAndStop(std::chrono::steady_clock::now() + 100ms);
    CHECK(accepted > 0);
  }

  TEST_CASE("a tracked emit is committed once its block is in the buffer, without waiting for max_wait") {
    OneOutput f({64 << 20, WhenFull::kBlock, {}});
    auto& metrics = f.metrics;
    auto& buf = f.buf;
    BatchingOptions opts;
    opts.max_records = 1000;
    opts.max_wait = 10s;  // a tracked emit must not wait for this
    Pipeline p(buf, opts, "gw", 0, metrics, systemClock());
    Emitter& e = p.emitterFor("mq", "mq");
    Emitter& other = p.emitterFor("other", "other");
    p.start();
    REQUIRE(other.emit(numbered(0, 5)).isOk());  // stays open (max_wait 10 s)
    auto t1 = e.emitTracked(numbered(100, 3));
    REQUIRE(t1.isOk());
    auto t2 = e.emitTracked(numbered(103, 2));
    REQUIRE(t2.isOk());
    CHECK(*t2 > *t1);
    CHECK(e.waitCommitted(*t2, 5s).isOk());
    CHECK(e.waitCommitted(*t1, 0ms).isOk());  // older tickets are committed too
    CHECK(buf.stats().records == 5);          // the untracked open block is not cut
    p.stopInputs();
    p.flushAndStop(std::chrono::steady_clock::now() + 1s);
    CHECK(buf.stats().records == 10);
  }

  TEST_CASE("a tracked emit the buffer could not store reports it; a stopped pipeline cancels waits") {
    MetricsRegistry metrics;
    // Room for almost nothing: the block is larger than the quota (dropped as too_large).
    MemoryBuffer buf({64, WhenFull::kBlock, {}}, metrics, systemClock());
    std::vector<std::string> outs = {"o"};
    REQUIRE(buf.setOutputs(outs).isOk());
    BatchingOptions opts;
    opts.max_wait = 10s;
    Pipeline p(buf, opts, "gw", 0, metrics, systemClock());
    Emitter& e = p.emitterFor("mq", "mq");
    p.start();
    RecordBatch big;
    big.append("{\"pad\":\"" + std::string(200, 'x') + "\"}");
    auto t = e.emitTracked(big);
    REQUIRE(t.isOk());
    Status st = e.waitCommitted(*t, 5s);
    CHECK(st.code() == StatusCode::kIoError);
    CHECK(metrics.counterValue("ferry_dropped_records_total", {{"reason", "too_large"}}) == 1);
    p.stopInputs();
    p.flushAndStop(std::chrono::steady_clock::now() + 100ms);
    CHECK(e.waitCommitted(*t + 1, 1s).code() == StatusCode::kCancelled);
  }

  TEST_CASE("input dead letters are kept in the buffer's queue under input:<name>; drops are counted per reason") {
    OneOutput f({64 << 20, WhenFull::kBlock, {}});
    auto& metrics = f.metrics;
    auto& buf = f.buf;
    Pipeline p(buf, BatchingOptions{}, "gw", 3, metrics, systemClock());
    Emitter& e = p.emitterFor("logs", "app");
    p.start();
    RecordBatch line;
    line.append("not json, and very long");
    REQUIRE(e.deadLetter(line, "line_too_long: /var/log/a.log offset 10").isOk());
    e.countDropped("bad_json", 2);
    e.countDropped("bad_json");
    p.stopInputs();
    p.flushAndStop(std::chrono::steady_clock::now() + 1s);
    std::vector<DeadLetter> kept;
    REQUIRE(buf.forEachDeadLetter([&](const DeadLetter& d) { kept.push_back(d); }).isOk());
    REQUIRE(kept.size() == 1);
    CHECK(kept[0].output == "input:logs");
    CHECK(kept[0].reason == "line_too_long: /var/log/a.log offset 10");
    CHECK(kept[0].block.lineage == Lineage{"gw", "logs", "app", 3});
    REQUIRE(kept[0].block.records.size() == 1);
    CHECK(kept[0].block.records[0] == "not json, and very long");
    CHECK(buf.stats().records == 0);  // not part of the log
    CHECK(metrics.counterValue("ferry_dead_letter_records_total", {{"output", "input:logs"}}) == 1);
    CHECK(metrics.counterValue("ferry_dropped_records_total", {{"reason", "bad_json"}}) == 3);
    CHECK(metrics.counterValue("ferry_input_dropped_records_total", {{"input", "logs"}, {"reason", "bad_json"}}) == 3);
    CHECK(e.deadLetter(line, "late").code() == StatusCode::kCancelled);
  }
}

TEST_SUITE("core.pipeline.stop") {
  // Regression (found by review): an input blocked in deadLetter() while the writer retries a full buffer
  // (when_full: block, outputs down) is not released by stopInputs(), so Agent::retire's
  // in->join() never returns: SIGTERM hangs (forever while the uplink is down).
  TEST_CASE("stopInputs releases an input waiting in deadLetter while the buffer is full") {
    OneOutput f({200, WhenFull::kBlock, {}});
    auto& metrics = f.metrics;
    auto& buf = f.buf;
    BatchingOptions opts;
    opts.max_records = 10;
    opts.max_wait = 1ms;
    Pipeline p(buf, opts, "gw", 0, metrics, systemClock());
    Emitter& e = p.emitterFor("in", "in");
    p.start();
    // Fill the buffer until the writer is stuck retrying (tryEmit then refuses).
    int i = 0;
    for (; i < 100; ++i) {
      if (!e.tryEmit(numbered(i * 10, 10), 200ms).isOk()) break;
      std::this_thread::sleep_for(50ms);
    }
    REQUIRE(i < 100);
    std::atomic<bool> returned{false};
    Status dl;
    std::thread input([&] {
      RecordBatch line;
      line.append("a line over max_line_bytes");
      dl = e.deadLetter(line, "line_too_long");
      returned = true;
    });
    std::this_thread::sleep_for(300ms);
    p.stopInputs();  // what Agent::retire does before in->stop(); in->join()
    std::this_thread::sleep_for(1500ms);
    CHECK(returned.load());
    p.flushAndStop(std::chrono::steady_clock::now() + 100ms);  // releases it (test cleanup)
    input.join();
  }
}

TEST_SUITE("core.pipeline.stop") {
  // Regression (found by review): an emitTracked of an empty batch (every record filtered by the processor chain)
  // gets the range {cut_count_, cut_count_}: the last block cut by anyone. If that block was
  // dropped (too_large), waitCommitted reports kIoError for records that never existed: http
  // answers 503 and the client resends, until some other block is cut.
  TEST_CASE("a tracked emit of an all-filtered batch is not failed by someone else's dropped block") {
    OneOutput f({200, WhenFull::kBlock, {}});
    auto& metrics = f.metrics;
    auto& buf = f.buf;
    Pipeline p(buf, BatchingOptions{}, "gw", 0, metrics, systemClock());
    Emitter& big = p.emitterFor("big", "big");
    Emitter& e = p.emitterFor("push", "push");
    p.start();
    RecordBatch huge;
    huge.append("{\"x\":\"" + std::string(1000, 'a') + "\"}");
    auto t1 = big.emitTracked(huge);
    REQUIRE(t1.isOk());
    CHECK(big.waitCommitted(*t1, 2s).code() == StatusCode::kIoError);  // too_large: right
    auto t2 = e.emitTracked(RecordBatch{});  // what ChainEmitter passes when all were filtered
    REQUIRE(t2.isOk());
    CHECK(e.waitCommitted(*t2, 2s).isOk());
    p.stopInputs();
    p.flushAndStop(std::chrono::steady_clock::now() + 200ms);
  }
}
