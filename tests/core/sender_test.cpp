#include "agent/core/sender.h"

#include <doctest/doctest.h>

#include "agent/buffer/memory_buffer.h"
#include "agent/core/backoff.h"
#include "tests/support/fakes.h"

using namespace ferry;
using namespace std::chrono_literals;

namespace {

Block makeBlock(const std::string& stream, int first, int count) {
  Block b;
  b.lineage.stream = stream;
  for (int i = 0; i < count; ++i) b.records.append(stream + ":" + std::to_string(first + i));
  return b;
}

struct Fixture {
  MetricsRegistry metrics;
  MemoryBuffer buf{{1 << 20, WhenFull::kBlock, {}}, metrics, systemClock()};
  test::CaptureOutput::Shared shared;

  std::unique_ptr<Sender> sender(const std::string& match = "*") {
    std::vector<std::string> outs = {"o"};
    REQUIRE(buf.setOutputs(outs).isOk());
    SenderOptions so;
    so.name = "o";
    so.match = match;
    so.initial_backoff = 1ms;
    so.max_backoff = 5ms;
    return std::make_unique<Sender>(so, std::make_unique<test::CaptureOutput>(shared), buf, metrics,
                                    systemClock());
  }
  void append(Block b) {
    Block arr[] = {std::move(b)};
    REQUIRE(buf.append(arr, 0ms).isOk());
  }
};

}  // namespace

TEST_SUITE("core.sender") {
  TEST_CASE_FIXTURE(Fixture, "delivers in order and acks") {
    auto s = sender();
    append(makeBlock("a", 0, 3));
    append(makeBlock("a", 3, 3));
    s->start();
    CHECK(shared.waitFor(6, 5s) == 6);
    s->stop(true, std::chrono::steady_clock::now() + 1s);
    s->join();
    CHECK(shared.records == std::vector<std::string>{"a:0", "a:1", "a:2", "a:3", "a:4", "a:5"});
    CHECK(buf.cursor("o") == 2);
    CHECK(shared.closed);
    CHECK(metrics.counterValue("ferry_output_records_total", {{"output", "o"}}) == 6);
  }

  TEST_CASE_FIXTURE(Fixture, "retries resend the same block before the next, keeping order") {
    shared.script = {SendResult::retry("503"), SendResult::retry("timeout", 2ms)};
    auto s = sender();
    append(makeBlock("a", 0, 2));
    append(makeBlock("a", 2, 2));
    s->start();
    CHECK(shared.waitFor(4, 5s) == 4);
    s->stop(false, std::chrono::steady_clock::now());
    s->join();
    CHECK(shared.records == std::vector<std::string>{"a:0", "a:1", "a:2", "a:3"});
    CHECK(shared.seqs == std::vector<uint64_t>{1, 1, 1, 2});
    CHECK(metrics.counterValue("ferry_retries_total", {{"output", "o"}}) == 2);
  }

  TEST_CASE_FIXTURE(Fixture, "rejected blocks are counted as dead letters and passed") {
    shared.script = {SendResult::rejected("400 bad request")};
    auto s = sender();
    append(makeBlock("a", 0, 5));
    append(makeBlock("a", 5, 1));
    s->start();
    CHECK(shared.waitFor(1, 5s) == 1);
    s->stop(false, std::chrono::steady_clock::now());
    s->join();
    CHECK(shared.records == std::vector<std::string>{"a:5"});
    CHECK(metrics.counterValue("ferry_dead_letter_records_total", {{"output", "o"}}) == 5);
    CHECK(buf.cursor("o") == 2);
  }

  TEST_CASE_FIXTURE(Fixture, "match skips other streams but still acks them") {
    auto s = sender("temp*");
    append(makeBlock("humidity", 0, 2));
    append(makeBlock("temperature", 0, 2));
    append(makeBlock("humidity", 2, 2));
    s->start();
    CHECK(shared.waitFor(2, 5s) == 2);
    s->stop(true, std::chrono::steady_clock::now() + 1s);
    s->join();
    CHECK(shared.records == std::vector<std::string>{"temperature:0", "temperature:1"});
    CHECK(buf.cursor("o") == 3);
  }

  TEST_CASE_FIXTURE(Fixture, "stop without drain ends a retry loop promptly") {
    for (int i = 0; i < 100; ++i) shared.script.push_back(SendResult::retry("down"));
    auto s = sender();
    append(makeBlock("a", 0, 1));
    s->start();
    std::this_thread::sleep_for(30ms);
    auto t0 = std::chrono::steady_clock::now();
    s->stop(false, t0);
    s->join();
    CHECK(std::chrono::steady_clock::now() - t0 < 1s);
    CHECK(buf.cursor("o") == 0);  // not acked: it was never delivered
  }

  TEST_CASE("backoff grows exponentially under the cap with full jitter") {
    Backoff b(100ms, 1s, 42);
    for (int i = 0; i < 50; ++i) {
      Duration d = b.next();
      CHECK(d >= 0ms);
      CHECK(d <= 1s);
    }
    Backoff first(100ms, 1s, 1);
    CHECK(first.next() <= 100ms);
    CHECK(first.next() <= 200ms);
    // retry_after is a floor.
    Backoff ra(1ms, 10ms, 3);
    CHECK(ra.next(500ms) >= 500ms);
  }
}
