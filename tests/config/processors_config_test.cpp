// The `processors:` section: names, match, plugin options and errors (real built-in plugins).
#include <doctest/doctest.h>

#include "agent/config/loader.h"

using namespace ferry;

namespace {

LoadResult load(std::string_view processors) {
  std::string doc = R"(agent: { id: gw, data_dir: /tmp/ferry-test }
inputs:
  - { name: in, type: exec, command: ["/bin/true"] }
outputs:
  - { name: out, type: stdout }
)";
  doc += processors;
  return loadConfigText(doc, "p.yaml", PluginRegistry::builtin());
}

std::string joined(const LoadResult& r) {
  std::string s;
  for (const auto& p : r.problems) s += p.toString() + "\n";
  return s;
}

}  // namespace

TEST_SUITE("config.processors") {
  TEST_CASE("processors keep their order, get default names and match") {
    LoadResult r = load(R"(processors:
  - { type: filter, expression: "a > 1" }
  - { type: filter, expression: "b > 1", match: "sensor*" }
  - { type: filter, name: last, expression: "c > 1", action: drop }
)");
    REQUIRE_MESSAGE(r.config, joined(r));
    const auto& p = r.config->processors;
    REQUIRE(p.size() == 3);
    CHECK(p[0].name == "filter-0");  // the type repeats: <type>-<position>
    CHECK(p[1].name == "filter-1");
    CHECK(p[2].name == "last");
    CHECK(p[0].match == "*");
    CHECK(p[1].match == "sensor*");
    CHECK(p[0].options.getString("expression") == "a > 1");
    CHECK_FALSE(p[0].options.has("match"));  // common keys are the core's
    CHECK(p[2].options.getString("action") == "drop");
    CHECK(p[0].descriptor->kind == PluginKind::kProcessor);
  }

  TEST_CASE("a single processor of a type is named after it") {
    LoadResult r = load("processors:\n  - { type: filter, expression: \"a > 1\" }\n");
    REQUIRE_MESSAGE(r.config, joined(r));
    CHECK(r.config->processors.at(0).name == "filter");
  }

  TEST_CASE("errors name file, line and key path") {
    LoadResult r = load(R"(processors:
  - { type: filtre, expression: "a" }
  - { type: filter }
  - { type: filter, expression: "a", colour: red }
  - { type: filter, name: x, expression: "a" }
  - { type: filter, name: x, expression: "a", action: maybe }
  - type: filter
    name: ""
    expression: "a"
  - just a string
)");
    const std::string all = joined(r);
    CHECK(
        all.find(
            "p.yaml:7: processors[0].type: unknown processor type \"filtre\" (built in: filter") !=
        std::string::npos);
    CHECK(all.find("p.yaml:8: processors[1].expression: missing required key") !=
          std::string::npos);
    CHECK(all.find("p.yaml:9: processors[2].colour: unknown key (valid keys: name, type, match, "
                   "expression, action)") != std::string::npos);
    CHECK(all.find("p.yaml:11: processors[4].action: expected one of keep|drop, got \"maybe\"") !=
          std::string::npos);
    CHECK(all.find("p.yaml:13: processors[5].name: must not be empty") != std::string::npos);
    CHECK(all.find("p.yaml:15: processors[6]: expected a mapping with at least a type") !=
          std::string::npos);
  }

  TEST_CASE("duplicate names are refused") {
    LoadResult r = load(R"(processors:
  - { type: filter, name: f, expression: "a" }
  - { type: filter, name: f, expression: "b" }
)");
    CHECK(joined(r).find("processors[1].name: duplicate processor name \"f\"") !=
          std::string::npos);
  }

  TEST_CASE("processors must be a list") {
    LoadResult r = load("processors: { type: filter }\n");
    CHECK(joined(r).find("p.yaml:6: processors: expected a list of processors") !=
          std::string::npos);
  }

  TEST_CASE("an empty processors section is no processor") {
    LoadResult r = load("processors: []\n");
    REQUIRE_MESSAGE(r.config, joined(r));
    CHECK(r.config->processors.empty());
  }
}
