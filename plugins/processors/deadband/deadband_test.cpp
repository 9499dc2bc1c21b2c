#include "plugins/processors/deadband/deadband.h"

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
  Harness() : ProcessorHarness(deadbandProcessorDescriptor(), "db") {}
  uint64_t passed(std::string_view reason) const {
    return counter("ferry_processor_passed_records_total", reason);
  }
};

Options opts(std::string field, double threshold) {
  Options o;
  o.set("field", std::move(field), {});
  o.set("threshold", threshold, {});
  o.set("max_keys", int64_t{10000}, {});
  return o;
}

std::string rec(double v) {
  std::string s = "{\"v\":";
  processors::appendNumber(s, v);
  return s + "}";
}

TEST_SUITE("processors.deadband") {
  TEST_CASE("the descriptor names the plugin and its options") {
    const PluginDescriptor& d = deadbandProcessorDescriptor();
    CHECK(d.name == "deadband");
    CHECK(d.kind == PluginKind::kProcessor);
    CHECK((d.make_processor != nullptr));
    std::vector<std::string_view> keys;
    for (const OptionSpec& s : d.options) keys.push_back(s.key);
    CHECK(keys == std::vector<std::string_view>{"field", "key", "threshold", "threshold_percent",
                                                "max_interval", "max_keys"});
  }

  TEST_CASE("the first record of a series always goes on; a change must exceed the threshold") {
    Harness h;
    REQUIRE(h.make(opts("v", 0.5)).isOk());
    CHECK(h.run({rec(20)}) == std::vector<std::string>{rec(20)});
    // Exactly at the threshold is not more than it: held back. Just above: goes on.
    CHECK(h.run({rec(20.5), rec(19.5), rec(20.25)}).empty());
    CHECK(h.result.filtered == 3);
    CHECK(h.run({rec(20.5000001)}) == std::vector<std::string>{rec(20.5000001)});
    CHECK(h.result.filtered == 0);
    // The reference is the last value let through (20.5000001), not the last one seen.
    CHECK(h.run({rec(20.75), rec(21.0), rec(21.25)}) == std::vector<std::string>{rec(21.25)});
    CHECK(h.result.filtered == 2);
    // Downward moves count the same.
    CHECK(h.run({rec(20.75), rec(20.5)}) == std::vector<std::string>{rec(20.5)});
  }

  TEST_CASE("threshold 0 lets every change through and holds back repeats") {
    Harness h;
    REQUIRE(h.make(opts("v", 0)).isOk());
    CHECK(h.run({rec(1), rec(1), rec(2), rec(2), rec(1)}) ==
          std::vector<std::string>{rec(1), rec(2), rec(1)});
    CHECK(h.result.filtered == 2);
  }

  TEST_CASE("threshold_percent is relative to the last value let through") {
    Harness h;
    Options o;
    o.set("field", std::string("v"), {});
    o.set("threshold_percent", 10.0, {});
    o.set("max_keys", int64_t{10}, {});
    REQUIRE(h.make(o).isOk());
    CHECK(h.run({rec(200), rec(220), rec(180), rec(221)}) ==
          std::vector<std::string>{rec(200), rec(221)});
    // 10% of 221 is 22.1: 243.1 is at it (held back), 198 beyond.
    CHECK(h.run({"{\"v\":243.1}", "{\"v\":198}"}) == std::vector<std::string>{"{\"v\":198}"});
  }

  TEST_CASE("max_interval lets a record through once that long passed since the last one") {
    Harness h;
    Options o = opts("v", 5);
    o.set("max_interval", Duration(10s), {});
    REQUIRE(h.make(o).isOk());
    CHECK(h.run({rec(1)}).size() == 1);
    h.clock.advance(10s - 1ns);
    CHECK(h.run({rec(1)}).empty());
    h.clock.advance(1ns);  // exactly max_interval since the last report
    CHECK(h.run({rec(1), rec(1)}) == std::vector<std::string>{rec(1)});
    CHECK(h.result.filtered == 1);
    // A report because of a change restarts the interval too.
    h.clock.advance(6s);
    CHECK(h.run({rec(7)}).size() == 1);
    h.clock.advance(6s);
    CHECK(h.run({rec(7)}).empty());
    h.clock.advance(4s);
    CHECK(h.run({rec(7)}).size() == 1);
  }

  TEST_CASE("series are told apart by stream and key fields, nested paths included") {
    Harness h;
    Options o = opts("reading.temp", 1);
    o.set("key", std::vector<std::string>{"sensor", "site.id"}, {});
    REQUIRE(h.make(o).isOk());
    const std::string a1 = R"({"sensor":"a","site":{"id":1},"reading":{"temp":10}})";
    const std::string a2 = R"({"sensor":"a","site":{"id":2},"reading":{"temp":10}})";
    const std::string b1 = R"({"sensor":"b","site":{"id":1},"reading":{"temp":10}})";
    const std::string a1s = R"({"sensor":"a","site":{"id":"1"},"reading":{"temp":10}})";
    const std::string nosite = R"({"sensor":"a","reading":{"temp":10}})";
    const std::string nullsite = R"({"sensor":"a","site":{"id":null},"reading":{"temp":10}})";
    CHECK(h.run({a1, a2, b1, a1s, nosite, nullsite}).size() == 6);  // six first records
    CHECK(h.run({a1, a2, b1, a1s, nosite, nullsite}).empty());
    CHECK(h.run({a1}, "other").size() == 1);  // same key, other stream
    CHECK(h.proc != nullptr);
    CHECK(static_cast<DeadbandProcessor*>(h.proc.get())->keyCount() == 7);
  }

  TEST_CASE("many series keep their own reference values") {
    Harness h;
    Options o = opts("v", 0.5);
    o.set("key", std::vector<std::string>{"id"}, {});
    REQUIRE(h.make(o).isOk());
    std::vector<std::string> first;
    std::vector<std::string> second;
    for (int i = 0; i < 5000; ++i) {
      first.push_back("{\"id\":" + std::to_string(i) + ",\"v\":" + std::to_string(i) + "}");
      // Odd ids move by 1 (reported), even ids by 0.5 (held back).
      second.push_back("{\"id\":" + std::to_string(i) +
                       ",\"v\":" + std::to_string(i + (i % 2 == 1 ? 1.0 : 0.5)) + "}");
    }
    CHECK(h.run(first).size() == 5000);
    std::vector<std::string> got = h.run(second);
    REQUIRE(got.size() == 2500);
    CHECK(got.front() == second[1]);
    CHECK(got.back() == second[4999]);
    CHECK(h.result.filtered == 2500);
  }

  TEST_CASE("past max_keys, records of new series go on unchanged and are counted") {
    Harness h;
    Options o = opts("v", 100);
    o.set("key", std::vector<std::string>{"id"}, {});
    o.set("max_keys", int64_t{2}, {});
    REQUIRE(h.make(o).isOk());
    const std::vector<std::string> batch = {R"({"id":1,"v":1})", R"({"id":2,"v":1})",
                                            R"({"id":3,"v":1})", R"({"id":3,"v":1})"};
    CHECK(h.run(batch) == batch);
    CHECK(h.passed("key_limit") == 2);
    // Known series are still filtered.
    CHECK(h.run(batch) == std::vector<std::string>{batch[2], batch[3]});
    CHECK(h.result.filtered == 2);
    CHECK(h.passed("key_limit") == 4);
  }

  TEST_CASE("with max_interval, a full table forgets series that have not reported for it") {
    Harness h;
    Options o = opts("v", 100);
    o.set("key", std::vector<std::string>{"id"}, {});
    o.set("max_keys", int64_t{2}, {});
    o.set("max_interval", Duration(10s), {});
    REQUIRE(h.make(o).isOk());
    const std::string a = R"({"id":"a","v":1})";
    const std::string b = R"({"id":"b","v":1})";
    const std::string c = R"({"id":"c","v":1})";
    CHECK(h.run({a, b}).size() == 2);
    h.clock.advance(5s);
    CHECK(h.run({a}).empty());
    CHECK(h.run({c}) == std::vector<std::string>{c});  // no series is old enough yet
    CHECK(h.passed("key_limit") == 1);
    h.clock.advance(5s);                                  // a and b last reported 10 s ago
    CHECK(h.run({c, c}) == std::vector<std::string>{c});  // c takes a freed slot
    CHECK(h.result.filtered == 1);
    CHECK(h.passed("key_limit") == 1);
    CHECK(static_cast<DeadbandProcessor*>(h.proc.get())->keyCount() == 1);
    // A forgotten series starts again with a first record, as max_interval would have it.
    CHECK(h.run({a, a}) == std::vector<std::string>{a});
  }

  TEST_CASE("a missing or non-numeric field goes on unchanged; bad JSON is refused") {
    Harness h;
    REQUIRE(h.make(opts("v", 1)).isOk());
    const std::vector<std::string> odd = {R"({"x":1})", R"({"v":"21.5"})", R"({"v":null})",
                                          R"({"v":true})", R"({"v":{"a":1}})"};
    std::vector<std::string> batch = odd;
    batch.push_back("{\"v\":1");  // cut short
    batch.push_back("[1,2]");     // not an object
    batch.push_back(rec(3));
    CHECK(h.run(batch) == std::vector<std::string>{odd[0], odd[1], odd[2], odd[3], odd[4], rec(3)});
    CHECK(h.dropped("bad_json") == 2);
    CHECK(h.passed("not_numeric") == 5);
    // They did not disturb the series: 3.5 is still within 1 of 3.
    CHECK(h.run({rec(3.5)}).empty());
  }

  TEST_CASE("integers and big numbers compare as numbers") {
    Harness h;
    REQUIRE(h.make(opts("v", 1)).isOk());
    CHECK(h.run({R"({"v":10})", R"({"v":11})", R"({"v":9.5})", R"({"v":12})"}) ==
          std::vector<std::string>{R"({"v":10})", R"({"v":12})"});
    CHECK(h.run({R"({"v":18446744073709551615})"}).size() == 1);  // a uint64
  }

  TEST_CASE("bad options are errors naming the key") {
    Harness h;
    Options none;
    none.set("field", std::string("v"), {});
    none.set("max_keys", int64_t{10}, {});
    Status st = h.make(none);
    CHECK(st.code() == StatusCode::kInvalidArgument);
    CHECK(st.message().find("threshold") != std::string::npos);

    Options both = opts("v", 1);
    both.set("threshold_percent", 5.0,
             SourceLocation{"c.yaml", 7, "processors[0].threshold_percent"});
    st = h.make(both);
    CHECK(st.message() ==
          "c.yaml:7: processors[0].threshold_percent: give either threshold "
          "or threshold_percent, not both");

    Options neg = opts("v", -1);
    st = h.make(neg);
    CHECK(st.message().find("threshold: must be a finite number >= 0") != std::string::npos);

    Options path = opts("a..b", 1);
    st = h.make(path);
    CHECK(st.message().find("field: field path \"a..b\": ") != std::string::npos);

    Options key = opts("v", 1);
    key.set("key", std::vector<std::string>{"a", "a"},
            SourceLocation{"c.yaml", 3, "processors[0].key"});
    st = h.make(key);
    CHECK(st.message() == "c.yaml:3: processors[0].key[1]: \"a\" is listed twice");

    Options keys = opts("v", 1);
    keys.set("max_keys", int64_t{0}, {});
    st = h.make(keys);
    CHECK(st.message().find("max_keys: must be between 1 and") != std::string::npos);

    Options interval = opts("v", 1);
    interval.set("max_interval", Duration(-1s), {});
    CHECK(h.make(interval).message().find("max_interval") != std::string::npos);
  }
}

}  // namespace
}  // namespace ferry
