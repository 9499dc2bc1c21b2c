// A real `ferry run` tailing files into a file output, for the tail integration tests: the
// config (fsync'd, encrypted buffer; file output with sync), starting, killing at a chosen
// point of the output, a clean last run, and a line-by-line comparison of the output.
// Thread-safety: one owner (the test's thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace ferry::test {

class TailAgent {
 public:
  // Writes a key and `dir`/ferry.yaml with `inputs` (the YAML list items, e.g.
  // "  - { name: a, type: tail, paths: [...] }\n") and `extra` top-level sections.
  TailAgent(const TempDir& dir, const std::string& inputs, const std::string& extra = "");

  const std::string& output() const { return output_; }
  const std::string& config() const { return config_; }
  // Bytes in the output file (0 before it exists).
  uintmax_t outBytes() const;

  std::unique_ptr<Process> start() const;
  // Waits until the agent logged "started agent" (so SIGTERM is handled), up to 30 s.
  static bool waitStarted(Process& p);
  // Waits until the output holds at least `target` bytes (at most `limit`), then SIGKILLs
  // `p` and checks it died of it. Returns whether the output was still short of `whole`
  // bytes at the kill (the kill hit mid-stream).
  bool killAt(Process& p, uintmax_t target, uintmax_t whole,
              std::chrono::milliseconds limit = std::chrono::seconds(10)) const;
  // Starts a last run, waits until the output holds `bytes`, stops it with SIGTERM; true
  // when it got there and exited 0.
  bool finish(uintmax_t bytes, std::chrono::seconds limit = std::chrono::seconds(120)) const;

 private:
  std::string dir_;
  std::string output_;
  std::string config_;
};

// CHECKs that the output file holds exactly `want` (line by line, nothing extra); reports
// the first mismatch. Returns the number of lines compared.
size_t checkSameLines(const std::string& want, const std::string& output_path);

}  // namespace ferry::test
