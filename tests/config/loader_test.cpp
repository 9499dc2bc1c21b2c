#include "agent/config/loader.h"

#include <doctest/doctest.h>
#include <stdlib.h>

#include "tests/support/temp_dir.h"

using namespace ferry;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view kFormats[] = {"json", "text"};
const OptionSpec kPointOptions[] = {
    {.key = "name", .type = OptionType::kString, .help = "field", .required = true},
    {.key = "scale", .type = OptionType::kDouble, .default_value = "1", .help = "factor"},
};
const OptionSpec kProbeOptions[] = {
    {.key = "points", .type = OptionType::kObjectList, .help = "what to read", .fields = kPointOptions},
    {.key = "paths", .type = OptionType::kStringList, .help = "files", .required = true},
    {.key = "interval", .type = OptionType::kDuration, .default_value = "1s", .help = "poll"},
    {.key = "format", .type = OptionType::kEnum, .default_value = "json", .help = "fmt", .choices = kFormats},
    {.key = "max_line", .type = OptionType::kSize, .default_value = "16KiB", .help = "limit"},
    {.key = "tags", .type = OptionType::kStringList, .default_value = "[a, b]", .help = "tags"},
};
const OptionSpec kSinkOptions[] = {
    {.key = "path", .type = OptionType::kString, .help = "where", .required = true},
    {.key = "token", .type = OptionType::kString, .help = "auth", .secret = true},
    {.key = "sync", .type = OptionType::kBool, .default_value = "true", .help = "fsync"},
    {.key = "max_files", .type = OptionType::kInt, .default_value = "5", .help = "keep"},
};
const PluginDescriptor kProbe{.kind = PluginKind::kInput, .name = "probe", .summary = "test input",
                              .options = kProbeOptions};
const PluginDescriptor kSink{.kind = PluginKind::kOutput, .name = "sink", .summary = "test output",
                             .options = kSinkOptions};
const PluginDescriptor* const kTable[] = {&kProbe, &kSink};
const PluginRegistry kRegistry(kTable);

LoadResult load(std::string_view text) { return loadConfigText(text, "test.yaml", kRegistry); }

std::string joined(const LoadResult& r) {
  std::string s;
  for (const auto& p : r.problems) s += p.toString() + "\n";
  return s;
}

}  // namespace

TEST_SUITE("config.loader") {
  TEST_CASE("a valid document fills defaults and typed values") {
    LoadResult r = load(R"(
agent: { id: gw-07, data_dir: /tmp/x }
log: { level: debug, format: json }
buffer:
  max_bytes: 8MiB
  when_full: drop_oldest
  block: { max_records: 500 }
inputs:
  - name: logs
    type: probe
    paths: [/var/log/a.log, /var/log/b.log]
    interval: 250ms
outputs:
  - { type: sink, path: /tmp/out.ndjson, match: "log*" }
)");
    INFO(joined(r));
    REQUIRE(r.config);
    const Config& c = *r.config;
    CHECK(c.agent.id == "gw-07");
    CHECK(c.log.level == LogLevel::kDebug);
    CHECK(c.log.format == LogFormat::kJson);
    CHECK(c.buffer.max_bytes == 8u << 20);
    CHECK(c.buffer.when_full == WhenFull::kDropOldest);
    CHECK(c.buffer.block_max_records == 500);
    CHECK(c.buffer.block_max_bytes == 256u << 10);
    CHECK(c.buffer.block_max_wait == 50ms);
    CHECK(c.buffer.max_age == std::chrono::hours(24 * 7));
    REQUIRE(c.inputs.size() == 1);
    CHECK(c.inputs[0].name == "logs");
    CHECK(c.inputs[0].stream == "logs");
    CHECK(c.inputs[0].options.getStringList("paths").size() == 2);
    CHECK(c.inputs[0].options.getDuration("interval") == 250ms);
    CHECK(c.inputs[0].options.getString("format") == "json");
    CHECK(c.inputs[0].options.getSize("max_line") == 16384);
    CHECK(c.inputs[0].options.getStringList("tags") == std::vector<std::string>{"a", "b"});
    CHECK_FALSE(c.inputs[0].options.has("type"));  // common keys are the core's
    REQUIRE(c.outputs.size() == 1);
    CHECK(c.outputs[0].name == "sink");
    CHECK(c.outputs[0].match == "log*");
    CHECK(c.outputs[0].retry.initial_backoff == 1s);
    CHECK(c.outputs[0].retry.window == 4);
    CHECK(c.outputs[0].retry.max_backoff == 60s);
    CHECK(c.outputs[0].options.getBool("sync"));
    CHECK(c.outputs[0].options.getInt("max_files") == 5);
    CHECK(c.outputs[0].options.where("path").describe() == "test.yaml:14: outputs[0].path");
    CHECK(c.hash.size() == 16);
  }

  TEST_CASE("three different mistakes are all reported with line and key path") {
    LoadResult r = load(R"(agent:
  id: gw-01
inputs:
  - type: probe
    paths: /var/log/not-a-list.log
    interval: 10 parsecs
outputs:
  - type: sink
    path: /tmp/o
    colour: blue
)");
    REQUIRE_FALSE(r.config);
    REQUIRE(r.problems.size() == 3);
    CHECK(r.problems[0].toString() == "test.yaml:5: inputs[0].paths: expected a list of strings");
    CHECK(r.problems[1].toString().rfind("test.yaml:6: inputs[0].interval: expected a duration", 0) == 0);
    CHECK(r.problems[2].toString().rfind("test.yaml:10: outputs[0].colour: unknown key (valid keys: name, type", 0) == 0);
  }

  TEST_CASE("missing required keys, unknown types, duplicate names, empty lists") {
    LoadResult r = load(R"(inputs:
  - type: probe
  - type: nosuch
outputs:
  - { type: sink, name: a, path: /x }
  - { type: sink, name: a, path: /y }
)");
    std::string all = joined(r);
    INFO(all);
    CHECK(all.find("test.yaml:2: inputs[0].paths: missing required key") != std::string::npos);
    CHECK(all.find("test.yaml:3: inputs[1].type: unknown input type \"nosuch\" (built in: probe)") != std::string::npos);
    CHECK(all.find("outputs[1].name: duplicate output name \"a\"") != std::string::npos);

    LoadResult empty = load("inputs: []\noutputs: []\n");
    std::string e = joined(empty);
    CHECK(e.find("inputs: at least one input is required") != std::string::npos);
    CHECK(e.find("outputs: at least one output is required") != std::string::npos);
  }

  TEST_CASE("wrong types, enums, sizes and sections") {
    LoadResult r = load(R"(buffer:
  max_bytes: lots
  when_full: explode
  block: 5
log: { level: chatty }
control: { mqtt: {} }
inputs: [{type: probe, paths: [a], interval: [1s]}]
outputs: [{type: sink, path: /x, sync: maybe, max_files: 2.5}]
)");
    std::string all = joined(r);
    INFO(all);
    CHECK(all.find("test.yaml:2: buffer.max_bytes: expected a size") != std::string::npos);
    CHECK(all.find("test.yaml:3: buffer.when_full: expected one of block|drop_oldest|drop_newest") != std::string::npos);
    CHECK(all.find("test.yaml:4: buffer.block: expected a mapping") != std::string::npos);
    CHECK(all.find("test.yaml:5: log.level: expected one of debug|info|warn|error") != std::string::npos);
    CHECK(all.find("test.yaml:6: control: section is part of Ferry's contract but not available") != std::string::npos);
    CHECK(all.find("inputs[0].interval: expected a duration, got a list") != std::string::npos);
    CHECK(all.find("outputs[0].sync: expected true or false") != std::string::npos);
    CHECK(all.find("outputs[0].max_files: expected an integer") != std::string::npos);
  }

  TEST_CASE("a key given twice is refused, not silently overridden") {
    LoadResult r = load(R"(buffer:
  max_bytes: 1GiB
  max_bytes: 2GiB
inputs: [{type: probe, paths: [a]}]
outputs:
  - type: sink
    path: /tmp/first
    path: /tmp/second
)");
    std::string all = joined(r);
    INFO(all);
    REQUIRE_FALSE(r.config);
    CHECK(all.find("test.yaml:3: buffer.max_bytes: key given twice (first at line 2)") != std::string::npos);
    CHECK(all.find("test.yaml:8: outputs[0].path: key given twice (first at line 7)") != std::string::npos);
  }

  TEST_CASE("a problem found after the walk does not disturb the rest of the document") {
    // Cross-key checks look nodes up again; yaml-cpp's reference semantics once let that
    // lookup overwrite the document, so later sections vanished.
    LoadResult r = load(R"(buffer:
  max_bytes: 100KiB
  block: { max_bytes: 256KiB }
inputs: [{type: probe, paths: [a]}]
outputs: [{type: sink, path: /o}]
)");
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].toString().rfind("test.yaml:2: buffer.max_bytes: must be at least buffer.block.max_bytes", 0) == 0);
  }

  TEST_CASE("broken YAML names the line") {
    LoadResult r = load("inputs:\n  - type: probe\n    paths: [a, b\n");
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].toString().rfind("test.yaml:", 0) == 0);
    CHECK(r.problems[0].message.find("not valid YAML or JSON") != std::string::npos);
  }

  TEST_CASE("a JSON document is accepted") {
    LoadResult r = load(R"({"agent": {"id": "j1"}, "inputs": [{"type": "probe", "paths": ["/a"]}],
                           "outputs": [{"type": "sink", "path": "/o"}]})");
    INFO(joined(r));
    REQUIRE(r.config);
    CHECK(r.config->agent.id == "j1");
    CHECK(r.config->inputs[0].options.getStringList("paths")[0] == "/a");
  }

  TEST_CASE("${ENV} substitution, with defaults and errors") {
    ::setenv("FERRY_TEST_DIR", "/srv/logs", 1);
    ::unsetenv("FERRY_TEST_UNSET");
    LoadResult r = load(R"(inputs: [{type: probe, paths: ["${FERRY_TEST_DIR}/a.log"], interval: "${FERRY_TEST_UNSET:-2s}"}]
outputs: [{type: sink, path: /o}]
)");
    INFO(joined(r));
    REQUIRE(r.config);
    CHECK(r.config->inputs[0].options.getStringList("paths")[0] == "/srv/logs/a.log");
    CHECK(r.config->inputs[0].options.getDuration("interval") == 2s);

    LoadResult bad = load(R"(inputs: [{type: probe, paths: [a]}]
outputs: [{type: sink, path: "${FERRY_TEST_UNSET}"}]
)");
    REQUIRE(bad.problems.size() == 1);
    CHECK(bad.problems[0].toString() ==
          "test.yaml:2: outputs[0].path: environment variable FERRY_TEST_UNSET is not set");
  }

  TEST_CASE("@file: secrets must not be readable by group or others") {
    test::TempDir dir;
    std::string good = dir.file("token");
    std::string open = dir.file("open-token");
    test::writeFile(good, "s3cr3t-token-value\n", 0600);
    test::writeFile(open, "leaky-token-value\n", 0644);
    LoadResult r = load("inputs: [{type: probe, paths: [a]}]\noutputs: [{type: sink, path: /o, token: \"@file:" +
                        good + "\"}]\n");
    INFO(joined(r));
    REQUIRE(r.config);
    CHECK(r.config->outputs[0].options.getString("token") == "s3cr3t-token-value");

    LoadResult bad = load("inputs: [{type: probe, paths: [a]}]\noutputs: [{type: sink, path: /o, token: \"@file:" +
                          open + "\"}]\n");
    REQUIRE(bad.problems.size() == 1);
    CHECK(bad.problems[0].message.find("readable by group or others (mode 0644); run: chmod 600") !=
          std::string::npos);

    LoadResult missing = load("inputs: [{type: probe, paths: [a]}]\noutputs: [{type: sink, path: /o, token: "
                              "\"@file:/nonexistent/ferry-token\"}]\n");
    REQUIRE(missing.problems.size() == 1);
    CHECK(missing.problems[0].message.find("No such file") != std::string::npos);
  }

  TEST_CASE("a missing file is reported with its path") {
    LoadResult r = loadConfigFile("/nonexistent/ferry.yaml", kRegistry);
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].toString().rfind("/nonexistent/ferry.yaml: cannot read", 0) == 0);
  }

  TEST_CASE("optionsFromYaml validates one table") {
    auto ok = optionsFromYaml("paths: [x]", kProbeOptions);
    REQUIRE(ok.isOk());
    CHECK(ok->getDuration("interval") == 1s);
    auto bad = optionsFromYaml("paths: [x]\nbogus: 1", kProbeOptions);
    REQUIRE_FALSE(bad.isOk());
    CHECK(bad.status().message().find("bogus: unknown key") != std::string::npos);
  }

  TEST_CASE("a list of objects: each item checked against its fields, with defaults and item paths") {
    LoadResult ok = load(R"(inputs:
  - type: probe
    paths: [/a]
    points:
      - {name: t, scale: 0.5}
      - name: p
outputs:
  - { type: sink, path: /x }
)");
    INFO(joined(ok));
    REQUIRE(ok.problems.empty());
    const Options& o = ok.config->inputs[0].options;
    REQUIRE(o.listSize("points") == 2);
    CHECK(o.getString(Options::itemKey("points", 0, "name")) == "t");
    CHECK(o.getDouble(Options::itemKey("points", 0, "scale")) == 0.5);
    CHECK(o.getString(Options::itemKey("points", 1, "name")) == "p");
    CHECK(o.getDouble(Options::itemKey("points", 1, "scale")) == 1);  // the item's default
    CHECK(o.where(Options::itemKey("points", 1, "name")).line == 6);
    LoadResult none = load("inputs: [{type: probe, paths: [/a]}]\noutputs: [{type: sink, path: /x}]\n");
    REQUIRE(none.config.has_value());
    CHECK(none.config->inputs[0].options.listSize("points") == 0);

    LoadResult bad = load(R"(inputs:
  - type: probe
    paths: [/a]
    points:
      - {name: t, colour: red}
      - {scale: 2}
      - just-a-string
  - type: probe
    paths: [/b]
    points: {name: t}
outputs:
  - { type: sink, path: /x }
)");
    const std::string all = joined(bad);
    INFO(all);
    CHECK(all.find("test.yaml:5: inputs[0].points[0].colour: unknown key (valid keys: name, scale)") !=
          std::string::npos);
    CHECK(all.find("test.yaml:6: inputs[0].points[1].name: missing required key") != std::string::npos);
    CHECK(all.find("test.yaml:7: inputs[0].points[2]: expected a mapping") != std::string::npos);
    CHECK(all.find("test.yaml:10: inputs[1].points: expected a list of objects") != std::string::npos);
  }
}
