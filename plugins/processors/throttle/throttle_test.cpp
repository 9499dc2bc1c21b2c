#include "plugins/processors/throttle/throttle.h"

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ferry/metrics.h"
#include "tests/support/processor_harness.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;

struct Harness : test::ProcessorHarness {
  Harness() : ProcessorHarness(throttleProcessorDescriptor(), "th") {}
  using ProcessorHarness::make;
  Status make(double rate, int64_t burst = 0, int64_t max_streams = 1000) {
    Options o;
    o.set("rate", rate, {});
    if (burst > 0) o.set("burst", burst, {});
    o.set("max_streams", max_streams, {});
    return make(o);
  }
  // Sends `n` records {"n":0}, {"n":1}, ...; returns the numbers that went on.
  std::vector<int> send(int n, std::string_view stream = "s") {
    std::vector<std::string> records;
    for (int i = 0; i < n; ++i) records.push_back("{\"n\":" + std::to_string(i) + "}");
    std::vector<int> got;
    for (const std::string& r : run(records, stream)) {
      got.push_back(std::stoi(r.substr(5, r.size() - 6)));
    }
    return got;
  }
  uint64_t throttled() const {
    uint64_t n = 0;
    for (const auto& [r, c] : result.dropped) {
      CHECK(r == "throttled");
      n += c;
    }
    return n;
  }
};

TEST_SUITE("processors.throttle") {
  TEST_CASE("the descriptor names the plugin and its options") {
    const PluginDescriptor& d = throttleProcessorDescriptor();
    CHECK(d.name == "throttle");
    CHECK(d.kind == PluginKind::kProcessor);
    std::vector<std::string_view> keys;
    for (const OptionSpec& s : d.options) keys.push_back(s.key);
    CHECK(keys == std::vector<std::string_view>{"rate", "burst", "max_streams"});
  }

  TEST_CASE("a full bucket lets a burst through, then the rate; the rest is throttled") {
    Harness h;
    REQUIRE(h.make(10, 5).isOk());
    CHECK(h.send(20) == std::vector<int>{0, 1, 2, 3, 4});  // the first ones go on, in order
    CHECK(h.throttled() == 15);
    CHECK(h.send(3).empty());
    CHECK(h.throttled() == 3);
    h.clock.advance(100ms - 1ns);  // not quite one token
    CHECK(h.send(1).empty());
    h.clock.advance(1ns);
    CHECK(h.send(3) == std::vector<int>{0});
    CHECK(h.throttled() == 2);
    h.clock.advance(1h);  // refills to the burst, not beyond
    CHECK(h.send(10).size() == 5);
    CHECK(h.throttled() == 5);
  }

  TEST_CASE("sustained traffic gets the rate exactly: burst + rate x seconds") {
    Harness h;
    REQUIRE(h.make(10, 5).isOk());
    size_t passed = 0;
    uint64_t throttled = 0;
    // 2 records every 10 ms from t = 0 to t = 10 s (1001 batches): 200/s offered.
    for (int i = 0; i <= 1000; ++i) {
      if (i > 0) h.clock.advance(10ms);
      passed += h.send(2).size();
      throttled += h.throttled();
    }
    CHECK(passed == 5 + 100);
    CHECK(throttled == 2002 - 105);
  }

  TEST_CASE("rates below one per second and the default burst") {
    Harness h;
    REQUIRE(h.make(0.5).isOk());  // burst defaults to 1
    CHECK(h.send(3).size() == 1);
    h.clock.advance(1s);
    CHECK(h.send(1).empty());
    h.clock.advance(1s);
    CHECK(h.send(2).size() == 1);

    Harness h2;
    REQUIRE(h2.make(2.5).isOk());  // burst defaults to 3
    CHECK(h2.send(10).size() == 3);
  }

  TEST_CASE("each stream has its own bucket; streams past max_streams share one") {
    Harness h;
    REQUIRE(h.make(1, 2, 2).isOk());
    CHECK(h.send(5, "a").size() == 2);
    CHECK(h.send(5, "b").size() == 2);
    CHECK(h.send(5, "c").size() == 2);  // the overflow bucket, full at first
    CHECK(h.send(5, "d").empty());      // shares c's (empty) bucket
    CHECK(h.counter("ferry_processor_overflow_records_total") == 10);
    CHECK(static_cast<ThrottleProcessor*>(h.proc.get())->streamCount() == 2);
    h.clock.advance(1s);
    CHECK(h.send(5, "a").size() == 1);
    CHECK(h.send(5, "d").size() == 1);
    CHECK(h.send(5, "c").empty());
  }

  TEST_CASE("an empty batch takes nothing") {
    Harness h;
    REQUIRE(h.make(1, 1).isOk());
    CHECK(h.send(0).empty());
    CHECK(h.result.dropped.empty());
    CHECK(h.send(1).size() == 1);
  }

  TEST_CASE("bad options are errors naming the key") {
    Harness h;
    Options zero;
    zero.set("rate", 0.0, SourceLocation{"c.yaml", 4, "processors[2].rate"});
    zero.set("max_streams", int64_t{10}, {});
    CHECK(h.make(zero).message() ==
          "c.yaml:4: processors[2].rate: must be above 0 and at most 1e9 records per second");
    CHECK(h.make(-1).message().find("rate: must be above 0") != std::string::npos);
    Options burst;
    burst.set("rate", 1.0, {});
    burst.set("burst", int64_t{0}, SourceLocation{"c.yaml", 5, "processors[2].burst"});
    burst.set("max_streams", int64_t{10}, {});
    CHECK(h.make(burst).message() ==
          "c.yaml:5: processors[2].burst: must be between 1 and 1e9, got 0");
    CHECK(h.make(1, 1, 0).message().find("max_streams: must be between 1 and") !=
          std::string::npos);
  }
}

}  // namespace
}  // namespace ferry
