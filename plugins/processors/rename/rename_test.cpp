#include <doctest/doctest.h>

#include "tests/support/processor_harness.h"

namespace ferry {
const PluginDescriptor& renameProcessorDescriptor();

using test::makeProcessor;
using test::processorError;
using test::runOne;
using V = std::vector<std::string>;

TEST_SUITE("processors.rename") {
  TEST_CASE("values move to their new names, top level and nested") {
    auto p = makeProcessor(renameProcessorDescriptor(),
                           "fields: {t: temp, dev.fw: firmware, h: meta.humidity}\n");
    REQUIRE(p.isOk());
    CHECK(runOne(**p, R"({"t":21.50,"dev":{"id":"a","fw":"1.2"},"h":48})") ==
          V{R"({"dev":{"id":"a"},"temp":21.50,"firmware":"1.2","meta":{"humidity":48}})"});
    // Missing sources change nothing.
    CHECK(runOne(**p, R"({"x":1})") == V{R"({"x":1})"});
    // The target is replaced where it stands.
    CHECK(runOne(**p, R"({"temp":0,"t":5})") == V{R"({"temp":5})"});
  }

  TEST_CASE("keys with escapes and unicode") {
    auto p = makeProcessor(renameProcessorDescriptor(),
                           "fields: {'`clé`': key, '`odd key`': '`new key`'}\n");
    REQUIRE(p.isOk());
    CHECK(runOne(**p, R"({"cl\u00e9":1,"odd key":[1]})") == V{R"({"key":1,"new key":[1]})"});
  }

  TEST_CASE("bad options name the key") {
    CHECK(processorError(renameProcessorDescriptor(), "fields: {a: a.b}\n") ==
          "<options>:1: fields: field a is edited and so is a field inside it (a.b)");
    CHECK(processorError(renameProcessorDescriptor(), "fields: {a: 'b c'}\n")
              .rfind("<options>:1: fields: field path \"b c\": column 2: unexpected ' '", 0) == 0);
  }
}

}  // namespace ferry
