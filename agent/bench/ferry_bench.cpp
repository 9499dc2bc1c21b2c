// ferry-bench: runs named scenarios against the real agent code and prints one JSON
// object per scenario per line (see DESIGN.md, "Benchmark").
//
// Scenarios:
//   pipeline-memory  N records of ~95-byte sensor JSON, emitted in batches of 1000 by one
//                    input thread, through the batcher and writer into the memory buffer,
//                    read and acked by one sender into a discarding output.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "agent/buffer/memory_buffer.h"
#include "agent/core/pipeline.h"
#include "agent/core/sender.h"
#include "ferry/log.h"

namespace {

using namespace ferry;

double peakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

// Counts delivered records and forgets them.
class DiscardOutput final : public Output {
 public:
  explicit DiscardOutput(std::atomic<uint64_t>& count) : count_(count) {}
  SendResult send(const Block& block, SteadyTime) override {
    count_.fetch_add(block.records.size(), std::memory_order_relaxed);
    return SendResult::delivered();
  }

 private:
  std::atomic<uint64_t>& count_;
};

// ~95 bytes of sensor JSON, distinct per record.
void sensorRecord(RecordBatch& batch, uint64_t i) {
  std::string& d = batch.mutableData();
  char buf[160];
  int n = std::snprintf(buf, sizeof buf,
                        "{\"ts\":%llu,\"sensor\":\"temp-%03llu\",\"site\":\"plant-7\",\"value\":%.2f,\"unit\":\"C\",\"ok\":true}",
                        static_cast<unsigned long long>(1764000000000ull + i), static_cast<unsigned long long>(i % 500),
                        20.0 + static_cast<double>(i % 1000) / 100.0);
  d.append(buf, static_cast<size_t>(n));
  batch.commitRecord();
}

int pipelineMemory(uint64_t records) {
  MetricsRegistry metrics;
  const Clock& clock = systemClock();
  BufferLimits limits;
  limits.max_bytes = 64ull << 20;
  MemoryBuffer buffer(limits, metrics, clock);
  std::vector<std::string> outs = {"null"};
  (void)buffer.setOutputs(outs);
  std::atomic<uint64_t> delivered{0};
  SenderOptions so;
  so.name = "null";
  Sender sender(so, std::make_unique<DiscardOutput>(delivered), buffer, metrics, clock);
  Pipeline pipeline(buffer, BatchingOptions{}, "bench", 0, metrics, clock);
  Emitter& emitter = pipeline.emitterFor("bench", "sensors");
  sender.start();
  pipeline.start();

  auto t0 = std::chrono::steady_clock::now();
  RecordBatch batch;
  batch.reserve(1000, 1000 * 110);
  uint64_t input_bytes = 0;
  for (uint64_t i = 0; i < records;) {
    batch.clear();
    for (int k = 0; k < 1000 && i < records; ++k, ++i) sensorRecord(batch, i);
    input_bytes += batch.bytes();
    Status st = emitter.emit(batch);
    if (!st.isOk()) {
      std::fprintf(stderr, "emit failed: %s\n", st.toString().c_str());
      return 1;
    }
  }
  while (delivered.load() < records) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  pipeline.flushAndStop(std::chrono::steady_clock::now());
  sender.stop(false, std::chrono::steady_clock::now());
  sender.join();
  std::printf(
      "{\"scenario\":\"pipeline-memory\",\"records\":%llu,\"seconds\":%.3f,\"records_per_s\":%.0f,"
      "\"peak_rss_mb\":%.1f,\"disk_bytes_per_input_byte\":0,\"upstream_bytes_per_input_byte\":0,"
      "\"input_bytes\":%llu}\n",
      static_cast<unsigned long long>(records), secs, static_cast<double>(records) / secs, peakRssMb(),
      static_cast<unsigned long long>(input_bytes));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ferry-bench: benchmark scenarios against the real agent code"};
  std::string scenario = "all";
  uint64_t records = 1'000'000;
  app.add_option("--scenario", scenario, "pipeline-memory | all");
  app.add_option("--records", records, "records per scenario");
  CLI11_PARSE(app, argc, argv);
  ferry::setLogLevel(ferry::LogLevel::kWarn);
  if (scenario == "pipeline-memory" || scenario == "all") return pipelineMemory(records);
  std::fprintf(stderr, "unknown scenario %s\n", scenario.c_str());
  return 2;
}
