#include "tests/integration/tail_agent.h"

#include <doctest/doctest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace ferry::test {

TailAgent::TailAgent(const TempDir& dir, const std::string& inputs, const std::string& extra)
    : dir_(dir.path().string()),
      output_(dir.file("out/records.ndjson")),
      config_(dir.file("ferry.yaml")) {
  const std::string key = dir.file("at-rest.key");
  RunResult kg = runCommand({FERRY_BINARY, "keygen", "--type", "aes256", "--out", key}, dir_);
  REQUIRE(kg.code == 0);
  writeFile(config_, "agent: { id: tail-test, data_dir: " + dir.file("data") +
                         " }\n"
                         "buffer:\n"
                         "  durability: fsync\n"
                         "  encryption: { key_file: " +
                         key +
                         " }\n"
                         "  block: { max_records: 200, max_wait: 20ms }\n"
                         "inputs:\n" +
                         inputs +
                         "outputs:\n"
                         "  - { name: archive, type: file, path: " +
                         output_ + ", sync: true }\n" + extra);
}

uintmax_t TailAgent::outBytes() const {
  std::error_code ec;
  const uintmax_t n = std::filesystem::file_size(output_, ec);
  return ec ? uintmax_t{0} : n;
}

std::unique_ptr<Process> TailAgent::start() const {
  return std::make_unique<Process>(std::vector<std::string>{FERRY_BINARY, "run", "-c", config_},
                                   dir_, "ferry");
}

bool TailAgent::waitStarted(Process& p) {
  return eventually([&] { return p.stderrText().find("started agent") != std::string::npos; },
                    std::chrono::seconds(30));
}

bool TailAgent::killAt(Process& p, uintmax_t target, uintmax_t whole,
                       std::chrono::milliseconds limit) const {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (outBytes() < target && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::microseconds(300));
  }
  p.signal(SIGKILL);
  const auto code = p.wait(std::chrono::seconds(10));
  INFO("stderr: ", p.stderrText());
  REQUIRE(code.has_value());
  REQUIRE(*code == 128 + SIGKILL);
  return outBytes() < whole;
}

bool TailAgent::finish(uintmax_t bytes, std::chrono::seconds limit) const {
  std::unique_ptr<Process> p = start();
  // SIGTERM only once the agent runs (before that the default action would apply).
  REQUIRE(waitStarted(*p));
  const bool done = eventually([&] { return outBytes() >= bytes; }, limit);
  p->signal(SIGTERM);
  const auto code = p->wait(std::chrono::seconds(10));
  INFO("stderr: ", p->stderrText());
  CHECK(done);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  return done && *code == 0;
}

size_t checkSameLines(const std::string& want, const std::string& output_path) {
  std::istringstream in(want);
  std::ifstream out(output_path, std::ios::binary);
  std::string a;
  std::string b;
  size_t n = 0;
  size_t mismatches = 0;
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
  return n;
}

}  // namespace ferry::test
