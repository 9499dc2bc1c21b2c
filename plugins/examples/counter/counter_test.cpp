// The example counter input (counter.c), loaded from build/lib/ferry/plugins/ and run through the
// loader's adapter as the agent runs it.
#include <doctest/doctest.h>

#include "agent/config/loader.h"
#include "tests/support/fakes.h"
#include "tests/support/plugin_libs.h"

using namespace ferry;
using namespace ferry::test;
using namespace std::chrono_literals;

TEST_SUITE("plugins.examples.counter") {
  TEST_CASE("emits count records per collect, numbered, with the escaped prefix, up to total") {
    PluginFixture f(FERRY_EXAMPLE_PLUGINS_DIR);
    auto made = f.input("counter", "count: 2\ntotal: 5\nprefix: 'a\"b'\ninterval: 250ms", "cnt");
    REQUIRE(made.isOk());
    std::unique_ptr<Input> in = std::move(made).value();
    CHECK(in->interval() == 250ms);
    CaptureEmitter emitter;
    for (int i = 0; i < 4; ++i) REQUIRE(in->collect(emitter).isOk());
    CHECK(emitter.records ==
          std::vector<std::string>{R"({"seq":1,"msg":"a\"b-1"})", R"({"seq":2,"msg":"a\"b-2"})",
                                   R"({"seq":3,"msg":"a\"b-3"})", R"({"seq":4,"msg":"a\"b-4"})",
                                   R"({"seq":5,"msg":"a\"b-5"})"});
    CHECK(emitter.batches == 3);  // one emit per collect; the 4th collect had nothing left
    CHECK(emitter.dropped.empty());
  }

  TEST_CASE("a batch the agent did not accept is sent again, not skipped") {
    PluginFixture f(FERRY_EXAMPLE_PLUGINS_DIR);
    auto made = f.input("counter", "count: 1", "cnt");
    REQUIRE(made.isOk());
    std::unique_ptr<Input> in = std::move(made).value();
    CaptureEmitter emitter;
    emitter.next_status = resourceExhausted("full");
    Status st = in->collect(emitter);
    CHECK(st.code() == StatusCode::kUnavailable);
    CHECK(st.message() == "cnt: the agent is full; the batch is retried next interval");
    emitter.records.clear();
    emitter.next_status = Status::ok();
    REQUIRE(in->collect(emitter).isOk());
    CHECK(emitter.records == std::vector<std::string>{R"({"seq":1,"msg":"n-1"})"});
  }

  TEST_CASE("create() refuses a count out of range, naming the location") {
    PluginFixture f(FERRY_EXAMPLE_PLUGINS_DIR);
    auto made = f.input("counter", "count: 0", "cnt");
    REQUIRE_FALSE(made.isOk());
    CHECK(made.status().code() == StatusCode::kInvalidArgument);
    CHECK(made.status().message() == "counter: count must be between 1 and 100000");
  }
}
