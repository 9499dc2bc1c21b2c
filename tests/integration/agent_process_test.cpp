// The real ferry binary, started as a user would: config file in, signals sent, files read.
#include <doctest/doctest.h>

#include <filesystem>
#include <signal.h>

#include <fstream>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

using namespace ferry::test;
using namespace std::chrono_literals;

namespace {

const std::string kFerry = FERRY_BINARY;

size_t countLines(const std::string& text, const std::string& needle = "") {
  size_t n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (needle.empty() || line.find(needle) != std::string::npos) ++n;
  }
  return n;
}

std::string metricsToFileConfig(const TempDir& dir, const std::string& out, const std::string& interval = "200ms") {
  return "agent: { id: it-gw, data_dir: " + dir.file("data") + " }\n"
         "log: { level: info }\n"
         "inputs:\n"
         "  - name: host\n"
         "    type: sysmetrics\n"
         "    interval: " + interval + "\n"
         "outputs:\n"
         "  - name: local\n"
         "    type: file\n"
         "    path: " + out + "\n";
}

}  // namespace

TEST_SUITE("integration.agent") {
  TEST_CASE("sysmetrics to a file, then SIGTERM stops cleanly within 5 s") {
    TempDir dir;
    const std::string out = dir.file("out/metrics.ndjson");
    writeFile(dir.file("ferry.yaml"), metricsToFileConfig(dir, out));
    Process ferry({kFerry, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "ferry");

    bool got = eventually([&] { return countLines(readFile(out), "\"metric\":\"cpu\"") >= 2; }, 15s);
    INFO("stderr: ", ferry.stderrText());
    REQUIRE(got);
    const std::string text = readFile(out);
    CHECK(text.find("\"agent\":\"it-gw\"") != std::string::npos);
    CHECK(text.find("\"metric\":\"memory\"") != std::string::npos);
    CHECK(text.find("\"metric\":\"uptime\"") != std::string::npos);
    // diskio and thermal report what this host has: a record per block device of
    // /proc/diskstats (loop/ram/zram left out) and per readable thermal zone.
    bool has_device = false;
    {
      std::istringstream stats(readFile("/proc/diskstats"));
      for (std::string line; std::getline(stats, line);) {
        std::istringstream fields(line);
        std::string major, minor, name;
        fields >> major >> minor >> name;
        if (!name.empty() && !name.starts_with("loop") && !name.starts_with("ram") && !name.starts_with("zram")) {
          has_device = true;
        }
      }
    }
    CHECK((text.find("\"metric\":\"diskio\"") != std::string::npos) == has_device);
    bool has_zone = false;
    std::error_code ec;
    for (const auto& z : std::filesystem::directory_iterator("/sys/class/thermal", ec)) {
      if (z.path().filename().string().starts_with("thermal_zone") &&
          !readFile((z.path() / "temp").string()).empty()) {
        has_zone = true;
      }
    }
    CHECK((text.find("\"metric\":\"thermal\"") != std::string::npos) == has_zone);

    auto t0 = std::chrono::steady_clock::now();
    ferry.signal(SIGTERM);
    auto code = ferry.wait(6s);
    auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    CHECK(took < 5s);
    CHECK(ferry.stderrText().find("SIGTERM: stopping") != std::string::npos);
    CHECK(ferry.stderrText().find("stopped") != std::string::npos);
    // Every line written is a complete JSON object.
    std::istringstream in(readFile(out));
    for (std::string line; std::getline(in, line);) {
      CHECK(line.front() == '{');
      CHECK(line.back() == '}');
    }
  }

  TEST_CASE("without -c the embedded default prints host metrics on stdout; SIGINT stops it") {
    TempDir dir;
    Process ferry({kFerry, "run", "--data-dir", dir.file("data")}, dir.path().string(), "ferry");
    bool got = eventually([&] { return ferry.stdoutText().find("\"metric\":\"cpu\"") != std::string::npos; }, 15s);
    INFO("stderr: ", ferry.stderrText());
    CHECK(got);
    ferry.signal(SIGINT);
    auto code = ferry.wait(6s);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
  }

  TEST_CASE("ferry validate reports three mistakes with file:line and key path, exit 2") {
    TempDir dir;
    const std::string cfg = dir.file("bad.yaml");
    writeFile(cfg,
              "inputs:\n"
              "  - type: sysmetrics\n"
              "    interval: soon\n"           // line 3: bad duration
              "    collect: cpu\n"             // line 4: not a list
              "outputs:\n"
              "  - type: file\n"
              "    path: /tmp/x.ndjson\n"
              "    max_sise: 10MiB\n");        // line 8: unknown key
    RunResult r = runCommand({kFerry, "validate", "-c", cfg}, dir.path().string());
    CHECK(r.code == 2);
    INFO(r.out);
    CHECK(countLines(r.out) == 3);
    CHECK(r.out.find(cfg + ":3: inputs[0].interval: expected a duration") != std::string::npos);
    CHECK(r.out.find(cfg + ":4: inputs[0].collect: expected a list of strings") != std::string::npos);
    CHECK(r.out.find(cfg + ":8: outputs[0].max_sise: unknown key") != std::string::npos);

    writeFile(cfg, metricsToFileConfig(dir, dir.file("o.ndjson")));
    RunResult ok = runCommand({kFerry, "validate", "-c", cfg}, dir.path().string());
    CHECK(ok.code == 0);
  }

  TEST_CASE("ferry validate also runs the plugins' own checks, and core keys point at their line") {
    TempDir dir;
    const std::string cfg = dir.file("bad.yaml");
    writeFile(cfg,
              "inputs:\n"
              "  - { type: sysmetrics }\n"
              "outputs:\n"
              "  - name: up\n"
              "    type: http\n"
              "    url: \"htp:/bad url\"\n"           // line 6: the plugin refuses it
              "    tls: { pin_sha256: \"not-base64!!\" }\n"
              "  - name: bus\n"
              "    type: mqtt\n"
              "    broker: \"foo://x\"\n");             // line 10
    RunResult r = runCommand({kFerry, "validate", "-c", cfg}, dir.path().string());
    INFO(r.out, r.err);
    CHECK(r.code == 2);
    CHECK(r.out.find(cfg + ":6: outputs[0].url") != std::string::npos);
    CHECK(r.out.find(cfg + ":10: outputs[1].broker") != std::string::npos);

    writeFile(cfg,
              "inputs:\n"
              "  - { type: sysmetrics }\n"
              "outputs:\n"
              "  - name: up\n"
              "    type: stdout\n"
              "    window: 0\n"                         // line 6
              "    dead_letter: { output: nowhere }\n"); // line 7
    r = runCommand({kFerry, "validate", "-c", cfg}, dir.path().string());
    CHECK(r.code == 2);
    CHECK(r.out.find(cfg + ":6: outputs[0].window: must be between 1 and 64") != std::string::npos);
    CHECK(r.out.find(cfg + ":7: outputs[0].dead_letter.output: no output named \"nowhere\"") != std::string::npos);
  }

  TEST_CASE("run refuses an invalid config with exit 2 and every problem") {
    TempDir dir;
    writeFile(dir.file("bad.yaml"), "inputs: [{type: sysmetrics, interval: 1x}]\noutputs: [{type: nosuch}]\n");
    RunResult r = runCommand({kFerry, "run", "-c", dir.file("bad.yaml")}, dir.path().string());
    CHECK(r.code == 2);
    CHECK(r.err.find("inputs[0].interval") != std::string::npos);
    CHECK(r.err.find("outputs[0].type: unknown output type \"nosuch\"") != std::string::npos);
  }

  TEST_CASE("SIGHUP: an invalid file keeps the old config, a valid one is applied") {
    TempDir dir;
    const std::string cfg = dir.file("ferry.yaml");
    const std::string first = dir.file("first.ndjson");
    const std::string second = dir.file("second.ndjson");
    writeFile(cfg, metricsToFileConfig(dir, first));
    Process ferry({kFerry, "run", "-c", cfg}, dir.path().string(), "ferry");
    REQUIRE(eventually([&] { return countLines(readFile(first)) > 0; }, 15s));

    writeFile(cfg, "inputs: [ {type: sysmetrics, interval: never} ]\n");
    ferry.signal(SIGHUP);
    REQUIRE(eventually([&] { return ferry.stderrText().find("reload rejected") != std::string::npos; }, 5s));
    size_t before = countLines(readFile(first));
    REQUIRE(eventually([&] { return countLines(readFile(first)) > before; }, 5s));  // still running

    writeFile(cfg, metricsToFileConfig(dir, second));
    ferry.signal(SIGHUP);
    REQUIRE(eventually([&] { return countLines(readFile(second)) > 0; }, 10s));
    ferry.signal(SIGTERM);
    auto code = ferry.wait(6s);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
  }

  TEST_CASE("version and plugins describe the build") {
    TempDir dir;
    RunResult v = runCommand({kFerry, "version"}, dir.path().string());
    CHECK(v.code == 0);
    CHECK(v.out.find("ferry 0.") == 0);
    CHECK(v.out.find("git ") != std::string::npos);
    CHECK(v.out.find("input:sysmetrics") != std::string::npos);
    CHECK(v.out.find("output:file") != std::string::npos);
    RunResult p = runCommand({kFerry, "plugins"}, dir.path().string());
    CHECK(p.code == 0);
    CHECK(p.out.find("sysmetrics") != std::string::npos);
    CHECK(p.out.find("max_size") != std::string::npos);
  }

  TEST_CASE("SIGTERM stops within 5 s even when an output is blocked (stdout into a full pipe)") {
    TempDir dir;
    {
      std::ofstream f(dir.file("big.log"));
      for (int i = 0; i < 200000; ++i) f << "{\"i\":" << i << ",\"pad\":\"" << std::string(40, 'p') << "\"}\n";
    }
    writeFile(dir.file("ferry.yaml"), "agent: { data_dir: " + dir.file("data") + " }\n"
              "inputs: [ { name: big, type: tail, paths: [" + dir.file("big.log") + "] } ]\n"
              "outputs: [ { name: console, type: stdout } ]\n");
    int fds[2];
    REQUIRE(::pipe(fds) == 0);  // nobody reads fds[0]: the pipe fills and write() blocks
    Process ferry({kFerry, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "ferry", fds[1]);
    ::close(fds[1]);
    REQUIRE(eventually([&] { return ferry.stderrText().find("started agent") != std::string::npos; }, 15s));
    std::this_thread::sleep_for(500ms);  // the output is now stuck in write()
    auto t0 = std::chrono::steady_clock::now();
    ferry.signal(SIGTERM);
    auto code = ferry.wait(8s);
    auto took = std::chrono::steady_clock::now() - t0;
    ::close(fds[0]);
    INFO(ferry.stderrText());
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    CHECK(took < 5s);
    CHECK(ferry.stderrText().find("stuck in a send") != std::string::npos);
  }
}
