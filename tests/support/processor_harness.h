// Building a processor plugin from YAML options and running batches through it, for the
// processor plugins' unit tests. Thread-safety: one test thread.
#pragma once

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/config/loader.h"
#include "ferry/metrics.h"
#include "ferry/plugin.h"

namespace ferry::test {

// The factory's answer for `yaml` (options validated against the descriptor's table first;
// a table error fails the test).
inline Result<std::unique_ptr<Processor>> makeProcessor(const PluginDescriptor& d,
                                                        std::string_view yaml,
                                                        std::string agent_id = "gw-1",
                                                        uint64_t config_version = 0) {
  auto opts = optionsFromYaml(yaml, d.options);
  REQUIRE_MESSAGE(opts.isOk(), opts.status().message());
  static MetricsRegistry metrics;
  PluginContext ctx{std::move(agent_id), std::string(d.name), "/nonexistent", &systemClock(),
                    &metrics,            &d,                   config_version};
  return d.make_processor(ctx, *opts);
}

// The factory's error message for `yaml` (the test fails if it succeeds).
inline std::string processorError(const PluginDescriptor& d, std::string_view yaml) {
  auto made = makeProcessor(d, yaml);
  REQUIRE_FALSE(made.isOk());
  return made.status().message();
}

inline RecordBatch batchOf(const std::vector<std::string>& records) {
  RecordBatch b;
  for (const auto& r : records) b.append(r);
  return b;
}

inline std::vector<std::string> recordsOf(const RecordBatch& b) {
  std::vector<std::string> out;
  for (size_t i = 0; i < b.size(); ++i) out.emplace_back(b[i]);
  return out;
}

// Runs `records` through `p` as one batch; returns what went on. `result` gets the counts.
inline std::vector<std::string> run(Processor& p, const std::vector<std::string>& records,
                                    ProcessResult* result = nullptr) {
  RecordBatch in = batchOf(records);
  RecordBatch out;
  ProcessResult local;
  REQUIRE(p.process("s", in, out, result != nullptr ? *result : local).isOk());
  return recordsOf(out);
}

// Runs one record; returns the output records (empty when it was left out).
inline std::vector<std::string> runOne(Processor& p, const std::string& record) {
  return run(p, {record});
}

inline uint64_t dropped(const ProcessResult& r, std::string_view reason) {
  for (const auto& [k, n] : r.dropped) {
    if (k == reason) return n;
  }
  return 0;
}

}  // namespace ferry::test
