// Out-of-tree plugins inside the real agent: the example C input (counter) and C++ processor
// (add_field), loaded from build/lib/ferry/plugins/ through agent.plugins_dir, deliver exactly
// the counter's records, each with the added field, to a file output;
// `ferry validate` and `ferry run` refuse a directory holding a library of another ABI
// version, naming it; `ferry plugins --plugins-dir` lists what was loaded.
#include <doctest/doctest.h>
#include <signal.h>

#include <string>

#include "tests/support/plugin_libs.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

using namespace ferry::test;
using namespace std::chrono_literals;

namespace {

const std::string kFerry = FERRY_BINARY;
const std::string kExamples = FERRY_EXAMPLE_PLUGINS_DIR;

}  // namespace

TEST_SUITE("integration.plugin_abi") {
  TEST_CASE(
      "the example input and processor run inside the agent; records reach the file exactly") {
    TempDir dir;
    const std::string out = dir.file("out/records.ndjson");
    writeFile(dir.file("ferry.yaml"), "agent: { id: it-abi, data_dir: " + dir.file("data") +
                                          ", plugins_dir: " + kExamples +
                                          " }\n"
                                          "inputs:\n"
                                          "  - name: numbers\n"
                                          "    type: counter\n"
                                          "    count: 3\n"
                                          "    total: 7\n"
                                          "    prefix: it\n"
                                          "    interval: 50ms\n"
                                          "processors:\n"
                                          "  - type: add_field\n"
                                          "    match: numbers\n"
                                          "    field: site\n"
                                          "    value: lab-1\n"
                                          "outputs:\n"
                                          "  - name: local\n"
                                          "    type: file\n"
                                          "    path: " +
                                          out + "\n");
    Process ferry({kFerry, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "ferry");
    const bool got = eventually([&] { return lineCount(out) >= 7; }, 15s);
    INFO("stderr: ", ferry.stderrText());
    REQUIRE(got);
    ferry.signal(SIGTERM);
    const auto code = ferry.wait(6s);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    std::string want;
    for (int i = 1; i <= 7; ++i) {
      want += "{\"seq\":" + std::to_string(i) + ",\"msg\":\"it-" + std::to_string(i) +
              "\",\"site\":\"lab-1\"}\n";
    }
    CHECK(readFile(out) == want);
  }

  TEST_CASE("SIGHUP swaps in new plugin instances; the old ones are destroyed cleanly") {
    TempDir dir;
    const std::string out = dir.file("out.ndjson");
    auto config = [&](const std::string& value) {
      std::string text = "agent: { id: it-abi, data_dir: " + dir.file("data") +
                         ", plugins_dir: " + kExamples + " }\n";
      text += "inputs:\n  - type: counter\n    interval: 20ms\n";
      text += "processors:\n  - type: add_field\n    field: v\n    value: " + value + "\n";
      text += "outputs:\n  - type: file\n    path: " + out + "\n";
      writeFile(dir.file("ferry.yaml"), text);
    };
    config("first");
    Process ferry({kFerry, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "ferry");
    auto count = [&](const std::string& needle) {
      const std::string text = readFile(out);
      size_t n = 0;
      for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
        ++n;
      return n;
    };
    REQUIRE(eventually([&] { return count("\"v\":\"first\"") >= 3; }, 10s));
    config("second");
    ferry.signal(SIGHUP);
    const bool swapped = eventually([&] { return count("\"v\":\"second\"") >= 3; }, 10s);
    INFO("stderr: ", ferry.stderrText());
    REQUIRE(swapped);
    // The new counter instance starts again at 1, with the new processor's value.
    CHECK(count("{\"seq\":1,\"msg\":\"n-1\",\"v\":\"second\"}") == 1);
    ferry.signal(SIGTERM);
    const auto code = ferry.wait(6s);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
  }

  TEST_CASE("a library of another ABI version: validate exits 2 naming it, run refuses to start") {
    TempDir dir;
    const std::string plugins = dir.file("plugins");
    std::filesystem::create_directories(plugins);
    copyPluginLib(kExamples, "counter", plugins);
    copyPluginLib(FERRY_TEST_PLUGINS_DIR, "test_wrong_version", plugins);
    writeFile(dir.file("ferry.yaml"),
              "agent:\n"
              "  data_dir: " +
                  dir.file("data") +
                  "\n"
                  "  plugins_dir: " +
                  plugins +
                  "\n"
                  "inputs:\n"
                  "  - type: counter\n"
                  "outputs:\n"
                  "  - type: stdout\n");
    const std::string problem =
        dir.file("ferry.yaml") + ":3: agent.plugins_dir: " + plugins +
        "/test_wrong_version.so: built for plugin ABI version 2, but this ferry speaks "
        "version 1; rebuild the plugin against this ferry's ferry/plugin_abi.h";
    RunResult v =
        runCommand({kFerry, "validate", "-c", dir.file("ferry.yaml")}, dir.path().string());
    CHECK(v.code == 2);
    CHECK(v.out == problem + "\n");

    RunResult r =
        runCommand({kFerry, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), 10s);
    CHECK(r.code == 2);
    CHECK(r.err.find(problem) != std::string::npos);
    CHECK(r.err.find("not starting: 1 problem(s)") != std::string::npos);
  }

  TEST_CASE("ferry plugins --plugins-dir lists the loaded plugins with their options") {
    TempDir dir;
    RunResult r = runCommand({kFerry, "plugins", "--plugins-dir", kExamples}, dir.path().string());
    CHECK(r.code == 0);
    CHECK(r.out.find("  counter - example C plugin: numbered records every interval\n") !=
          std::string::npos);
    CHECK(r.out.find("    interval (duration) default 1s\n") != std::string::npos);
    CHECK(r.out.find("    field (string) required\n") != std::string::npos);
    CHECK(r.out.find("  input counter from " + kExamples + "/counter.so\n") != std::string::npos);
    CHECK(r.out.find("  processor add_field from " + kExamples + "/add_field.so\n") !=
          std::string::npos);

    RunResult v = runCommand({kFerry, "version"}, dir.path().string());
    CHECK(v.out.find("plugin_abi 1\n") != std::string::npos);
  }
}
