// The out-of-tree plugin loader (agent/core/plugin_loader.cpp): which libraries it
// accepts and refuses, and the C++ adapters around the C ABI, with real libraries built
// from tests/support/abi_test_plugins.c and plugins/examples/.
#include "agent/core/plugin_loader.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <algorithm>

#include "agent/config/loader.h"
#include "tests/support/fakes.h"
#include "tests/support/log_capture.h"
#include "tests/support/plugin_libs.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

using namespace ferry;
using namespace ferry::test;
using namespace std::chrono_literals;

namespace {

const std::string kTestLibs = FERRY_TEST_PLUGINS_DIR;
const std::string kExamples = FERRY_EXAMPLE_PLUGINS_DIR;

std::string joined(const std::vector<std::string>& problems) {
  std::string s;
  for (const std::string& p : problems) s += p + "\n";
  return s;
}

LoadedPlugins::DirResult loadOnly(const TempDir& dir) {
  return LoadedPlugins::loadDir(dir.path().string(), PluginRegistry::builtin());
}

// Emits nothing; lets each test see what a processor's tick produced.
class CaptureSink final : public TickSink {
 public:
  void emit(std::string_view stream, const RecordBatch& batch) override {
    for (size_t i = 0; i < batch.size(); ++i)
      records.emplace_back(std::string(stream) + " " + std::string(batch[i]));
  }
  std::vector<std::string> records;
};

}  // namespace

TEST_SUITE("core.plugin_loader") {
  TEST_CASE("good libraries load with their kind, summary and option table") {
    TempDir dir;
    copyPluginLib(kExamples, "counter", dir.path().string());
    copyPluginLib(kExamples, "add_field", dir.path().string());
    auto r = loadOnly(dir);
    INFO(joined(r.problems));
    REQUIRE(r.problems.empty());
    REQUIRE(r.plugins->descriptors().size() == 2);
    const PluginDescriptor* add = r.plugins->descriptors()[0];  // files load in name order
    const PluginDescriptor* counter = r.plugins->descriptors()[1];
    CHECK(add->kind == PluginKind::kProcessor);
    CHECK(add->name == "add_field");
    CHECK((add->make_processor != nullptr));
    CHECK(counter->kind == PluginKind::kInput);
    CHECK(counter->name == "counter");
    CHECK(r.plugins->files()[1] == dir.file("counter.so"));
    REQUIRE(counter->options.size() == 4);
    CHECK(counter->options[3].key == "interval");
    CHECK(counter->options[3].type == OptionType::kDuration);
    CHECK(counter->options[3].default_value == "1s");
    CHECK(add->options[0].required);
  }

  TEST_CASE("a library of another ABI version is refused, naming the file and both versions") {
    TempDir dir;
    copyPluginLib(kTestLibs, "test_wrong_version", dir.path().string());
    auto r = loadOnly(dir);
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0] ==
          dir.file("test_wrong_version.so") +
              ": built for plugin ABI version 2, but this ferry speaks version 1; rebuild the "
              "plugin against this ferry's ferry/plugin_abi.h");
    CHECK(r.plugins->descriptors().empty());
  }

  TEST_CASE("a library without the entry symbol is refused") {
    TempDir dir;
    copyPluginLib(kTestLibs, "test_no_entry", dir.path().string());
    auto r = loadOnly(dir);
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0] ==
          dir.file("test_no_entry.so") +
              ": no ferry_plugin_entry() symbol: not a Ferry plugin (see ferry/plugin_abi.h)");
  }

  TEST_CASE("a file that is not a shared object is refused; other files are ignored") {
    TempDir dir;
    writeFile(dir.file("fake.so"), "this is text, not ELF\n");
    writeFile(dir.file("README.md"), "not a plugin, not looked at\n");
    copyPluginLib(kTestLibs, "test_tick", dir.path().string());
    auto r = loadOnly(dir);
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0] == dir.file("fake.so") + ": not a loadable shared object: not an ELF file");
    // The good library beside it still loads (the config is invalid either way).
    REQUIRE(r.plugins->descriptors().size() == 1);
    CHECK(r.plugins->descriptors()[0]->name == "test_tick");
  }

  TEST_CASE("a library built for another machine is refused, saying so") {
    TempDir dir;
    copyPluginLib(kExamples, "counter", dir.path().string());
    // Patch e_machine (offset 18, little-endian here) to one this host is not.
    std::string bytes = readFile(dir.file("counter.so"));
    REQUIRE(bytes.size() > 20);
    const uint16_t machine = static_cast<uint16_t>(static_cast<unsigned char>(bytes[18]) |
                                                   (static_cast<unsigned char>(bytes[19]) << 8));
    const uint16_t other = machine == 183 ? 62 : 183;  // AArch64, else x86-64
    bytes[18] = static_cast<char>(other & 0xff);
    bytes[19] = static_cast<char>(other >> 8);
    writeFile(dir.file("counter.so"), bytes, 0755);
    auto r = loadOnly(dir);
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0] ==
          dir.file("counter.so") +
              ": not a loadable shared object: built for another machine (ELF class 2, machine " +
              std::to_string(other) + "; this ferry: class 2, machine " + std::to_string(machine) +
              ")");
  }

  TEST_CASE("a name a built-in or another library already has is refused") {
    TempDir dir;
    copyPluginLib(kTestLibs, "test_service", dir.path().string(), "a.so");
    copyPluginLib(kTestLibs, "test_service", dir.path().string(), "b.so");
    copyPluginLib(kTestLibs, "test_tick", dir.path().string());
    const PluginDescriptor builtin_tick{
        .kind = PluginKind::kProcessor, .name = "test_tick", .summary = "x"};
    const PluginDescriptor* const table[] = {&builtin_tick};
    auto r = LoadedPlugins::loadDir(dir.path().string(), PluginRegistry(table));
    REQUIRE(r.problems.size() == 2);
    CHECK(r.problems[0] ==
          dir.file("b.so") + ": input \"test_service\" is already defined by " + dir.file("a.so"));
    CHECK(r.problems[1] ==
          dir.file("test_tick.so") + ": processor \"test_tick\" is built in; rename the plugin");
    REQUIRE(r.plugins->descriptors().size() == 1);
    CHECK(r.plugins->files()[0] == dir.file("a.so"));
  }

  TEST_CASE("an option default that does not convert is refused") {
    TempDir dir;
    copyPluginLib(kTestLibs, "test_bad_default", dir.path().string());
    auto r = loadOnly(dir);
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].find("test_bad_default.so: test_bad_default: bad default value: ") !=
          std::string::npos);
    CHECK(r.problems[0].find("limit: expected an integer, got \"ten\"") != std::string::npos);
  }

  TEST_CASE("a library anyone may write is refused; a missing directory is a problem") {
    TempDir dir;
    copyPluginLib(kTestLibs, "test_tick", dir.path().string());
    REQUIRE(::chmod(dir.file("test_tick.so").c_str(), 0666) == 0);
    auto r = loadOnly(dir);
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0] ==
          dir.file("test_tick.so") +
              ": writable by anyone (mode 0666): whoever can write it runs code inside the agent; "
              "run: chmod o-w " +
              dir.file("test_tick.so"));
    auto missing = LoadedPlugins::loadDir(dir.file("nope"), PluginRegistry::builtin());
    REQUIRE(missing.problems.size() == 1);
    CHECK(missing.problems[0] ==
          dir.file("nope") + ": cannot read the plugins directory: No such file or directory");
  }

  TEST_CASE(
      "the config loader validates a plugin's options like a built-in's, with file and line") {
    TempDir dir;
    copyPluginLib(kExamples, "counter", dir.path().string());
    const std::string head =
        "agent:\n  data_dir: /tmp/x\n  plugins_dir: " + dir.path().string() + "\n";
    const std::string tail = "outputs:\n  - type: stdout\n";
    {
      LoadResult r = loadConfigText(
          head + "inputs:\n  - type: counter\n    count: many\n    colour: red\n" + tail,
          "test.yaml", PluginRegistry::builtin());
      std::vector<std::string> got;
      for (const ConfigProblem& p : r.problems) got.push_back(p.toString());
      INFO(joined(got));
      REQUIRE(got.size() == 2);
      CHECK(got[0] == "test.yaml:6: inputs[0].count: expected an integer, got \"many\"");
      CHECK(got[1].starts_with(
          "test.yaml:7: inputs[0].colour: unknown key (valid keys: name, type, stream, count, "
          "total, prefix, interval)"));
    }
    {
      LoadResult r = loadConfigText(head + "inputs:\n  - type: counter\n    count: 5\n" + tail,
                                    "test.yaml", PluginRegistry::builtin());
      REQUIRE(r.problems.empty());
      REQUIRE(r.config->inputs.size() == 1);
      CHECK(r.config->inputs[0].descriptor->name == "counter");
      CHECK(r.config->inputs[0].options.getInt("count") == 5);
      CHECK(r.config->inputs[0].options.getDuration("interval") == 1s);  // the library's default
      CHECK(r.config->agent.plugins_dir == dir.path().string());
      // An unknown type names the built-ins and the loaded plugins apart.
      LoadResult unknown = loadConfigText(head + "inputs:\n  - type: countr\n" + tail, "test.yaml",
                                          PluginRegistry::builtin());
      REQUIRE(unknown.problems.size() == 1);
      const std::string msg = unknown.problems[0].toString();
      CHECK(msg.starts_with(
          "test.yaml:5: inputs[0].type: unknown input type \"countr\" (built in: "));
      CHECK(msg.ends_with("; from plugins_dir: counter)"));
      REQUIRE(r.config->plugins != nullptr);
    }
    {
      // A processor plugin's options, the same way.
      copyPluginLib(kExamples, "add_field", dir.path().string());
      LoadResult r =
          loadConfigText(head +
                             "inputs:\n  - type: counter\nprocessors:\n  - type: add_field\n"
                             "    value: 3\n" +
                             tail,
                         "test.yaml", PluginRegistry::builtin());
      REQUIRE(r.problems.size() == 1);
      CHECK(r.problems[0].toString() == "test.yaml:7: processors[0].field: missing required key");
    }
    {
      // Without plugins_dir the type is unknown.
      LoadResult r = loadConfigText("inputs:\n  - type: counter\n" + tail, "test.yaml",
                                    PluginRegistry::builtin());
      REQUIRE(r.problems.size() == 1);
      CHECK(r.problems[0].toString().starts_with(
          "test.yaml:2: inputs[0].type: unknown input type \"counter\""));
    }
    {
      // Any unusable library in the directory makes the config invalid, at plugins_dir's line.
      copyPluginLib(kTestLibs, "test_wrong_version", dir.path().string());
      LoadResult r = loadConfigText(head + "inputs:\n  - type: counter\n" + tail, "test.yaml",
                                    PluginRegistry::builtin());
      REQUIRE(r.problems.size() == 1);
      CHECK(r.problems[0].toString() ==
            "test.yaml:3: agent.plugins_dir: " + dir.file("test_wrong_version.so") +
                ": built for plugin ABI version 2, but this ferry speaks version 1; "
                "rebuild the plugin against this ferry's ferry/plugin_abi.h");
      CHECK_FALSE(r.config);
    }
  }

  TEST_CASE(
      "a service input emits from its own thread through the adapter; bad lines are counted") {
    TempDir dir;
    copyPluginLib(kTestLibs, "test_service", dir.path().string());
    PluginFixture f(dir.path().string());
    LogCapture log;
    auto made = f.input("test_service", "batches: 4", "svc");
    REQUIRE(made.isOk());
    std::unique_ptr<Input> in = std::move(made).value();
    CHECK(in->interval() == Duration::zero());
    CaptureEmitter emitter;
    REQUIRE(in->start(emitter).isOk());
    const bool all = eventually(
        [&] {
          std::lock_guard lock(emitter.mu_);
          return emitter.dropped["test_reason"] == 4;
        },
        5s);
    in->stop();
    REQUIRE(all);
    CHECK(emitter.records ==
          std::vector<std::string>{R"({"i":0})", R"({"i":1})", R"({"i":2})", R"({"i":3})"});
    CHECK(emitter.streams == std::vector<std::string>{"", "odd", "", "odd"});
    CHECK(emitter.dropped["plugin_bad_record"] == 4);
    CHECK(log.count("svc: test_service serving") == 1);
  }

  TEST_CASE("a processor runs batches through the adapter: kept, filtered, refused, bad, ticks") {
    TempDir dir;
    copyPluginLib(kTestLibs, "test_tick", dir.path().string());
    PluginFixture f(dir.path().string());
    LogCapture log;
    auto made = f.processor("test_tick", "every: 250ms\nlabels: [x, \"q\\\"y\"]", "tk");
    REQUIRE(made.isOk());
    std::unique_ptr<Processor> p = std::move(made).value();
    // create() saw both forms of the config: typed values and the JSON object.
    CHECK(log.count("labels x+q\"y") == 1);
    CHECK(log.count(R"({"every":250000000,"labels":["x","q\"y"]})") == 1);
    CHECK(p->tickInterval() == 250ms);

    RecordBatch in;
    for (const char* r :
         {R"({"a":1})", R"({"drop":1})", R"({"refuse":1})", R"({"garbage":1})", R"({"b":2})"}) {
      in.append(r);
    }
    RecordBatch out;
    ProcessResult result;
    REQUIRE(p->process("s1", in, out, result).isOk());
    REQUIRE(out.size() == 2);
    CHECK(out[0] == R"({"a":1})");
    CHECK(out[1] == R"({"b":2})");
    CHECK(result.filtered == 1);
    CHECK(result.dropped == std::vector<std::pair<std::string_view, uint64_t>>{
                                {"test_refused", 1}, {"plugin_bad_record", 1}});

    RecordBatch out2;
    ProcessResult result2;
    Status failed = p->process("fail", in, out2, result2);
    CHECK(failed.code() == StatusCode::kInvalidArgument);
    CHECK(failed.message() == "tk: stream fail is refused");

    CaptureSink sink;
    ProcessResult tick_result;
    p->tick(SteadyTime{}, false, sink, tick_result);
    p->tick(SteadyTime{}, true, sink, tick_result);
    CHECK(sink.records == std::vector<std::string>{R"(ticks {"ticks":1,"final":false})",
                                                   R"(ticks {"ticks":2,"final":true})"});
  }

  TEST_CASE("an instance keeps its library loaded after the loaded set is gone") {
    TempDir dir;
    copyPluginLib(kExamples, "counter", dir.path().string());
    std::unique_ptr<Input> in;
    {
      PluginFixture f(dir.path().string());
      auto made = f.input("counter", "count: 2", "c");
      REQUIRE(made.isOk());
      in = std::move(made).value();
    }
    CaptureEmitter emitter;
    REQUIRE(in->collect(emitter).isOk());  // the code of counter.so still runs
    CHECK(emitter.records.size() == 2);
  }

  TEST_CASE("a loaded plugin's factory needs its descriptor in the context") {
    TempDir dir;
    copyPluginLib(kExamples, "counter", dir.path().string());
    PluginFixture f(dir.path().string());
    const PluginDescriptor& d = f.find(PluginKind::kInput, "counter");
    auto made = d.make_input(PluginContext{}, Options());
    REQUIRE_FALSE(made.isOk());
    CHECK(made.status().code() == StatusCode::kInternal);
  }
}
