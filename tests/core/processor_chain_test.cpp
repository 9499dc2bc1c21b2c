#include "agent/core/processor_chain.h"

#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "agent/buffer/memory_buffer.h"
#include "agent/core/pipeline.h"
#include "tests/support/fakes.h"
#include "tests/support/log_capture.h"

using namespace ferry;
using namespace std::chrono_literals;

namespace {

// Appends `"<tag>":true` to each record (so the output shows which processors ran, in order).
class TagProcessor final : public Processor {
 public:
  explicit TagProcessor(std::string tag) : tag_(std::move(tag)) {}
  Status process(std::string_view, const RecordBatch& in, RecordBatch& out,
                 ProcessResult&) override {
    for (size_t i = 0; i < in.size(); ++i) {
      std::string_view r = in[i];
      std::string& d = out.mutableData();
      d.append(r.substr(0, r.size() - 1));
      d += ",\"" + tag_ + "\":true}";
      out.commitRecord();
    }
    return Status::ok();
  }

 private:
  std::string tag_;
};

// Keeps records whose "n" is even; odd ones are filtered, "bad" ones refused.
class EvenProcessor final : public Processor {
 public:
  Status process(std::string_view, const RecordBatch& in, RecordBatch& out,
                 ProcessResult& result) override {
    for (size_t i = 0; i < in.size(); ++i) {
      std::string_view r = in[i];
      if (r.find("bad") != std::string_view::npos) {
        result.drop("test_bad");
        continue;
      }
      const int n = std::stoi(std::string(r.substr(r.find("\"n\":") + 4)));
      if (n % 2 == 0) {
        out.append(r);
      } else {
        ++result.filtered;
      }
    }
    return Status::ok();
  }
};

class FailingProcessor final : public Processor {
 public:
  Status process(std::string_view, const RecordBatch&, RecordBatch&, ProcessResult&) override {
    return internalError("out of scratch");
  }
};

// Counts what it sees; every tick emits one record {"count":N} on stream "sums" and resets.
class CountingProcessor final : public Processor {
 public:
  explicit CountingProcessor(Duration interval) : interval_(interval) {}
  Status process(std::string_view, const RecordBatch& in, RecordBatch& out,
                 ProcessResult& result) override {
    seen_ += in.size();
    result.filtered += in.size();  // it absorbs its input
    (void)out;
    return Status::ok();
  }
  Duration tickInterval() const override { return interval_; }
  void tick(SteadyTime, bool final, TickSink& sink, ProcessResult&) override {
    ++ticks;
    if (final) ++final_ticks;
    if (seen_ == 0) return;
    RecordBatch b;
    b.append("{\"count\":" + std::to_string(seen_) + (final ? ",\"final\":true}" : "}"));
    seen_ = 0;
    sink.emit("sums", b);
  }
  std::atomic<int> ticks{0};
  std::atomic<int> final_ticks{0};

 private:
  Duration interval_;
  uint64_t seen_ = 0;
};

RecordBatch numbered(int first, int count) {
  RecordBatch b;
  for (int i = 0; i < count; ++i) b.append("{\"n\":" + std::to_string(first + i) + "}");
  return b;
}

uint64_t processorCount(MetricsRegistry& m, const std::string& name, const std::string& result) {
  return m.counterValue("ferry_processor_records_total", {{"processor", name}, {"result", result}});
}

}  // namespace

TEST_SUITE("core.processor_chain") {
  TEST_CASE("no processors: the input's own emitter is used") {
    MetricsRegistry metrics;
    ProcessorChain chain(metrics, systemClock());
    test::CaptureEmitter inner;
    CHECK(&chain.wrap(inner, "s") == &inner);
  }

  TEST_CASE("processors apply in order, only to matching streams, with counters") {
    MetricsRegistry metrics;
    ProcessorChain chain(metrics, systemClock());
    chain.add("first", "*", std::make_unique<TagProcessor>("a"));
    chain.add("evens", "sensor*", std::make_unique<EvenProcessor>());
    chain.add("last", "*", std::make_unique<TagProcessor>("b"));
    test::CaptureEmitter inner;
    Emitter& e = chain.wrap(inner, "sensors");

    RecordBatch in = numbered(0, 4);
    in.append("{\"bad\":1}");
    REQUIRE(e.emit(in).isOk());
    CHECK(inner.records ==
          std::vector<std::string>{R"({"n":0,"a":true,"b":true})", R"({"n":2,"a":true,"b":true})"});
    CHECK(inner.streams.back().empty());  // the default stream is the inner emitter's business

    // Another stream does not match "sensor*": only first and last run.
    REQUIRE(e.emit(numbered(1, 1), "logs").isOk());
    CHECK(inner.records.back() == R"({"n":1,"a":true,"b":true})");
    CHECK(inner.streams.back() == "logs");

    CHECK(processorCount(metrics, "first", "in") == 6);
    CHECK(processorCount(metrics, "first", "out") == 6);
    CHECK(processorCount(metrics, "evens", "in") == 5);
    CHECK(processorCount(metrics, "evens", "out") == 2);
    CHECK(processorCount(metrics, "evens", "filtered") == 2);
    CHECK(processorCount(metrics, "evens", "dropped") == 1);
    CHECK(processorCount(metrics, "last", "in") == 3);
    CHECK(metrics.counterValue("ferry_dropped_records_total", {{"reason", "test_bad"}}) == 1);
    // The input's original batch is untouched.
    CHECK(in.size() == 5);
    CHECK(in[0] == R"({"n":0})");
  }

  TEST_CASE("a checkpoint is still committed when every record was filtered") {
    MetricsRegistry metrics;
    ProcessorChain chain(metrics, systemClock());
    chain.add("evens", "*", std::make_unique<EvenProcessor>());
    test::CaptureEmitter inner;
    Emitter& e = chain.wrap(inner, "s");
    REQUIRE(e.emitWithCheckpoint(numbered(1, 1), {"file/1", "120"}).isOk());
    CHECK(inner.records.empty());
    CHECK(inner.committed.at("file/1") == "120");
    // tryEmit and emitTracked process too.
    REQUIRE(e.tryEmit(numbered(2, 1), 10ms).isOk());
    auto ticket = e.emitTracked(numbered(3, 2));
    REQUIRE(ticket.isOk());
    CHECK(inner.records == std::vector<std::string>{R"({"n":2})", R"({"n":4})"});
    // The rest is forwarded as is.
    e.countDropped("bad_line", 2);
    CHECK(inner.dropped.at("bad_line") == 2);
    REQUIRE(e.deadLetter(numbered(9, 1), "too_long").isOk());
    CHECK(inner.dead_letters.size() == 1);
    CHECK(e.checkpoints().get("file/1") == std::optional<std::string>("120"));
    CHECK_FALSE(e.stopping());
  }

  TEST_CASE("a processor error drops that batch, counted, and the next batch goes on") {
    MetricsRegistry metrics;
    ProcessorChain chain(metrics, systemClock());
    chain.add("broken", "only-this", std::make_unique<FailingProcessor>());
    test::CaptureEmitter inner;
    Emitter& e = chain.wrap(inner, "s");
    test::LogCapture log;
    REQUIRE(e.emit(numbered(0, 3), "only-this").isOk());
    REQUIRE(e.emit(numbered(0, 2), "only-this").isOk());
    CHECK(inner.records.empty());
    // Logged once (not once per batch).
    CHECK(log.count("processor: broken: internal error: out of scratch; a batch of 3 record(s) is "
                    "dropped") == 1);
    CHECK(log.count("out of scratch") == 1);
    CHECK(metrics.counterValue("ferry_dropped_records_total", {{"reason", "processor_error"}}) ==
          5);
    REQUIRE(e.emit(numbered(0, 3)).isOk());  // stream "s": not matched
    CHECK(inner.records.size() == 3);
  }

  TEST_CASE("inputs on several threads share the chain") {
    MetricsRegistry metrics;
    ProcessorChain chain(metrics, systemClock());
    chain.add("evens", "*", std::make_unique<EvenProcessor>());
    chain.add("tag", "*", std::make_unique<TagProcessor>("t"));
    test::CaptureEmitter inner1, inner2;
    Emitter& e1 = chain.wrap(inner1, "a");
    Emitter& e2 = chain.wrap(inner2, "b");
    std::thread t1([&] {
      for (int i = 0; i < 200; ++i) REQUIRE(e1.emit(numbered(i * 10, 10)).isOk());
    });
    std::thread t2([&] {
      for (int i = 0; i < 200; ++i) REQUIRE(e2.emit(numbered(i * 10, 10)).isOk());
    });
    t1.join();
    t2.join();
    CHECK(inner1.records.size() == 1000);
    CHECK(inner2.records.size() == 1000);
    CHECK(inner1.records[1] == R"({"n":2,"t":true})");
    CHECK(processorCount(metrics, "evens", "in") == 4000);
    CHECK(processorCount(metrics, "tag", "out") == 2000);
  }

  TEST_CASE(
      "tick output passes the processors after the ticking one; finish() ticks once more, final") {
    MetricsRegistry metrics;
    ProcessorChain chain(metrics, systemClock());
    chain.add("before", "*", std::make_unique<TagProcessor>("before"));
    auto counting = std::make_unique<CountingProcessor>(20ms);
    CountingProcessor* c = counting.get();
    chain.add("count", "*", std::move(counting));
    chain.add("after", "sums", std::make_unique<TagProcessor>("after"));
    test::CaptureEmitter inner, ticks;
    std::string tick_input;
    chain.connectTicks([&](const std::string& input) -> Emitter& {
      tick_input = input;
      return ticks;
    });
    CHECK(tick_input == "processor:count");
    Emitter& e = chain.wrap(inner, "s");
    chain.start();
    REQUIRE(e.emit(numbered(0, 5)).isOk());
    CHECK(inner.records.empty());  // all absorbed by the counter
    // Poll (deadline) for the timer's tick.
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    for (;;) {
      {
        std::lock_guard lock(ticks.mu_);
        if (!ticks.records.empty()) break;
      }
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      std::this_thread::sleep_for(2ms);
    }
    {
      std::lock_guard lock(ticks.mu_);
      CHECK(ticks.records.front() ==
            R"({"count":5,"after":true})");  // "before" is not applied again
      CHECK(ticks.streams.front() == "sums");
    }
    REQUIRE(e.emit(numbered(0, 2)).isOk());
    chain.finish();
    CHECK(c->final_ticks == 1);
    CHECK(ticks.records.back() == R"({"count":2,"final":true,"after":true})");
    const int after_finish = c->ticks;
    std::this_thread::sleep_for(50ms);  // the timer is stopped: no tick comes any more
    CHECK(c->ticks == after_finish);
    chain.finish();  // idempotent
    CHECK(c->final_ticks == 1);
    CHECK(processorCount(metrics, "count", "out") == 2);
  }

  TEST_CASE("a pipeline's tick emitter accepts the final tick after the inputs stopped") {
    MetricsRegistry metrics;
    MemoryBuffer buf({64 << 20, WhenFull::kBlock, {}}, metrics, systemClock());
    std::vector<std::string> outs = {"o"};
    REQUIRE(buf.setOutputs(outs).isOk());
    BatchingOptions opts;
    opts.max_wait = 10s;
    Pipeline p(buf, opts, "gw", 3, metrics, systemClock());
    ProcessorChain chain(metrics, systemClock());
    chain.add("count", "*", std::make_unique<CountingProcessor>(1h));
    chain.connectTicks(
        [&](const std::string& input) -> Emitter& { return p.tickEmitterFor(input); });
    Emitter& e = chain.wrap(p.emitterFor("in", "in"), "in");
    p.start();
    chain.start();
    REQUIRE(e.emit(numbered(0, 7)).isOk());
    p.stopInputs();
    CHECK(e.stopping());
    chain.finish();
    p.flushAndStop(std::chrono::steady_clock::now() + 2s);
    auto blocks = buf.read("o", 0, 100, 0ms);
    REQUIRE(blocks.isOk());
    REQUIRE(blocks->size() == 1);
    const Block& b = *(*blocks)[0];
    CHECK(b.lineage == Lineage{"gw", "processor:count", "sums", 3});
    REQUIRE(b.records.size() == 1);
    CHECK(b.records[0] == R"({"count":7,"final":true})");
    CHECK(metrics.counterValue("ferry_input_records_total", {{"input", "processor:count"}}) == 1);
  }
}

#include "plugins/processors/deadband/deadband.h"
#include "tests/support/processor_harness.h"

TEST_SUITE("core.processor_chain") {
  // Regression (found by review): ChainEmitter runs the stateful processors before the inner emit; when the inner
  // tryEmit/emitTracked gives up for room (http answers 503, the client sends again), the
  // processors' state already took the refused records. deadband then filters the resent
  // value as "no change": a reportable change never reaches the buffer and is counted as
  // filtered, not dropped. (aggregate counts the resent values twice; throttle spends tokens twice.)
  TEST_CASE("a batch refused for room does not advance deadband state") {
    auto made = test::makeProcessor(deadbandProcessorDescriptor(), "field: v\nthreshold: 5\n");
    REQUIRE(made.isOk());
    MetricsRegistry metrics;
    ProcessorChain chain(metrics, systemClock());
    chain.add("db", "*", std::move(made).value());
    test::CaptureEmitter inner;
    Emitter& e = chain.wrap(inner, "s");
    REQUIRE(e.emitTracked(test::batchOf({"{\"v\":0}"}), {}, 100ms).isOk());
    inner.next_status = Status(StatusCode::kResourceExhausted, "the buffer takes no more records right now");
    CHECK(e.emitTracked(test::batchOf({"{\"v\":10}"}), {}, 100ms).status().code() ==
          StatusCode::kResourceExhausted);  // http: 503 + Retry-After
    inner.next_status = Status::ok();
    inner.records.clear();
    REQUIRE(e.emitTracked(test::batchOf({"{\"v\":10}"}), {}, 100ms).isOk());  // the client resends
    CHECK(inner.records.size() == 1);
  }
}
