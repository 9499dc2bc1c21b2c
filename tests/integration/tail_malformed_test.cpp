// The real ferry binary tails one file per line format, each holding malformed lines
// (broken syntax, invalid UTF-8, NUL bytes, an 8 MiB line, numbers out of range) between
// valid ones. Every valid record must arrive, every malformed line must be counted per
// reason (/metrics) or dead-lettered (`ferry buffer export --dead-letters`), and the agent
// must keep running.
#include <doctest/doctest.h>
#include <signal.h>

#include <algorithm>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/tail_agent.h"
#include "tests/support/net.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

using namespace ferry::test;

namespace {

struct FormatCase {
  std::string name;                       // input name = format name
  std::string options;                    // extra YAML flow keys
  std::vector<std::string> valid;         // lines that become records
  std::vector<std::string> bad;           // lines that are dropped
  std::vector<std::string> records;       // the records the valid lines become (without "path")
  std::map<std::string, double> reasons;  // drop reason → count
};

std::string withPath(const std::string& record, const std::string& path) {
  if (record.front() != '{' || record.back() != '}') return record;
  return record.substr(0, record.size() - 1) + ",\"path\":\"" + path + "\"}";
}

}  // namespace

TEST_SUITE("integration.tail_malformed") {
  TEST_CASE("malformed lines of every format are counted or dead-lettered; valid ones all arrive") {
    TempDir dir;
    const std::string nul("x\0y", 3);
    const std::string bad_utf8 = "\xff\xfe\xc3";
    const std::string huge(8 << 20, 'h');  // over max_line_bytes (1MiB): dead-lettered
    std::vector<FormatCase> cases = {
        {"json",
         "",
         {"{\"v\":1}", "{\"big\":1e300,\"n\":18446744073709551615}", "{\"v\":3}"},
         {"{\"broken\":", "{\"s\":\"" + bad_utf8 + "\"}", "{\"s\":\"" + nul + "\"}",
          "{\"n\":1e400}", "{\"n\":99999999999999999999999}", "[1,2]"},
         {"{\"v\":1}", "{\"big\":1e300,\"n\":18446744073709551615}", "{\"v\":3}"},
         {{"bad_json", 1},
          {"invalid_utf8", 1},
          {"nul_byte", 1},
          {"number_out_of_range", 2},
          {"not_an_object", 1}}},
        {"text",
         "",
         {"hello 1", "{\"broken\":", "n=1e400 99999999999999999999999"},
         {"bad " + bad_utf8, "nul " + nul},
         {"{\"message\":\"hello 1\"}", "{\"message\":\"{\\\"broken\\\":\"}",
          "{\"message\":\"n=1e400 99999999999999999999999\"}"},
         {{"invalid_utf8", 1}, {"nul_byte", 1}}},
        {"logfmt",
         "",
         {"k=v n=1", "n=1e400 m=99999999999999999999999"},
         {"a=\"unclosed", "k=" + bad_utf8, "k=" + nul},
         {"{\"k\":\"v\",\"n\":1}", "{\"n\":\"1e400\",\"m\":\"99999999999999999999999\"}"},
         {{"bad_logfmt", 1}, {"invalid_utf8", 1}, {"nul_byte", 1}}},
        {"csv",
         ", columns: [a, b]",
         {"x,1", "1e400,99999999999999999999999"},
         {"\"unclosed,1", "1,2,3", bad_utf8 + ",1", nul + ",1"},
         {"{\"a\":\"x\",\"b\":1}", "{\"a\":\"1e400\",\"b\":\"99999999999999999999999\"}"},
         {{"csv_bad_row", 2}, {"invalid_utf8", 1}, {"nul_byte", 1}}},
        {"influx",
         "",
         {"m,t=a v=1i 3", "m v=2.5"},
         {"m v=", "m,t=" + bad_utf8 + " v=1", "m v=\"" + nul + "\"", "m v=1e400",
          "m v=99999999999999999999999i"},
         {"{\"measurement\":\"m\",\"tags\":{\"t\":\"a\"},\"fields\":{\"v\":1},\"time\":3}",
          "{\"measurement\":\"m\",\"tags\":{},\"fields\":{\"v\":2.5}}"},
         {{"bad_influx", 1}, {"invalid_utf8", 1}, {"nul_byte", 1}, {"number_out_of_range", 2}}},
        {"regex",
         ", pattern: '^(?<k>\\w+)=(?<v>\\d+)$'",
         {"a=1", "big=99999999999999999999999"},
         {"???", "a=" + bad_utf8, "a=" + nul},
         {"{\"k\":\"a\",\"v\":\"1\"}", "{\"k\":\"big\",\"v\":\"99999999999999999999999\"}"},
         {{"regex_no_match", 1}, {"invalid_utf8", 1}, {"nul_byte", 1}}},
    };

    std::string inputs;
    std::vector<std::string> want;  // every record, any order across inputs
    for (const FormatCase& c : cases) {
      const std::string path = dir.file(c.name + ".log");
      // Valid lines before, between and after the bad ones (and the 8 MiB line).
      std::string content;
      size_t v = 0;
      for (size_t b = 0; b < c.bad.size(); ++b) {
        if (v < c.valid.size() && b % 2 == 0) content += c.valid[v++] + "\n";
        content += c.bad[b] + "\n";
        if (b == c.bad.size() / 2) content += huge + "\n";
      }
      while (v < c.valid.size()) content += c.valid[v++] + "\n";
      writeFile(path, content);
      inputs += "  - { name: " + c.name + ", type: tail, paths: [" + path + "], format: " + c.name +
                c.options + " }\n";
      for (const std::string& r : c.records) {
        want.push_back(c.name == "json" ? r : withPath(r, path));
      }
    }
    const uint16_t port = freePort();
    const std::string address = "127.0.0.1:" + std::to_string(port);
    TailAgent agent(dir, inputs, "metrics: { listen: " + address + " }\n");
    std::unique_ptr<Process> ferry = agent.start();
    REQUIRE(TailAgent::waitStarted(*ferry));
    INFO("stderr: ", ferry->stderrText().substr(0, 20000));
    const bool all = eventually([&] { return lineCount(agent.output()) >= want.size(); },
                                std::chrono::seconds(60));
    CHECK(all);
    std::string metrics;
    const bool counted = eventually(
        [&] {
          metrics = httpGet(address, "/metrics");
          for (const FormatCase& c : cases) {
            if (metricValue(metrics, "ferry_dead_letter_records_total{output=\"input:" + c.name +
                                         "\"}") != 1) {
              return false;
            }
          }
          return true;
        },
        std::chrono::seconds(30));
    CHECK(counted);
    CHECK(ferry->running());  // the agent keeps running

    std::vector<std::string> got;
    {
      std::istringstream in(readFile(agent.output()));
      for (std::string line; std::getline(in, line);) got.push_back(line);
    }
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    CHECK(got == want);

    std::map<std::string, double> total;
    for (const FormatCase& c : cases) {
      CAPTURE(c.name);
      for (const auto& [reason, n] : c.reasons) {
        CAPTURE(reason);
        CHECK(metricValue(metrics, "ferry_input_dropped_records_total{input=\"" + c.name +
                                       "\",reason=\"" + reason + "\"}") == n);
        total[reason] += n;
      }
    }
    for (const auto& [reason, n] : total) {
      CAPTURE(reason);
      CHECK(metricValue(metrics, "ferry_dropped_records_total{reason=\"" + reason + "\"}") == n);
    }

    ferry->signal(SIGTERM);
    const auto code = ferry->wait(std::chrono::seconds(10));
    REQUIRE(code.has_value());
    CHECK(*code == 0);

    // The 8 MiB lines are in the dead-letter queue: their first 64 KiB, with where they were.
    RunResult dl =
        runCommand({FERRY_BINARY, "buffer", "export", "--dead-letters", "-c", agent.config()},
                   dir.path().string());
    INFO("export: ", dl.out.substr(0, 2000), dl.err);
    REQUIRE(dl.code == 0);
    std::istringstream in(dl.out);
    size_t dead = 0;
    for (std::string line; std::getline(in, line);) {
      ++dead;
      CHECK(line.find("line_too_long: ") != std::string::npos);
      CHECK(line.find(std::to_string(huge.size()) + " bytes") != std::string::npos);
      CHECK(line.find(std::string(64 << 10, 'h')) != std::string::npos);
      CHECK(line.find(std::string((64 << 10) + 1, 'h')) == std::string::npos);
    }
    CHECK(dead == cases.size());
  }
}
