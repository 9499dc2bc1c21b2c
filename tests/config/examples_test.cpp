// Every example config shipped in the repository validates against the built-in plugins.
#include <doctest/doctest.h>

#include <filesystem>

#include "agent/config/loader.h"

using namespace ferry;
namespace fs = std::filesystem;

TEST_SUITE("config.examples") {
  TEST_CASE("config/*.yaml and every plugin's sample.yaml are valid") {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(fs::path(FERRY_SOURCE_DIR) / "config")) {
      if (e.path().extension() == ".yaml") files.push_back(e.path());
    }
    for (const auto& e : fs::recursive_directory_iterator(fs::path(FERRY_SOURCE_DIR) / "plugins")) {
      if (e.path().filename() == "sample.yaml") files.push_back(e.path());
    }
    CHECK(files.size() >= 4);
    for (const fs::path& f : files) {
      LoadResult r = loadConfigFile(f.string(), PluginRegistry::builtin());
      std::string problems;
      for (const auto& p : r.problems) problems += p.toString() + "\n";
      INFO(f.string(), "\n", problems);
      CHECK(r.problems.empty());
    }
  }

  TEST_CASE("the embedded default config is valid") {
    LoadResult r = loadConfigText(embeddedDefaultConfig(), "<embedded default>", PluginRegistry::builtin());
    REQUIRE(r.config);
    CHECK(r.config->inputs.at(0).descriptor->name == "sysmetrics");
    CHECK(r.config->outputs.at(0).descriptor->name == "stdout");
  }
}
