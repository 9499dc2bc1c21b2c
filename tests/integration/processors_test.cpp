// Processors inside the real agent: a tail input's records pass filter, rename, set, drop and
// enrich (in config order, each with its match) on their way to a file output; the output
// holds exactly the expected records, the counters say what happened, and a file position
// whose lines were all filtered out is still committed (a restart does not read them again).
// Text lines parsed as logfmt by the parse processor arrive as fields.
#include <doctest/doctest.h>
#include <signal.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/net.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

using namespace ferry::test;
using namespace std::chrono_literals;

namespace {

const std::string kFerry = FERRY_BINARY;

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

void appendLines(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::app | std::ios::binary);
  f << text;
}

double processorMetric(const std::string& metrics_addr, const std::string& processor,
                       const std::string& result) {
  return metricValue(
      httpGet(metrics_addr, "/metrics"),
      "ferry_processor_records_total{processor=\"" + processor + "\",result=\"" + result + "\"}");
}

}  // namespace

TEST_SUITE("integration.processors") {
  TEST_CASE(
      "tail -> filter, rename, set, drop, enrich -> file: exact records, counters, committed "
      "offsets") {
    TempDir dir;
    const std::string in = dir.file("sensors.log");
    const std::string other = dir.file("other.log");
    const std::string out = dir.file("out/records.ndjson");
    const std::string metrics = "127.0.0.1:" + std::to_string(freePort());
    writeFile(in,
              "{\"temp\":31.5,\"site\":\"north\",\"debug\":\"x\",\"seq\":1}\n"
              "{\"temp\":12.0,\"site\":\"north\",\"seq\":2}\n"
              "{\"temp\":45,\"site\":\"s\\u00fcd\",\"seq\":3,\"dev\":{\"id\":\"a\",\"fw\":\"1\"}}\n"
              "{\"temp\":\"hot\",\"seq\":4}\n"
              "{\"temp\":33,\"site\":\"north\",\"seq\":5,\"debug\":{\"x\":[1,2]}}\n");
    writeFile(other, "{\"temp\":1,\"note\":\"kept: the filter only matches sensors\"}\n");
    writeFile(dir.file("ferry.yaml"), "agent: { id: it-proc, data_dir: " + dir.file("data") +
                                          " }\n"
                                          "buffer: { block: { max_wait: 20ms } }\n"
                                          "metrics: { listen: \"" +
                                          metrics +
                                          "\" }\n"
                                          "inputs:\n"
                                          "  - { name: sensors, type: tail, paths: [\"" +
                                          in +
                                          "\"], poll_interval: 50ms }\n"
                                          "  - { name: other, type: tail, paths: [\"" +
                                          other +
                                          "\"], poll_interval: 50ms }\n"
                                          "processors:\n"
                                          "  - type: filter\n"
                                          "    match: sensors\n"
                                          "    expression: 'temp > 30'\n"
                                          "  - type: rename\n"
                                          "    fields: {seq: sequence, dev.fw: firmware}\n"
                                          "  - type: set\n"
                                          "    fields: {unit: C, meta.checked: true}\n"
                                          "  - type: drop\n"
                                          "    fields: [debug]\n"
                                          "  - type: enrich\n"
                                          "    match: sensors\n"
                                          "    tags: {plant: p7}\n"
                                          "    agent_id: true\n"
                                          "    config_version: true\n"
                                          "outputs:\n"
                                          "  - { name: local, type: file, path: \"" +
                                          out + "\" }\n");
    const std::vector<std::string> expected_sensors = {
        R"({"temp":31.5,"site":"north","sequence":1,"unit":"C","meta":{"checked":true},"plant":"p7","agent":"it-proc","config_version":0})",
        R"({"temp":45,"site":"s\u00fcd","dev":{"id":"a"},"sequence":3,"firmware":"1","unit":"C","meta":{"checked":true},"plant":"p7","agent":"it-proc","config_version":0})",
        R"({"temp":33,"site":"north","sequence":5,"unit":"C","meta":{"checked":true},"plant":"p7","agent":"it-proc","config_version":0})",
    };
    const std::string expected_other =
        R"({"temp":1,"note":"kept: the filter only matches sensors","unit":"C","meta":{"checked":true}})";
    {
      Process ferry({kFerry, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "ferry");
      const bool got = eventually([&] { return lineCount(out) >= 4; }, 20s);
      INFO("stderr: ", ferry.stderrText());
      REQUIRE(got);
      // The file output writes each stream's blocks in order; the two inputs interleave.
      std::vector<std::string> sensors, others;
      for (const std::string& l : lines(readFile(out)))
        (l.find("\"plant\"") != std::string::npos ? sensors : others).push_back(l);
      CHECK(sensors == expected_sensors);
      CHECK(others == std::vector<std::string>{expected_other});

      CHECK(processorMetric(metrics, "filter", "in") == 5);
      CHECK(processorMetric(metrics, "filter", "out") == 3);
      CHECK(processorMetric(metrics, "filter", "filtered") == 2);  // 12.0 and "hot"
      CHECK(processorMetric(metrics, "rename", "in") == 4);        // 3 sensors + 1 other
      CHECK(processorMetric(metrics, "enrich", "in") == 3);

      // Lines that are all filtered out still move the committed file position.
      appendLines(in, "{\"temp\":1,\"seq\":6}\n{\"temp\":2,\"seq\":7}\n");
      REQUIRE(eventually([&] { return processorMetric(metrics, "filter", "filtered") == 4; }, 10s));
      ferry.signal(SIGTERM);
      const auto code = ferry.wait(6s);
      REQUIRE(code.has_value());
      CHECK(*code == 0);
    }
    {
      // Restart: only the new line is read (the filtered ones above are not read again).
      appendLines(in, "{\"temp\":99,\"seq\":8}\n");
      Process ferry({kFerry, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "ferry2");
      const bool got = eventually([&] { return lineCount(out) >= 5; }, 20s);
      INFO("stderr: ", ferry.stderrText());
      REQUIRE(got);
      CHECK(
          lines(readFile(out)).back() ==
          R"({"temp":99,"sequence":8,"unit":"C","meta":{"checked":true},"plant":"p7","agent":"it-proc","config_version":0})");
      CHECK(processorMetric(metrics, "filter", "in") == 1);
      CHECK(processorMetric(metrics, "filter", "filtered") == 0);
      ferry.signal(SIGTERM);
      const auto code = ferry.wait(6s);
      REQUIRE(code.has_value());
      CHECK(*code == 0);
    }
    CHECK(lineCount(out) == 5);
  }

  TEST_CASE(
      "tail (text) -> parse logfmt -> filter -> file: lines become fields, unparsable ones are "
      "counted") {
    TempDir dir;
    const std::string in = dir.file("app.log");
    const std::string out = dir.file("out/records.ndjson");
    const std::string metrics = "127.0.0.1:" + std::to_string(freePort());
    writeFile(in,
              "level=info msg=\"started ok\" port=8080\n"
              "level=debug msg=noise\n"
              "level=error msg=\"disk full\" used=0.98 ville=Z\xc3\xbcrich\n"
              "level=error msg=\"unterminated\n");
    writeFile(dir.file("ferry.yaml"), "agent: { id: it-parse, data_dir: " + dir.file("data") +
                                          " }\n"
                                          "buffer: { block: { max_wait: 20ms } }\n"
                                          "metrics: { listen: \"" +
                                          metrics +
                                          "\" }\n"
                                          "inputs:\n"
                                          "  - { name: app, type: tail, format: text, paths: [\"" +
                                          in +
                                          "\"], poll_interval: 50ms }\n"
                                          "processors:\n"
                                          "  - { type: parse, format: logfmt }\n"
                                          "  - { type: filter, expression: 'level != \"debug\"' }\n"
                                          "  - { type: drop, fields: [path] }\n"
                                          "outputs:\n"
                                          "  - { name: local, type: file, path: \"" +
                                          out + "\" }\n");
    Process ferry({kFerry, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "ferry");
    const bool got = eventually(
        [&] {
          return lineCount(out) >= 2 &&
                 metricValue(httpGet(metrics, "/metrics"),
                             "ferry_dropped_records_total{reason=\"bad_logfmt\"}") == 1;
        },
        20s);
    INFO("stderr: ", ferry.stderrText());
    REQUIRE(got);
    CHECK(lines(readFile(out)) ==
          std::vector<std::string>{R"({"level":"info","msg":"started ok","port":8080})",
                                   "{\"level\":\"error\",\"msg\":\"disk "
                                   "full\",\"used\":0.98,\"ville\":\"Z\xc3\xbcrich\"}"});
    const std::string m = httpGet(metrics, "/metrics");
    CHECK(metricValue(
              m, "ferry_processor_parse_errors_total{processor=\"parse\",reason=\"bad_logfmt\"}") ==
          1);
    CHECK(processorMetric(metrics, "filter", "filtered") == 1);
    ferry.signal(SIGTERM);
    const auto code = ferry.wait(6s);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
  }

  TEST_CASE("ferry validate runs the processors' factories and names the key") {
    TempDir dir;
    writeFile(dir.file("bad.yaml"),
              "agent: { id: v, data_dir: " + dir.file("data") +
                  " }\n"
                  "inputs: [ { name: a, type: exec, command: [/bin/true] } ]\n"
                  "processors:\n"
                  "  - type: filter\n"
                  "    expression: '(temp > 3'\n"
                  "  - type: sample\n"
                  "    rate: 2\n"
                  "outputs: [ { type: stdout } ]\n");
    RunResult r = runCommand({kFerry, "validate", "-c", dir.file("bad.yaml")}, dir.path().string());
    CHECK(r.code == 2);
    CHECK(r.out.find(dir.file("bad.yaml") + ":5: processors[0].expression: filter expression: "
                                            "column 10: expected ')' after \"(temp > 3\"") !=
          std::string::npos);
    CHECK(r.out.find(dir.file("bad.yaml") + ":7: processors[1].rate: must be in (0, 1]") !=
          std::string::npos);
  }
}
