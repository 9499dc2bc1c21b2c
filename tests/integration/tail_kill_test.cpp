// The real ferry binary: tail of a 200,000-line file into a file output, killed with
// SIGKILL 20 times at random moments and restarted. The output must hold every line
// exactly once, in order (the file output cuts back to the length stored with its cursor).
#include <doctest/doctest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

using namespace ferry::test;
using namespace std::chrono_literals;

namespace {

}  // namespace

TEST_SUITE("integration.tail_kill") {
  TEST_CASE("tail to file survives 20 SIGKILLs with every line exactly once, in order") {
    TempDir dir;
    const std::string input = dir.file("sensors.log");
    const std::string output = dir.file("out/sensors.ndjson");
    const size_t kLines = 200000;
    {
      std::ofstream f(input, std::ios::binary);
      for (size_t i = 0; i < kLines; ++i) {
        f << "{\"i\":" << i << ",\"sensor\":\"t-" << (i % 97) << "\",\"value\":" << (i % 1000) / 10.0 << "}\n";
      }
    }
    const std::string key = dir.file("at-rest.key");
    RunResult kg = runCommand({FERRY_BINARY, "keygen", "--type", "aes256", "--out", key}, dir.path().string());
    REQUIRE(kg.code == 0);
    writeFile(dir.file("ferry.yaml"),
              "agent: { id: kill-test, data_dir: " + dir.file("data") + " }\n"
              "buffer:\n"
              "  durability: fsync\n"
              "  encryption: { key_file: " + key + " }\n"
              "  block: { max_records: 200, max_wait: 20ms }\n"
              "inputs:\n"
              "  - { name: sensors, type: tail, paths: [" + input + "], format: json, batch_max_records: 100 }\n"
              "outputs:\n"
              "  - { name: archive, type: file, path: " + output + ", sync: true }\n");
    // Random moments spread over the work: each round is killed once the output reaches a
    // random point between where it stands and the end (or after a random short delay).
    std::mt19937 rng(424242);
    std::uniform_int_distribution<int> delay_ms(0, 5);
    int kills = 0;
    int mid_stream = 0;  // kills that hit while lines were still flowing
    const uintmax_t total = std::filesystem::file_size(input);
    auto outBytes = [&] {
      std::error_code ec;
      uintmax_t n = std::filesystem::file_size(output, ec);
      return ec ? uintmax_t{0} : n;
    };
    for (int round = 0; round < 20; ++round) {
      const uintmax_t before = outBytes();
      const uintmax_t left = total - std::min(before, total);
      const uintmax_t target = before + std::uniform_int_distribution<uintmax_t>(0, left / 6 + 1)(rng);
      Process ferry({FERRY_BINARY, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "ferry");
      const auto until = std::chrono::steady_clock::now() + 10s;
      while (outBytes() < target && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::microseconds(300));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
      ferry.signal(SIGKILL);
      auto code = ferry.wait(10s);
      REQUIRE(code.has_value());
      INFO("stderr: ", ferry.stderrText());
      REQUIRE(*code == 128 + SIGKILL);
      ++kills;
      const size_t out_now = lineCount(output);
      if (out_now < kLines) ++mid_stream;
    }
    size_t after_kills = lineCount(output);
    // A last run finishes the file and stops cleanly.
    Process ferry({FERRY_BINARY, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "ferry");
    // SIGTERM only once the agent runs (before that the default action would apply).
    REQUIRE(eventually([&] { return ferry.stderrText().find("started agent") != std::string::npos; }, 30s));
    bool done = eventually([&] { return lineCount(output) >= kLines; }, 120s);
    ferry.signal(SIGTERM);
    auto code = ferry.wait(10s);
    INFO("stderr: ", ferry.stderrText());
    REQUIRE(done);
    REQUIRE(code.has_value());
    CHECK(*code == 0);

    // Exactly once, in order: the output equals the input line for line.
    std::ifstream in(input, std::ios::binary), out(output, std::ios::binary);
    std::string a, b;
    size_t n = 0, mismatches = 0;
    while (std::getline(in, a)) {
      if (!std::getline(out, b) || a != b) {
        if (++mismatches == 1) {
          INFO("first mismatch at line ", n, ": want ", a, " got ", b);
          CHECK(a == b);
        }
      }
      ++n;
    }
    CHECK(mismatches == 0);
    CHECK_FALSE(std::getline(out, b));  // nothing extra
    CHECK(kills == 20);
    CHECK(mid_stream >= 10);  // the kills really interrupted the work
    MESSAGE("tail kill test: ", kills, " SIGKILLs (", mid_stream, " mid-stream), ", after_kills,
            " lines out before the last run, ", n, " lines compared");
  }
}
