#include <doctest/doctest.h>

#include "tests/support/processor_harness.h"

namespace ferry {
const PluginDescriptor& dropProcessorDescriptor();

using test::makeProcessor;
using test::processorError;
using test::runOne;
using V = std::vector<std::string>;

TEST_SUITE("processors.drop") {
  TEST_CASE("listed fields are removed, nested ones too; the rest keeps its bytes") {
    auto p = makeProcessor(dropProcessorDescriptor(),
                           "fields: [debug, meta.raw, missing, '`odd key`']\n");
    REQUIRE(p.isOk());
    CHECK(
        runOne(
            **p,
            R"({ "v" : 1.50e0, "debug":{"a":[1,{"b":"}"}]}, "meta":{"raw":"x","id":7},"odd key":1})") ==
        V{R"({"v" : 1.50e0,"meta":{"id":7}})"});  // untouched members keep their bytes
    CHECK(runOne(**p, R"({"debug":1})") == V{"{}"});
    CHECK(runOne(**p, R"({"meta":"flat"})") == V{R"({"meta":"flat"})"});
  }

  TEST_CASE("bad options") {
    CHECK(processorError(dropProcessorDescriptor(), "fields: []\n") ==
          "<options>:1: fields: give at least one field");
  }
}

}  // namespace ferry
