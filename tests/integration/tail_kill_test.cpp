// The real ferry binary: tail of a 200,000-line file into a file output, killed with
// SIGKILL 20 times at random moments and restarted. The output must hold every line
// exactly once, in order (the file output cuts back to the length stored with its cursor).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "tests/integration/tail_agent.h"
#include "tests/support/temp_dir.h"

using namespace ferry::test;

TEST_SUITE("integration.tail_kill") {
  TEST_CASE("tail to file survives 20 SIGKILLs with every line exactly once, in order") {
    TempDir dir;
    const std::string input = dir.file("sensors.log");
    const size_t kLines = 200000;
    {
      std::ofstream f(input, std::ios::binary);
      for (size_t i = 0; i < kLines; ++i) {
        f << "{\"i\":" << i << ",\"sensor\":\"t-" << (i % 97)
          << "\",\"value\":" << (i % 1000) / 10.0 << "}\n";
      }
    }
    TailAgent agent(dir, "  - { name: sensors, type: tail, paths: [" + input +
                             "], format: json, batch_max_records: 100 }\n");
    // Random moments spread over the work: each round is killed once the output reaches a
    // random point between where it stands and the end (or after a random short delay).
    std::mt19937 rng(424242);
    int kills = 0;
    int mid_stream = 0;  // kills that hit while lines were still flowing
    const uintmax_t total = std::filesystem::file_size(input);
    for (int round = 0; round < 20; ++round) {
      const uintmax_t before = agent.outBytes();
      const uintmax_t left = total - std::min(before, total);
      const uintmax_t target =
          before + std::uniform_int_distribution<uintmax_t>(0, left / 6 + 1)(rng);
      std::unique_ptr<Process> ferry = agent.start();
      if (agent.killAt(*ferry, target, total)) ++mid_stream;
      ++kills;
    }
    const size_t after_kills = lineCount(agent.output());
    // A last run finishes the file and stops cleanly.
    REQUIRE(agent.finish(total));

    // Exactly once, in order: the output equals the input line for line.
    const size_t n = checkSameLines(readFile(input), agent.output());
    CHECK(kills == 20);
    CHECK(mid_stream >= 10);  // the kills really interrupted the work
    MESSAGE("tail kill test: ", kills, " SIGKILLs (", mid_stream, " mid-stream), ", after_kills,
            " lines out before the last run, ", n, " lines compared");
  }
}
