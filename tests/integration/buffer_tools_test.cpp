// The buffer tools and damage handling, through the real binary.
#include <doctest/doctest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

using namespace ferry::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string config(const TempDir& dir, const std::string& out_path, const std::string& key) {
  return "agent: { id: tools-gw, data_dir: " + dir.file("data") + " }\n"
         "buffer:\n"
         "  compression: { codec: none }\n"
         "  encryption: { key_file: " + key + " }\n"
         "  block: { max_records: 500 }\n"
         "inputs:\n"
         "  - { name: lines, type: tail, paths: [" + dir.file("in.log") + "], batch_max_records: 500 }\n"
         "outputs:\n"
         "  - { name: archive, type: file, path: " + out_path + " }\n";
}

}  // namespace

TEST_SUITE("integration.buffer_tools") {
  TEST_CASE("a damaged SST: check reports it, the agent serves the rest and quarantines the damage") {
    TempDir dir;
    const std::string key = dir.file("at-rest.key");
    REQUIRE(runCommand({FERRY_BINARY, "keygen", "--type", "aes256", "--out", key}, dir.path().string()).code == 0);
    {
      std::ofstream f(dir.file("in.log"));
      for (int i = 0; i < 20000; ++i) f << "{\"i\":" << i << ",\"pad\":\"" << std::string(60, 'x') << "\"}\n";
    }
    // First run: the output cannot open (its parent is a regular file), so everything stays buffered.
    writeFile(dir.file("blocker"), "not a directory");
    writeFile(dir.file("ferry.yaml"), config(dir, dir.file("blocker/out.ndjson"), key));
    {
      Process ferry({FERRY_BINARY, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "first");
      bool stored = eventually(
          [&] {
            RunResult s = runCommand({FERRY_BINARY, "buffer", "stats", "--data-dir", dir.file("data"), "--key-file", key},
                                     dir.path().string());
            return s.out.find("records 20000,") != std::string::npos;
          },
          30s);
      INFO(ferry.stderrText());
      REQUIRE(stored);
      ferry.signal(SIGTERM);
      REQUIRE(ferry.wait(10s) == std::optional<int>(0));
    }
    RunResult stats = runCommand({FERRY_BINARY, "buffer", "stats", "--data-dir", dir.file("data")}, dir.path().string());
    CHECK(stats.code == 0);
    CHECK(stats.out.find("archive") != std::string::npos);
    RunResult clean = runCommand({FERRY_BINARY, "buffer", "check", "--data-dir", dir.file("data"), "--key-file", key},
                                 dir.path().string());
    INFO(clean.out, clean.err);
    CHECK(clean.code == 0);
    CHECK(clean.out.find(" blocks (20000 records); damaged: 0;") != std::string::npos);

    // Export decrypts with the key and names output, sequence and lineage.
    RunResult exported = runCommand(
        {FERRY_BINARY, "buffer", "export", "--data-dir", dir.file("data"), "--key-file", key}, dir.path().string());
    CHECK(exported.code == 0);
    std::istringstream ex(exported.out);
    std::string first;
    std::getline(ex, first);
    CHECK(first.find("{\"outputs\":[\"archive\"],\"seq\":1,\"agent\":\"tools-gw\",\"input\":\"lines\",\"stream\":\"lines\"") == 0);
    CHECK(first.find("\"record\":{\"i\":0,") != std::string::npos);

    // Flip a byte in the middle of the largest SST.
    REQUIRE(flipMiddleByteOfLargest(dir.file("data/buffer"), ".sst", 0x20) > 100000);
    RunResult damaged = runCommand({FERRY_BINARY, "buffer", "check", "--data-dir", dir.file("data"), "--key-file", key},
                                   dir.path().string());
    INFO(damaged.out, damaged.err);
    CHECK(damaged.code == 1);
    CHECK(damaged.out.find("problem: block ") != std::string::npos);
    CHECK(damaged.out.find("damage found") != std::string::npos);

    // Second run with a working output: the undamaged blocks are delivered, the damaged
    // ones quarantined and counted, the agent keeps running.
    writeFile(dir.file("ferry.yaml"), config(dir, dir.file("out.ndjson"), key));
    Process ferry({FERRY_BINARY, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "second");
    bool served = eventually([&] { return ferry.stderrText().find("quarantined") != std::string::npos &&
                                          lineCount(dir.file("out.ndjson")) >= 19000; }, 30s);
    INFO(ferry.stderrText());
    CHECK(served);
    ferry.signal(SIGTERM);
    REQUIRE(ferry.wait(10s) == std::optional<int>(0));
    // Delivered: every undamaged block, in order, nothing twice; the damaged ones missing.
    std::ifstream out(dir.file("out.ndjson"));
    std::string line;
    long prev = -1;
    size_t delivered = 0;
    bool ordered = true;
    while (std::getline(out, line)) {
      long i = std::stol(line.substr(5));
      ordered = ordered && i > prev;
      prev = i;
      ++delivered;
    }
    CHECK(ordered);
    CHECK(delivered < 20000);
    CHECK(delivered > 10000);
    RunResult after = runCommand({FERRY_BINARY, "buffer", "check", "--data-dir", dir.file("data"), "--key-file", key},
                                 dir.path().string());
    INFO(after.out);
    CHECK(after.out.find("damaged: 0;") != std::string::npos);
    CHECK(after.out.find("in quarantine: 0") == std::string::npos);
    CHECK(after.code == 1);  // quarantined blocks are still reported
  }

  TEST_CASE("the agent refuses a buffer it cannot open and names the path and the check command") {
    TempDir dir;
    fs::create_directories(dir.file("data/buffer"));
    writeFile(dir.file("data/buffer/CURRENT"), "MANIFEST-000404\n");
    writeFile(dir.file("ferry.yaml"), "agent: { data_dir: " + dir.file("data") +
                                          " }\ninputs: [{type: sysmetrics}]\noutputs: [{type: stdout}]\n");
    RunResult r = runCommand({FERRY_BINARY, "run", "-c", dir.file("ferry.yaml")}, dir.path().string());
    CHECK(r.code == 1);
    CHECK(r.err.find(dir.file("data/buffer")) != std::string::npos);
    CHECK(r.err.find("ferry buffer check") != std::string::npos);
    CHECK(readFile(dir.file("data/buffer/CURRENT")) == "MANIFEST-000404\n");
  }

  TEST_CASE("a key file readable by others is a startup error") {
    TempDir dir;
    const std::string key = dir.file("k");
    REQUIRE(runCommand({FERRY_BINARY, "keygen", "--type", "aes256", "--out", key}, dir.path().string()).code == 0);
    CHECK(runCommand({FERRY_BINARY, "keygen", "--type", "aes256", "--out", key}, dir.path().string()).code != 0);
    fs::permissions(key, fs::perms::others_read, fs::perm_options::add);
    writeFile(dir.file("ferry.yaml"), "agent: { data_dir: " + dir.file("data") + " }\nbuffer: { encryption: { key_file: " +
                                          key + " } }\ninputs: [{type: sysmetrics}]\noutputs: [{type: stdout}]\n");
    // Refused as a config problem, by validate as by run.
    RunResult v = runCommand({FERRY_BINARY, "validate", "-c", dir.file("ferry.yaml")}, dir.path().string());
    CHECK(v.code == 2);
    CHECK(v.out.find("buffer.encryption.key_file: secret file " + key + " is readable by group or others") !=
          std::string::npos);
    RunResult r = runCommand({FERRY_BINARY, "run", "-c", dir.file("ferry.yaml")}, dir.path().string());
    CHECK(r.code == 2);
    CHECK(r.err.find("chmod 600") != std::string::npos);
  }

  TEST_CASE("a second agent on the same data_dir is refused with a clear reason") {
    TempDir dir;
    writeFile(dir.file("ferry.yaml"), "agent: { data_dir: " + dir.file("data") +
                                          " }\ninputs: [{type: sysmetrics}]\noutputs: [{type: file, path: " +
                                          dir.file("out.ndjson") + "}]\n");
    Process first({FERRY_BINARY, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "first");
    REQUIRE(eventually([&] { return first.stderrText().find("started agent") != std::string::npos; }, 15s));
    RunResult second = runCommand({FERRY_BINARY, "run", "-c", dir.file("ferry.yaml")}, dir.path().string());
    CHECK(second.code == 1);
    CHECK(second.err.find("in use by another process") != std::string::npos);
    // The tools still read it beside the running agent.
    RunResult stats = runCommand({FERRY_BINARY, "buffer", "stats", "--data-dir", dir.file("data")}, dir.path().string());
    CHECK(stats.code == 0);
    first.signal(SIGTERM);
    CHECK(first.wait(10s) == std::optional<int>(0));
  }
}
