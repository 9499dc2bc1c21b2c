#include "plugins/processors/aggregate/aggregate.h"

#include <doctest/doctest.h>

#include <algorithm>
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

// The manual clock's wall time starts at 1'764'000'001'000 ms, one second into a 10 s window.
constexpr std::string_view kW0 = R"({"window_start":1764000000000,"window_end":1764000010000)";
constexpr std::string_view kW1 = R"({"window_start":1764000010000,"window_end":1764000020000)";

struct Harness : test::ProcessorHarness {
  Harness() : ProcessorHarness(aggregateProcessorDescriptor(), "agg") {}
  size_t keys() const { return static_cast<const AggregateProcessor*>(proc.get())->keyCount(); }
};

Options opts(std::vector<std::string> fields, std::vector<std::string> key = {},
             Duration window = 10s) {
  Options o;
  o.set("window", window, {});
  o.set("fields", std::move(fields), {});
  if (!key.empty()) o.set("key", std::move(key), {});
  o.set("max_keys", int64_t{10000}, {});
  return o;
}

std::string sensor(std::string_view name, std::string_view temp) {
  return "{\"sensor\":\"" + std::string(name) + "\",\"temp\":" + std::string(temp) + "}";
}

std::string expect(std::string_view window, std::string_view rest) {
  return std::string(window) + std::string(rest) + "}";
}

TEST_SUITE("processors.aggregate") {
  TEST_CASE("the descriptor names the plugin and its options") {
    const PluginDescriptor& d = aggregateProcessorDescriptor();
    CHECK(d.name == "aggregate");
    CHECK(d.kind == PluginKind::kProcessor);
    std::vector<std::string_view> keys;
    for (const OptionSpec& s : d.options) keys.push_back(s.key);
    CHECK(keys == std::vector<std::string_view>{"window", "key", "fields", "stats", "max_keys"});
  }

  TEST_CASE("records are consumed; at the window's end one record per series goes on") {
    Harness h;
    REQUIRE(h.make(opts({"temp"}, {"sensor"})).isOk());
    CHECK(
        h.run({sensor("a", "1"), sensor("b", "-2.5"), sensor("a", "3"), sensor("a", "2")}).empty());
    CHECK(h.result.filtered == 4);
    h.clock.advance(9s - 1ms);  // wall 1764000009999: the window is still open
    CHECK(h.tick().empty());
    h.clock.advance(1ms);
    CHECK(
        h.tick() ==
        std::vector<std::string>{
            expect(kW0,
                   R"(,"sensor":"a","temp":{"count":3,"min":1,"max":3,"mean":2,"sum":6,"last":2})"),
            expect(
                kW0,
                R"(,"sensor":"b","temp":{"count":1,"min":-2.5,"max":-2.5,"mean":-2.5,"sum":-2.5,"last":-2.5})")});
    CHECK(h.sink.records[0].first == "s");
    CHECK(h.tick().empty());  // emitted once
  }

  TEST_CASE("a record at the window's last millisecond is in it; at its end, in the next") {
    Harness h;
    REQUIRE(h.make(opts({"temp"})).isOk());
    h.clock.advance(9s - 1ms);
    CHECK(h.run({sensor("a", "1")}).empty());
    h.clock.advance(1ms);
    // No tick yet: the next batch closes the window first (its record starts the next
    // one); the tick emits the closed window.
    CHECK(h.run({sensor("a", "5")}).empty());
    CHECK(h.result.filtered == 1);
    CHECK(h.tick() ==
          std::vector<std::string>{
              expect(kW0, R"(,"temp":{"count":1,"min":1,"max":1,"mean":1,"sum":1,"last":1})")});
    CHECK(h.tick().empty());
    h.clock.advance(10s);
    CHECK(h.tick() ==
          std::vector<std::string>{
              expect(kW1, R"(,"temp":{"count":1,"min":5,"max":5,"mean":5,"sum":5,"last":5})")});
  }

  TEST_CASE("the final tick flushes open windows with their nominal bounds") {
    Harness h;
    REQUIRE(h.make(opts({"temp"}, {"sensor"})).isOk());
    h.run({sensor("a", "1"), sensor("b", "2")});
    h.clock.advance(2s);
    CHECK(h.tick().empty());
    CHECK(
        h.tick(true) ==
        std::vector<std::string>{
            expect(kW0,
                   R"(,"sensor":"a","temp":{"count":1,"min":1,"max":1,"mean":1,"sum":1,"last":1})"),
            expect(
                kW0,
                R"(,"sensor":"b","temp":{"count":1,"min":2,"max":2,"mean":2,"sum":2,"last":2})")});
    CHECK(h.keys() == 0);
    CHECK(h.tick(true).empty());
  }

  TEST_CASE("empty windows emit nothing; a series idle for a whole window is forgotten") {
    Harness h;
    REQUIRE(h.make(opts({"temp"}, {"sensor"})).isOk());
    h.run({sensor("a", "1"), sensor("b", "1")});
    h.clock.advance(9s);
    CHECK(h.tick().size() == 2);
    CHECK(h.keys() == 2);
    h.run({sensor("a", "4")});  // b is quiet in the second window
    h.clock.advance(10s);
    CHECK(
        h.tick() ==
        std::vector<std::string>{expect(
            kW1, R"(,"sensor":"a","temp":{"count":1,"min":4,"max":4,"mean":4,"sum":4,"last":4})")});
    CHECK(h.keys() == 1);  // b forgotten
    h.clock.advance(10s);
    CHECK(h.tick().empty());  // nothing in the third window
    CHECK(h.keys() == 0);
    h.clock.advance(1h);
    CHECK(h.tick().empty());
  }

  TEST_CASE("chosen stats in fixed order; several fields; a field without values") {
    Harness h;
    Options o = opts({"temp", "hum.rel"});
    o.set("stats", std::vector<std::string>{"last", "count", "max"}, {});
    REQUIRE(h.make(o).isOk());
    h.run({R"({"temp":1,"hum":{"rel":40}})", R"({"temp":3})", R"({"temp":2,"hum":{"rel":"n/a"}})"});
    CHECK(h.counter("ferry_processor_skipped_values_total", "not_numeric") == 1);
    h.run({R"({"temp":7})"}, "t");
    h.clock.advance(9s);
    std::vector<std::string> got = h.tick();
    std::sort(got.begin(), got.end());  // two streams: no order between them
    CHECK(
        got ==
        std::vector<std::string>{
            expect(
                kW0,
                R"(,"temp":{"count":1,"max":7,"last":7},"hum.rel":{"count":0,"max":null,"last":null})"),
            expect(
                kW0,
                R"(,"temp":{"count":3,"max":3,"last":2},"hum.rel":{"count":1,"max":40,"last":40})")});
  }

  TEST_CASE("sum and mean of an empty field, overflow written as null") {
    Harness h;
    Options o = opts({"a", "b"});
    o.set("stats", std::vector<std::string>{"sum", "mean"}, {});
    REQUIRE(h.make(o).isOk());
    h.run({R"({"a":1e308})", R"({"a":1e308})"});
    h.clock.advance(9s);
    CHECK(h.tick() == std::vector<std::string>{expect(
                          kW0, R"(,"a":{"mean":null,"sum":null},"b":{"mean":null,"sum":0})")});
  }

  TEST_CASE("records without any numeric field go on unchanged; bad JSON is refused") {
    Harness h;
    REQUIRE(h.make(opts({"temp"})).isOk());
    const std::vector<std::string> batch = {R"({"msg":"hello"})", R"({"temp":"hot"})", "not json",
                                            R"({"temp":1})", "[1]"};
    CHECK(h.run(batch) == std::vector<std::string>{batch[0], batch[1]});
    CHECK(h.result.filtered == 1);
    CHECK(h.dropped("bad_json") == 2);
    CHECK(h.counter("ferry_processor_passed_records_total", "not_numeric") == 2);
  }

  TEST_CASE("many series, and max_keys refuses new series until slots free up") {
    Harness h;
    Options o = opts({"v"}, {"id"});
    o.set("max_keys", int64_t{1000}, {});
    REQUIRE(h.make(o).isOk());
    std::vector<std::string> batch;
    for (int i = 0; i < 1200; ++i) {
      batch.push_back("{\"id\":" + std::to_string(i) + ",\"v\":" + std::to_string(i) + "}");
    }
    CHECK(h.run(batch).empty());
    CHECK(h.result.filtered == 1000);
    CHECK(h.dropped("aggregate_key_limit") == 200);
    CHECK(h.keys() == 1000);
    // Known series still aggregate.
    h.run({R"({"id":999,"v":1})"});
    CHECK(h.result.filtered == 1);
    h.clock.advance(9s);
    std::vector<std::string> got = h.tick();
    REQUIRE(got.size() == 1000);
    CHECK(got.front() ==
          expect(kW0, R"(,"id":0,"v":{"count":1,"min":0,"max":0,"mean":0,"sum":0,"last":0})"));
    CHECK(got.back() ==
          expect(kW0,
                 R"(,"id":999,"v":{"count":2,"min":1,"max":999,"mean":500,"sum":1000,"last":1})"));
    // Only series 5 is busy in the next window; after it the others are forgotten.
    h.run({R"({"id":5,"v":1})"});
    CHECK(h.dropped("aggregate_key_limit") == 0);
    h.clock.advance(10s);
    CHECK(h.tick().size() == 1);
    CHECK(h.keys() == 1);
    h.run({R"({"id":1100,"v":1})"});
    CHECK(h.dropped("aggregate_key_limit") == 0);
    CHECK(h.keys() == 2);
  }

  TEST_CASE("each stream's windows are emitted on that stream") {
    Harness h;
    REQUIRE(h.make(opts({"temp"})).isOk());
    h.run({sensor("a", "1")}, "room1");
    h.run({sensor("a", "2")}, "room2");
    h.clock.advance(9s);
    h.tick();
    REQUIRE(h.sink.records.size() == 2);
    for (const auto& [stream, rec] : h.sink.records) {
      CHECK(rec ==
            expect(kW0, stream == "room1"
                            ? R"(,"temp":{"count":1,"min":1,"max":1,"mean":1,"sum":1,"last":1})"
                            : R"(,"temp":{"count":1,"min":2,"max":2,"mean":2,"sum":2,"last":2})"));
    }
  }

  TEST_CASE("when the wall clock steps back, records join the window still open") {
    Harness h;
    REQUIRE(h.make(opts({"temp"})).isOk());
    h.clock.advance(10s);  // second window
    h.run({sensor("a", "1")});
    h.clock.advance(-5s);  // back into the first window's time
    CHECK(h.run({sensor("a", "2")}).empty());
    CHECK(h.tick().empty());
    h.clock.advance(15s);
    CHECK(h.tick() ==
          std::vector<std::string>{
              expect(kW1, R"(,"temp":{"count":2,"min":1,"max":2,"mean":1.5,"sum":3,"last":2})")});
  }

  TEST_CASE("the tick interval is a tenth of the window, between 10ms and 1s") {
    Harness h;
    REQUIRE(h.make(opts({"v"}, {}, 1min)).isOk());
    CHECK(h.proc->tickInterval() == 1s);
    REQUIRE(h.make(opts({"v"}, {}, 5s)).isOk());
    CHECK(h.proc->tickInterval() == 500ms);
    REQUIRE(h.make(opts({"v"}, {}, 100ms)).isOk());
    CHECK(h.proc->tickInterval() == 10ms);
  }

  TEST_CASE("bad options are errors naming the key") {
    Harness h;
    Options w = opts({"v"}, {}, 50ms);
    w.set("window", Duration(50ms), SourceLocation{"c.yaml", 2, "processors[1].window"});
    CHECK(
        h.make(w).message() ==
        "c.yaml:2: processors[1].window: must be at least 100ms and whole milliseconds, got 50ms");
    CHECK(h.make(opts({"v"}, {}, 150500us)).message().find("window: must be") != std::string::npos);
    CHECK(h.make(opts({})).message().find("fields: name at least one field") != std::string::npos);
    CHECK(h.make(opts({"v", "v"})).message().find("fields[1]: \"v\" is listed twice") !=
          std::string::npos);
    CHECK(h.make(opts({"v"}, {"v"})).message().find("fields: \"v\" would collide") !=
          std::string::npos);
    CHECK(h.make(opts({"window_end"})).message().find("would collide") != std::string::npos);
    CHECK(h.make(opts({"v"}, {"window_start"})).message().find("key: \"window_start\"") !=
          std::string::npos);
    CHECK(h.make(opts({"x..y"})).message().find("fields: field path \"x..y\": ") !=
          std::string::npos);
    Options s = opts({"v"});
    s.set("stats", std::vector<std::string>{"min", "median"}, {});
    CHECK(h.make(s).message().find("stats[1]: \"median\" is not one of") != std::string::npos);
    s.set("stats", std::vector<std::string>{"min", "min"}, {});
    CHECK(h.make(s).message().find("stats[1]: \"min\" is listed twice") != std::string::npos);
    s.set("stats", std::vector<std::string>{}, {});
    CHECK(h.make(s).message().find("stats: name at least one") != std::string::npos);
    Options k = opts({"v"});
    k.set("max_keys", int64_t{-1}, {});
    CHECK(h.make(k).message().find("max_keys: must be between 1 and") != std::string::npos);
  }
}

}  // namespace
}  // namespace ferry
