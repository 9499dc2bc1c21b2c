// Processors under test, built through their descriptor's factory as the agent builds them:
// free functions for stateless processors (options as YAML, system clock) and
// ProcessorHarness for processors that keep state over time (manual clock, ticks by hand,
// metrics). Thread-safety: one test thread.
#pragma once

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/config/loader.h"
#include "ferry/metrics.h"
#include "ferry/plugin.h"
#include "ferry/processor.h"
#include "tests/support/fakes.h"

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

// Keeps what tick() emits, with the stream it was emitted on.
class CaptureTickSink final : public TickSink {
 public:
  void emit(std::string_view stream, const RecordBatch& batch) override {
    for (size_t i = 0; i < batch.size(); ++i) records.emplace_back(stream, batch[i]);
  }
  std::vector<std::pair<std::string, std::string>> records;  // (stream, record)
};

class ProcessorHarness {
 public:
  // `name` is the instance name the factory gets (it labels the processor's metrics).
  ProcessorHarness(const PluginDescriptor& descriptor, std::string name)
      : descriptor_(descriptor), name_(std::move(name)) {}

  // Builds the processor from `opts`; the factory's error when it refuses them.
  Status make(const Options& opts) {
    PluginContext ctx;
    ctx.agent_id = "edge-01";
    ctx.name = name_;
    ctx.clock = &clock;
    ctx.metrics = &metrics;
    auto made = descriptor_.make_processor(ctx, opts);
    if (!made.isOk()) return made.status();
    proc = std::move(made).value();
    return Status::ok();
  }

  // One process() call; returns the records that went on. `result` holds its counts.
  std::vector<std::string> run(const std::vector<std::string>& records,
                               std::string_view stream = "s") {
    RecordBatch in;
    RecordBatch out;
    for (const std::string& r : records) in.append(r);
    result = ProcessResult{};
    REQUIRE(proc->process(stream, in, out, result).isOk());
    std::vector<std::string> got;
    for (size_t i = 0; i < out.size(); ++i) got.emplace_back(out[i]);
    return got;
  }

  // One tick() at the clock's time; returns the records it emitted (sink.records also has
  // their streams).
  std::vector<std::string> tick(bool final = false) {
    sink.records.clear();
    ProcessResult r;
    proc->tick(clock.now(), final, sink, r);
    CHECK(r.dropped.empty());
    std::vector<std::string> got;
    for (const auto& [stream, record] : sink.records) got.push_back(record);
    return got;
  }

  // Records the last run() refused for `reason`.
  uint64_t dropped(std::string_view reason) const {
    for (const auto& [r, n] : result.dropped) {
      if (r == reason) return n;
    }
    return 0;
  }

  // A counter of this processor: `family`{processor=<name>[,reason=<reason>]}.
  uint64_t counter(std::string_view family, std::string_view reason = {}) const {
    Labels labels = {{"processor", name_}};
    if (!reason.empty()) labels.emplace_back("reason", std::string(reason));
    return metrics.counterValue(family, labels);
  }

  ManualClock clock;
  MetricsRegistry metrics;
  std::unique_ptr<Processor> proc;
  ProcessResult result;
  CaptureTickSink sink;

 private:
  const PluginDescriptor& descriptor_;
  const std::string name_;
};

}  // namespace ferry::test
