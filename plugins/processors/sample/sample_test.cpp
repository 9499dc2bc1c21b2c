#include <doctest/doctest.h>

#include "tests/support/processor_harness.h"

namespace ferry {
const PluginDescriptor& sampleProcessorDescriptor();

using test::makeProcessor;
using test::processorError;

namespace {
std::vector<std::string> numbered(int first, int count) {
  std::vector<std::string> v;
  for (int i = 0; i < count; ++i) v.push_back("{\"n\":" + std::to_string(first + i) + "}");
  return v;
}
}  // namespace

TEST_SUITE("processors.sample") {
  TEST_CASE("every: N keeps the 1st of each N, across batches") {
    auto p = makeProcessor(sampleProcessorDescriptor(), "every: 3\n");
    REQUIRE(p.isOk());
    ProcessResult r;
    CHECK(test::run(**p, numbered(0, 5), &r) ==
          std::vector<std::string>{R"({"n":0})", R"({"n":3})"});
    CHECK(r.filtered == 3);
    CHECK(test::run(**p, numbered(5, 4)) == std::vector<std::string>{R"({"n":6})"});
  }

  TEST_CASE("rate keeps exactly that share, evenly spread") {
    auto p = makeProcessor(sampleProcessorDescriptor(), "rate: 0.25\n");
    REQUIRE(p.isOk());
    CHECK(test::run(**p, numbered(0, 8)) == std::vector<std::string>{R"({"n":3})", R"({"n":7})"});
    auto third = makeProcessor(sampleProcessorDescriptor(), "rate: 0.001\n");
    REQUIRE(third.isOk());
    ProcessResult r;
    size_t kept = 0;
    for (int b = 0; b < 100; ++b) kept += test::run(**third, numbered(b * 1000, 1000), &r).size();
    CHECK(kept == 100);
    CHECK(r.filtered == 99900);
    auto all = makeProcessor(sampleProcessorDescriptor(), "rate: 1\n");
    REQUIRE(all.isOk());
    CHECK(test::run(**all, numbered(0, 10)).size() == 10);
  }

  TEST_CASE("bad options") {
    CHECK(processorError(sampleProcessorDescriptor(), "{}\n") ==
          "options: give exactly one of rate and every");
    CHECK(processorError(sampleProcessorDescriptor(), "rate: 0.5\nevery: 2\n") ==
          "options: give exactly one of rate and every");
    CHECK(processorError(sampleProcessorDescriptor(), "rate: 1.5\n") ==
          "<options>:1: rate: must be in (0, 1] and at least 0.000001");
    CHECK(processorError(sampleProcessorDescriptor(), "rate: 0\n") ==
          "<options>:1: rate: must be in (0, 1] and at least 0.000001");
    CHECK(processorError(sampleProcessorDescriptor(), "every: 0\n") ==
          "<options>:1: every: must be at least 1");
  }
}

}  // namespace ferry
