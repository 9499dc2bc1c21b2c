// The exec input inside the real agent: a hanging command is killed at its timeout, the
// lines it wrote before still arrive, a healthy command beside it keeps delivering, and
// the agent stops cleanly with nothing of the commands left behind.
#include <dirent.h>
#include <doctest/doctest.h>
#include <signal.h>

#include <fstream>
#include <sstream>
#include <string>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

using namespace ferry::test;
using namespace std::chrono_literals;

namespace {

const std::string kFerry = FERRY_BINARY;

size_t countLines(const std::string& text, const std::string& needle) {
  size_t n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.find(needle) != std::string::npos) ++n;
  }
  return n;
}

// Processes whose command line holds `needle` (as one argument).
int processesWith(const std::string& needle) {
  int n = 0;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream in(std::string("/proc/") + e->d_name + "/cmdline", std::ios::binary);
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmd.find(needle) != std::string::npos) ++n;
  }
  ::closedir(d);
  return n;
}

}  // namespace

TEST_SUITE("integration.exec") {
  TEST_CASE("a hanging command is killed at its timeout; the agent keeps running") {
    TempDir dir;
    const std::string out = dir.file("out/records.ndjson");
    // A unique sleep duration marks the hanging command's processes.
    const std::string marker = "29.4817";
    writeFile(dir.file("ferry.yaml"),
              "agent: { id: it-exec, data_dir: " + dir.file("data") + " }\n"
              "log: { level: info }\n"
              "inputs:\n"
              "  - name: hang\n"
              "    type: exec\n"
              "    command: [/bin/sh, -c, 'echo \"{\\\"hang\\\":1}\"; echo stuck >&2; sleep " +
                  marker + "']\n"
              "    interval: 1s\n"
              "    timeout: 300ms\n"
              "  - name: good\n"
              "    type: exec\n"
              "    command: [/bin/echo, '{\"good\":1}']\n"
              "    interval: 200ms\n"
              "outputs:\n"
              "  - name: local\n"
              "    type: file\n"
              "    path: " + out + "\n");
    Process ferry({kFerry, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "ferry");

    const bool got = eventually(
        [&] {
          const std::string text = readFile(out);
          return countLines(text, "\"hang\":1") >= 2 && countLines(text, "\"good\":1") >= 5 &&
                 countLines(ferry.stderrText(), "did not finish within 300ms") >= 2;
        },
        20s);
    INFO("stderr: ", ferry.stderrText());
    REQUIRE(got);
    CHECK(ferry.stderrText().find("hang: stderr: stuck") != std::string::npos);

    ferry.signal(SIGTERM);
    const auto code = ferry.wait(6s);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    // Killed at the timeout (or at stop): no process of the hanging command is left.
    CHECK(eventually([&] { return processesWith(marker) == 0; }, 3s));
  }
}
