// The example add_field processor (add_field.cpp), loaded from build/lib/ferry/plugins/ and run
// through the loader's adapter as the agent runs it.
#include <doctest/doctest.h>

#include "agent/config/loader.h"
#include "tests/support/plugin_libs.h"

using namespace ferry;
using namespace ferry::test;

TEST_SUITE("plugins.examples.add_field") {
  TEST_CASE("adds the field to records without it, in one batch; leaves the others alone") {
    PluginFixture f(FERRY_EXAMPLE_PLUGINS_DIR);
    auto made = f.processor("add_field", "field: site\nvalue: 'x\"y'", "tag");
    REQUIRE(made.isOk());
    std::unique_ptr<Processor> p = std::move(made).value();

    RecordBatch in;
    for (const char* r :
         {R"({"a":1})", R"({})", R"({ })", R"({"site":"keep"})", R"({"n":{"site":1}})",
          R"({"s":"\"site\":","t":[{"site":2}]})", R"({"a":1,"site":"last"})"}) {
      in.append(r);
    }
    RecordBatch out;
    ProcessResult result;
    REQUIRE(p->process("s", in, out, result).isOk());
    REQUIRE(out.size() == 7);
    CHECK(out[0] == R"({"a":1,"site":"x\"y"})");
    CHECK(out[1] == R"({"site":"x\"y"})");
    CHECK(out[2] == R"({ "site":"x\"y"})");
    CHECK(out[3] == R"({"site":"keep"})");
    CHECK(out[4] == R"({"n":{"site":1},"site":"x\"y"})");
    CHECK(out[5] == R"({"s":"\"site\":","t":[{"site":2}],"site":"x\"y"})");
    CHECK(out[6] == R"({"a":1,"site":"last"})");
    CHECK(result.filtered == 0);
    CHECK(result.dropped.empty());
  }

  TEST_CASE("a field name that is not a plain identifier is refused at create()") {
    PluginFixture f(FERRY_EXAMPLE_PLUGINS_DIR);
    auto made = f.processor("add_field", "field: 'a b'\nvalue: v", "tag");
    REQUIRE_FALSE(made.isOk());
    CHECK(made.status().message() ==
          "add_field: field must be 1-128 characters of a-z, A-Z, 0-9 and _");
  }
}
