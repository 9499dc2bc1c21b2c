#include <doctest/doctest.h>

#include "tests/support/processor_harness.h"

namespace ferry {
const PluginDescriptor& keepProcessorDescriptor();

using test::makeProcessor;
using test::processorError;
using test::runOne;
using V = std::vector<std::string>;

TEST_SUITE("processors.keep") {
  TEST_CASE("only the listed fields remain, with the objects leading to nested ones") {
    auto p = makeProcessor(keepProcessorDescriptor(), "fields: [ts, value, dev.id]\n");
    REQUIRE(p.isOk());
    CHECK(runOne(**p,
                 R"({"ts":1,"junk":"x","value":2.5,"dev":{"id":"a","fw":"1"},"other":{"id":1}})") ==
          V{R"({"ts":1,"value":2.5,"dev":{"id":"a"}})"});
    CHECK(runOne(**p, R"({"dev":{"fw":"1"}})") == V{"{}"});
  }

  TEST_CASE("a record that is not an object is refused") {
    auto p = makeProcessor(keepProcessorDescriptor(), "fields: [a]\n");
    REQUIRE(p.isOk());
    ProcessResult r;
    CHECK(test::run(**p, {"[1,2]", R"({"a":1,"b":2})"}, &r) == V{R"({"a":1})"});
    CHECK(test::dropped(r, "bad_json") == 1);
  }

  TEST_CASE("bad options") {
    CHECK(processorError(keepProcessorDescriptor(), "fields: [a, a.b]\n") ==
          "<options>:1: fields: field a is edited and so is a field inside it (a.b)");
  }
}

}  // namespace ferry
