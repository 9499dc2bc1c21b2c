#include "agent/core/registry.h"

#include <doctest/doctest.h>

using namespace ferry;

TEST_SUITE("core.registry") {
  TEST_CASE("the built-in table holds the enabled plugins with option tables") {
    const PluginRegistry& r = PluginRegistry::builtin();
    const PluginDescriptor* sys = r.find(PluginKind::kInput, "sysmetrics");
    REQUIRE(sys != nullptr);
    CHECK((sys->make_input != nullptr));
    CHECK_FALSE(sys->options.empty());
    const PluginDescriptor* file = r.find(PluginKind::kOutput, "file");
    REQUIRE(file != nullptr);
    CHECK((file->make_output != nullptr));
    REQUIRE(r.find(PluginKind::kOutput, "stdout") != nullptr);
    CHECK(r.find(PluginKind::kInput, "stdout") == nullptr);  // kinds are separate namespaces
    CHECK(r.find(PluginKind::kInput, "nosuch") == nullptr);
    for (const PluginDescriptor* d : r.all()) {
      CHECK_FALSE(d->summary.empty());
      for (const OptionSpec& o : d->options) {
        INFO(d->name, ".", o.key);
        CHECK_FALSE(o.help.empty());
        CHECK_FALSE((o.required && !o.default_value.empty()));
      }
    }
  }

  TEST_CASE("describe lists every plugin and its options") {
    std::string text = PluginRegistry::builtin().describe();
    CHECK(text.find("sysmetrics - ") != std::string::npos);
    CHECK(text.find("interval (duration) default 10s") != std::string::npos);
    CHECK(text.find("path (string) required") != std::string::npos);
    CHECK(text.find("Outputs (common keys: name type match retry window timeout dead_letter)") != std::string::npos);
  }

  TEST_CASE("a custom table is searchable") {
    const PluginDescriptor in{.kind = PluginKind::kInput, .name = "a", .summary = "x"};
    const PluginDescriptor* const table[] = {&in};
    PluginRegistry r(table);
    CHECK(r.find(PluginKind::kInput, "a") == &in);
    CHECK(r.names(PluginKind::kInput) == std::vector<std::string>{"a"});
    CHECK(r.names(PluginKind::kOutput).empty());
  }
}
