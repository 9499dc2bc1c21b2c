// ferry-bench: runs named scenarios against the real agent code and prints one JSON
// object per scenario per line (see DESIGN.md, "Benchmark").
//
// Scenarios:
//   pipeline-memory  N records of ~95-byte sensor JSON, emitted in batches of 1000 by one
//                    input thread, through the batcher and writer into the memory buffer,
//                    read and acked by one sender into a discarding output.
//   buffer-append    N records (default 1,000,000) of the same JSON through the batcher
//                    and writer into the disk buffer, fsync durability, zstd level 3,
//                    AES-256-GCM on, while one sender drains them into a discarding
//                    output (uplink up). records_per_s: until every record is committed.
//                    After all are acked the space is reclaimed; disk_bytes_per_input_byte
//                    counts the process's own write_bytes (/proc/self/io: WAL, SSTs,
//                    compaction) over the whole run.
//   buffer-backlog   the same, but the sender starts only after every record was
//                    appended (draining a backlog after an outage).
//   buffer-reopen    appends N records (default 10,000,000) unacked, closes, then times
//                    opening the buffer and reading the first block ("seconds").
//   tail-http        file → tail → disk buffer → http output → `ferry receive`
//   replay-drain     the same after an outage: drain a stored backlog
//                    (both in upstream_scenarios.cpp).
//   processors       the cost per record of each built-in processor on the same records
//                    (processor_scenarios.cpp; --processor NAME runs one case or plugin).
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <charconv>
#include <cstring>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <unistd.h>

#include "agent/bench/bench_util.h"
#include "agent/bench/processor_scenarios.h"
#include "agent/bench/upstream_scenarios.h"
#include "agent/buffer/disk_buffer.h"
#include "agent/buffer/memory_buffer.h"
#include "agent/codec/key_file.h"
#include "agent/core/pipeline.h"
#include "agent/core/sender.h"
#include "ferry/log.h"

namespace {

using namespace ferry;
using ferry::bench::peakRssMb;
using ferry::bench::processWriteBytes;


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

// ~92 bytes of sensor JSON, distinct per record. Written with to_chars: the generator is
// the benchmark's input, not the agent's work, so it must not dominate the profile.
void sensorRecord(RecordBatch& batch, uint64_t i) {
  std::string& d = batch.mutableData();
  char buf[160];
  char* p = buf;
  auto put = [&](std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  };
  // Noisy like real readings: sensor and value from a hash of i (splitmix64), so zstd sees
  // realistic entropy instead of a counting pattern; timestamps advance ~1 ms per record.
  uint64_t h = i + 0x9e3779b97f4a7c15ull;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  h ^= h >> 31;
  put("{\"ts\":");
  p = std::to_chars(p, buf + sizeof buf, 1764000000000ull + i + (h & 3)).ptr;
  put(",\"sensor\":\"temp-");
  const unsigned sensor = static_cast<unsigned>((h >> 8) % 500);
  *p++ = static_cast<char>('0' + sensor / 100);
  *p++ = static_cast<char>('0' + sensor / 10 % 10);
  *p++ = static_cast<char>('0' + sensor % 10);
  put("\",\"site\":\"plant-7\",\"value\":");
  const unsigned centi = 1500 + static_cast<unsigned>((h >> 20) % 2000);
  p = std::to_chars(p, buf + sizeof buf, centi / 100).ptr;
  *p++ = '.';
  *p++ = static_cast<char>('0' + centi / 10 % 10);
  *p++ = static_cast<char>('0' + centi % 10);
  put(",\"unit\":\"C\",\"ok\":true}");
  d.append(buf, static_cast<size_t>(p - buf));
  batch.commitRecord();
}


std::string tempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/ferry-bench-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) std::abort();
  return templ;
}

// Emits `records` sensor records in batches of 1000, as one input would; returns input bytes.
uint64_t emitSensorRecords(Emitter& emitter, uint64_t records) {
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
      std::exit(1);
    }
  }
  return input_bytes;
}

// Emits `records` sensor records through a pipeline into `buffer`; returns input bytes.
uint64_t emitAll(Buffer& buffer, MetricsRegistry& metrics, uint64_t records) {
  Pipeline pipeline(buffer, BatchingOptions{}, "bench", 0, metrics, systemClock());
  Emitter& emitter = pipeline.emitterFor("bench", "sensors");
  pipeline.start();
  const uint64_t input_bytes = emitSensorRecords(emitter, records);
  pipeline.flushAndStop(std::chrono::steady_clock::now() + std::chrono::seconds(600));
  return input_bytes;
}

DiskBufferOptions benchBufferOptions(const std::string& dir) {
  DiskBufferOptions o;
  o.path = dir + "/buffer";
  o.fsync = true;
  o.max_bytes = 4ull << 30;
  auto key = writeNewKeyFile(dir + "/at-rest.key");
  if (!key.isOk()) {
    std::fprintf(stderr, "key: %s\n", key.status().toString().c_str());
    std::exit(1);
  }
  o.keys.push_back(*key);
  return o;
}

// `live`: the output drains while records arrive (uplink up, the normal case);
// otherwise every record is appended first and drained afterwards (after an outage).
int bufferAppend(uint64_t records, bool live) {
  const char* name = live ? "buffer-append" : "buffer-backlog";
  const std::string dir = tempDir();
  MetricsRegistry metrics;
  const uint64_t io0 = processWriteBytes();
  double secs = 0;
  uint64_t input_bytes = 0;
  uint64_t stored_bytes = 0;
  {
    auto opened = DiskBuffer::open(benchBufferOptions(dir), metrics, systemClock());
    if (!opened.isOk()) {
      std::fprintf(stderr, "open: %s\n", opened.status().toString().c_str());
      return 1;
    }
    DiskBuffer& buffer = **opened;
    std::vector<std::string> outs = {"null"};
    (void)buffer.setOutputs(outs);
    std::atomic<uint64_t> delivered{0};
    SenderOptions so;
    so.name = "null";
    Sender sender(so, std::make_unique<DiscardOutput>(delivered), buffer, metrics, systemClock());
    if (live) sender.start();
    auto t0 = std::chrono::steady_clock::now();
    input_bytes = emitAll(buffer, metrics, records);
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stored_bytes = buffer.stats().bytes;
    if (!live) sender.start();
    while (delivered.load() < records) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    while (buffer.stats().blocks > 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    sender.stop(false, std::chrono::steady_clock::now());
    sender.join();
    (void)buffer.compact();
  }  // closed: memtables flushed
  const uint64_t written = processWriteBytes() - io0;
  std::printf(
      "{\"scenario\":\"%s\",\"records\":%llu,\"seconds\":%.3f,\"records_per_s\":%.0f,"
      "\"peak_rss_mb\":%.1f,\"disk_bytes_per_input_byte\":%.4f,\"upstream_bytes_per_input_byte\":0,"
      "\"input_bytes\":%llu,\"stored_bytes\":%llu,\"disk_write_bytes\":%llu}\n",
      name, static_cast<unsigned long long>(records), secs, static_cast<double>(records) / secs, peakRssMb(),
      static_cast<double>(written) / static_cast<double>(input_bytes), static_cast<unsigned long long>(input_bytes),
      static_cast<unsigned long long>(stored_bytes), static_cast<unsigned long long>(written));
  std::filesystem::remove_all(dir);
  return 0;
}

int bufferReopen(uint64_t records) {
  const std::string dir = tempDir();
  MetricsRegistry metrics;
  DiskBufferOptions o = benchBufferOptions(dir);
  o.fsync = false;  // filling is not what is measured
  {
    auto opened = DiskBuffer::open(o, metrics, systemClock());
    if (!opened.isOk()) return 1;
    std::vector<std::string> outs = {"null"};
    (void)(*opened)->setOutputs(outs);
    emitAll(**opened, metrics, records);
  }
  auto t0 = std::chrono::steady_clock::now();
  uint64_t first_records = 0;
  uint64_t held = 0;
  {
    auto opened = DiskBuffer::open(o, metrics, systemClock());
    if (!opened.isOk()) return 1;
    std::vector<std::string> outs = {"null"};
    (void)(*opened)->setOutputs(outs);
    auto first = (*opened)->read("null", 0, 1, std::chrono::milliseconds(0));
    if (!first.isOk() || first->empty()) return 1;
    first_records = (*first)[0]->records.size();
    held = (*opened)->stats().records;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf(
        "{\"scenario\":\"buffer-reopen\",\"records\":%llu,\"seconds\":%.3f,\"records_per_s\":0,"
        "\"peak_rss_mb\":%.1f,\"disk_bytes_per_input_byte\":0,\"upstream_bytes_per_input_byte\":0,"
        "\"first_block_records\":%llu}\n",
        static_cast<unsigned long long>(held), secs, peakRssMb(), static_cast<unsigned long long>(first_records));
  }
  std::filesystem::remove_all(dir);
  return 0;
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
  const uint64_t input_bytes = emitSensorRecords(emitter, records);
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
  uint64_t records = 0;
  app.add_option("--scenario", scenario,
                 "pipeline-memory | buffer-append | buffer-backlog | buffer-reopen | tail-http | replay-drain | "
                 "processors | all");
  app.add_option("--records", records, "records per scenario (default: the scenario's own)");
  std::string processor;
  app.add_option("--processor", processor, "processors scenario: only this case or processor type");
  CLI11_PARSE(app, argc, argv);
  ferry::setLogLevel(ferry::LogLevel::kWarn);
  auto n = [&](uint64_t def) { return records != 0 ? records : def; };
  // Each scenario runs in its own process so peak RSS is its own.
  if (scenario == "pipeline-memory") return pipelineMemory(n(1'000'000));
  if (scenario == "buffer-append") return bufferAppend(n(1'000'000), /*live=*/true);
  if (scenario == "buffer-backlog") return bufferAppend(n(1'000'000), /*live=*/false);
  if (scenario == "buffer-reopen") return bufferReopen(n(10'000'000));
  if (scenario == "tail-http" || scenario == "replay-drain") {
    return ferry::bench::upstreamScenario(scenario, n(1'000'000), sensorRecord);
  }
  if (scenario == "processors") return ferry::bench::processorScenario(n(1'000'000), sensorRecord, processor);
  if (scenario == "all") {
    int rc = 0;
    for (const char* s : {"pipeline-memory", "buffer-append", "buffer-backlog", "buffer-reopen", "tail-http",
                          "replay-drain", "processors"}) {
      std::string cmd = std::string("'") + argv[0] + "' --scenario " + s;
      if (records != 0) cmd += " --records " + std::to_string(records);
      std::fflush(stdout);
      rc |= std::system(cmd.c_str());
    }
    return rc == 0 ? 0 : 1;
  }
  std::fprintf(stderr, "unknown scenario %s\n", scenario.c_str());
  return 2;
}
