#include <doctest/doctest.h>
#include <unistd.h>

#include "tests/support/processor_harness.h"

namespace ferry {
const PluginDescriptor& enrichProcessorDescriptor();

using test::makeProcessor;
using test::processorError;
using test::runOne;
using V = std::vector<std::string>;

TEST_SUITE("processors.enrich") {
  TEST_CASE("tags, agent id, host name and config version") {
    char host[256] = {0};
    REQUIRE(::gethostname(host, sizeof host - 1) == 0);
    auto p = makeProcessor(
        enrichProcessorDescriptor(),
        "tags: {site: north, rack: 7}\nagent_id: true\nhostname: true\nconfig_version: true\n",
        "gw-\"7\"", 42);
    REQUIRE(p.isOk());
    CHECK(runOne(**p, R"({"v":1,"site":"old"})") ==
          V{R"({"v":1,"site":"north","rack":"7","agent":"gw-\"7\"","host":")" + std::string(host) +
            R"(","config_version":42})"});
  }

  TEST_CASE("a target object gathers the added fields") {
    auto p = makeProcessor(enrichProcessorDescriptor(),
                           "tags: {site: north}\nagent_id: true\ntarget: meta\n");
    REQUIRE(p.isOk());
    CHECK(runOne(**p, R"({"v":1,"meta":{"seq":3}})") ==
          V{R"({"v":1,"meta":{"seq":3,"site":"north","agent":"gw-1"}})"});
    CHECK(runOne(**p, R"({"v":1})") == V{R"({"v":1,"meta":{"site":"north","agent":"gw-1"}})"});
  }

  TEST_CASE("nothing to add is an error") {
    CHECK(processorError(enrichProcessorDescriptor(), "agent_id: false\n") ==
          "options: nothing to add: give tags, or set agent_id, hostname or config_version");
    CHECK(processorError(enrichProcessorDescriptor(), "agent_id: true\ntarget: 'a b'\n")
              .rfind("<options>:2: target: field path \"a b\"", 0) == 0);
  }
}

}  // namespace ferry
