// deadband, aggregate and throttle inside the real agent: exec inputs print fixed records,
// the processors shape them, file outputs (one per stream, so the order within each file
// is the stream's order) receive exactly the expected records, and the counters say what
// was held back and refused. The long aggregate window is emitted by the final tick at stop.
#include <doctest/doctest.h>
#include <signal.h>

#include <cstdint>
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

// A window record's bounds: checks that they are aligned to `window_ms` and `window_ms`
// apart, and returns the record with them replaced by "S" and "E".
std::string withoutBounds(const std::string& record, int64_t window_ms) {
  const std::string start_key = "{\"window_start\":";
  const std::string end_key = ",\"window_end\":";
  REQUIRE(record.rfind(start_key, 0) == 0);
  const size_t end_pos = record.find(end_key);
  REQUIRE(end_pos != std::string::npos);
  const int64_t start = std::stoll(record.substr(start_key.size(), end_pos - start_key.size()));
  const size_t after = record.find(',', end_pos + end_key.size());
  const int64_t end = std::stoll(record.substr(end_pos + end_key.size()));
  CHECK(start % window_ms == 0);
  CHECK(end - start == window_ms);
  return "{\"window_start\":S,\"window_end\":E" + record.substr(after);
}

std::string fileOutput(const std::string& name, const std::string& match, const std::string& path) {
  return "  - name: " + name + "\n    type: file\n    match: \"" + match + "\"\n    path: " + path +
         "\n";
}

std::string catInput(const std::string& name, const std::string& file) {
  return "  - name: " + name + "\n    type: exec\n    command: [/bin/cat, " + file +
         "]\n    interval: 1h\n";
}

}  // namespace

TEST_SUITE("integration.processors") {
  TEST_CASE("deadband, aggregate and throttle shape records inside the running agent") {
    TempDir dir;
    writeFile(dir.file("db.ndjson"),
              "{\"id\":\"a\",\"v\":10}\n"
              "{\"id\":\"b\",\"v\":5}\n"
              "{\"id\":\"a\",\"v\":10.5}\n"
              "{\"id\":\"a\",\"v\":11}\n"
              "{\"id\":\"b\",\"v\":\"err\"}\n"
              "{\"id\":\"a\",\"v\":11.5}\n"
              "{\"id\":\"b\",\"v\":3.5}\n"
              "{\"id\":\"b\",\"v\":4}\n");
    writeFile(dir.file("agg.ndjson"),
              "{\"sensor\":\"t1\",\"temp\":20}\n"
              "{\"sensor\":\"t2\",\"temp\":30}\n"
              "{\"sensor\":\"t1\",\"temp\":22.5}\n"
              "{\"sensor\":\"t1\",\"temp\":21}\n"
              "{\"sensor\":\"t2\",\"temp\":\"n/a\"}\n");
    std::string th;
    for (int i = 0; i < 20; ++i) th += "{\"n\":" + std::to_string(i) + "}\n";
    writeFile(dir.file("th.ndjson"), th);
    std::string fast;
    for (int i = 1; i <= 10; ++i) fast += "{\"x\":" + std::to_string(i) + "}\n";
    writeFile(dir.file("fast.ndjson"), fast);

    const std::string metrics = "127.0.0.1:" + std::to_string(freePort());
    writeFile(dir.file("ferry.yaml"),
              "agent: { id: it-proc, data_dir: " + dir.file("data") +
                  " }\n"
                  "buffer: { type: memory }\n"
                  "metrics: { listen: \"" +
                  metrics +
                  "\" }\n"
                  "inputs:\n" +
                  catInput("db", dir.file("db.ndjson")) + catInput("agg", dir.file("agg.ndjson")) +
                  catInput("th", dir.file("th.ndjson")) +
                  catInput("fast", dir.file("fast.ndjson")) +
                  "processors:\n"
                  "  - type: deadband\n"
                  "    match: db\n"
                  "    field: v\n"
                  "    key: [id]\n"
                  "    threshold: 1\n"
                  "  - type: aggregate\n"
                  "    name: hourly\n"
                  "    match: agg\n"
                  "    window: 1h\n"
                  "    key: [sensor]\n"
                  "    fields: [temp]\n"
                  "  - type: aggregate\n"
                  "    name: quick\n"
                  "    match: fast\n"
                  "    window: 200ms\n"
                  "    fields: [x]\n"
                  "    stats: [sum, count]\n"
                  "  - type: throttle\n"
                  "    match: th\n"
                  "    rate: 0.001\n"
                  "    burst: 5\n"
                  "outputs:\n" +
                  fileOutput("out-db", "db", dir.file("out/db.ndjson")) +
                  fileOutput("out-agg", "agg", dir.file("out/agg.ndjson")) +
                  fileOutput("out-th", "th", dir.file("out/th.ndjson")) +
                  fileOutput("out-fast", "fast", dir.file("out/fast.ndjson")));
    Process ferry({kFerry, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "ferry");

    // The short window closes on a tick while the agent runs: one record for all ten.
    const bool got = eventually(
        [&] {
          return lineCount(dir.file("out/db.ndjson")) >= 5 &&
                 lineCount(dir.file("out/th.ndjson")) >= 5 &&
                 lineCount(dir.file("out/agg.ndjson")) >= 1 &&
                 lineCount(dir.file("out/fast.ndjson")) >= 1;
        },
        20s);
    INFO("stderr: ", ferry.stderrText());
    REQUIRE(got);
    const std::string m = httpGet(metrics, "/metrics");
    CHECK(metricValue(m, "ferry_dropped_records_total{reason=\"throttled\"}") == 15);
    CHECK(metricValue(
              m, "ferry_processor_records_total{processor=\"deadband\",result=\"filtered\"}") == 3);
    CHECK(metricValue(m,
                      "ferry_processor_passed_records_total{processor=\"deadband\",reason=\"not_"
                      "numeric\"}") == 1);
    CHECK(metricValue(
              m, "ferry_processor_records_total{processor=\"hourly\",result=\"filtered\"}") == 4);

    ferry.signal(SIGTERM);
    const auto code = ferry.wait(6s);
    REQUIRE(code.has_value());
    CHECK(*code == 0);

    CHECK(lines(readFile(dir.file("out/db.ndjson"))) ==
          std::vector<std::string>{"{\"id\":\"a\",\"v\":10}", "{\"id\":\"b\",\"v\":5}",
                                   "{\"id\":\"b\",\"v\":\"err\"}", "{\"id\":\"a\",\"v\":11.5}",
                                   "{\"id\":\"b\",\"v\":3.5}"});
    CHECK(
        lines(readFile(dir.file("out/th.ndjson"))) ==
        std::vector<std::string>{"{\"n\":0}", "{\"n\":1}", "{\"n\":2}", "{\"n\":3}", "{\"n\":4}"});

    const std::vector<std::string> quick = lines(readFile(dir.file("out/fast.ndjson")));
    REQUIRE(quick.size() == 1);
    CHECK(withoutBounds(quick[0], 200) ==
          "{\"window_start\":S,\"window_end\":E,\"x\":{\"count\":10,\"sum\":55}}");

    // The record without a number went on at once; the hour's window came with the stop.
    const std::vector<std::string> hourly = lines(readFile(dir.file("out/agg.ndjson")));
    REQUIRE(hourly.size() == 3);
    CHECK(hourly[0] == "{\"sensor\":\"t2\",\"temp\":\"n/a\"}");
    CHECK(withoutBounds(hourly[1], 3600000) ==
          "{\"window_start\":S,\"window_end\":E,\"sensor\":\"t1\",\"temp\":{\"count\":3,\"min\":20,"
          "\"max\":22.5,\"mean\":21.166666666666668,\"sum\":63.5,\"last\":21}}");
    CHECK(withoutBounds(hourly[2], 3600000) ==
          "{\"window_start\":S,\"window_end\":E,\"sensor\":\"t2\",\"temp\":{\"count\":1,\"min\":30,"
          "\"max\":30,\"mean\":30,\"sum\":30,\"last\":30}}");
  }
}
