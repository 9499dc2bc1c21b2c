#include <doctest/doctest.h>

#include "tests/support/processor_harness.h"

namespace ferry {
const PluginDescriptor& setProcessorDescriptor();

using test::makeProcessor;
using test::processorError;
using test::runOne;
using V = std::vector<std::string>;

TEST_SUITE("processors.set") {
  TEST_CASE("values are JSON when they parse as JSON, strings otherwise") {
    auto p = makeProcessor(setProcessorDescriptor(), R"(fields:
  unit: C
  level: 3
  ok: "true"
  none: "null"
  quoted: '"3"'
  obj: '{ "a" : [1, 2] }'
  text: 'hello "world"'
  empty: ''
)");
    REQUIRE(p.isOk());
    CHECK(
        runOne(**p, R"({"v":1})") ==
        V{R"({"v":1,"unit":"C","level":3,"ok":true,"none":null,"quoted":"3","obj":{"a":[1,2]},"text":"hello \"world\"","empty":""})"});
  }

  TEST_CASE("existing fields are replaced in place; nested paths create objects") {
    auto p = makeProcessor(setProcessorDescriptor(),
                           "fields: {unit: K, meta.site: north, '`a b`.c': 1}\n");
    REQUIRE(p.isOk());
    CHECK(runOne(**p, R"({"unit":"C","v":2,"meta":{"id":7}})") ==
          V{R"({"unit":"K","v":2,"meta":{"id":7,"site":"north"},"a b":{"c":1}})"});
    CHECK(runOne(**p, R"({"meta":"flat"})") ==
          V{R"({"meta":{"site":"north"},"unit":"K","a b":{"c":1}})"});
  }

  TEST_CASE("unicode values and keys travel as UTF-8 JSON") {
    auto p = makeProcessor(setProcessorDescriptor(),
                           "fields: {ville: Zürich, '`clé`': \"\\u00e9t\\u00e9\"}\n");
    REQUIRE(p.isOk());
    CHECK(runOne(**p, "{}") == V{"{\"ville\":\"Zürich\",\"clé\":\"été\"}"});
  }

  TEST_CASE("a malformed record is refused as bad_json; the others go on") {
    auto p = makeProcessor(setProcessorDescriptor(), "fields: {a: 1}\n");
    REQUIRE(p.isOk());
    ProcessResult r;
    CHECK(test::run(**p, {R"({"x":1})", R"({"x":)", R"({"y":2})"}, &r) ==
          V{R"({"x":1,"a":1})", R"({"y":2,"a":1})"});
    CHECK(test::dropped(r, "bad_json") == 1);
  }

  TEST_CASE("bad options name the key") {
    CHECK(processorError(setProcessorDescriptor(), "fields: {}\n") ==
          "<options>:1: fields: give at least one field");
    CHECK(processorError(setProcessorDescriptor(), "fields: {'a..b': 1}\n")
              .rfind("<options>:1: fields: field path \"a..b\": column 3: expected a field name",
                     0) == 0);
    CHECK(processorError(setProcessorDescriptor(), "fields: {a: 1, a.b: 2}\n") ==
          "<options>:1: fields: field a is edited and so is a field inside it (a.b)");
  }
}

}  // namespace ferry
