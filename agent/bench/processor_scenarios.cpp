// The `processors` scenario: for each case of kCases, the real plugin is built from its
// option table (as the config loader would) and process() runs over N sensor records of about
// 95 bytes ({"ts":…,"sensor":"temp-123","site":"plant-7","value":21.53,"unit":"C","ok":true}),
// in batches of 1000. Only the process() calls are timed (not making the records), in CPU
// time of the bench thread (CLOCK_THREAD_CPUTIME_ID), so other load on the machine does not
// inflate the figure; a ticking processor gets its final tick inside the timed part.
// One JSON line per case:
//   {"scenario":"processors","case":…,"processor":…,"records":…,"records_out":…,
//    "seconds":…,"ns_per_record":…,"records_per_s":…,"peak_rss_mb":…,…}
// Adding a processor to the benchmark is one line in kCases.
#include "agent/bench/processor_scenarios.h"

#include <time.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string_view>

#include "agent/bench/bench_util.h"
#include "agent/config/loader.h"
#include "agent/core/registry.h"
#include "ferry/json.h"
#include "ferry/metrics.h"
#include "ferry/plugin.h"
#include "ferry/record_fields.h"

namespace ferry::bench {

namespace {

// What a case's records look like: the sensor records themselves, or each one carried as text
// in "message" (what a text-format input yields), as JSON or as logfmt.
enum class Shape : uint8_t { kSensor, kMessageJson, kMessageLogfmt };

struct ProcessorCase {
  std::string_view name;       // the line's "case"
  std::string_view processor;  // the plugin's type
  std::string_view options;    // its options, as YAML
  Shape shape = Shape::kSensor;
};

// Representative configs over the sensor records' fields (ts, sensor, site, value, unit, ok).
constexpr ProcessorCase kCases[] = {
    {"filter", "filter", R"(expression: 'value > 25 and site == "plant-7"')"},
    {"filter-regex", "filter", R"(expression: 'sensor =~ "^temp-1[0-4]"')"},
    {"filter-nested-or", "filter",
     R"(expression: '(unit == "F" or not ok) or (value < 16 and exists(ts))')"},
    {"set", "set", "fields: {unit: K, meta.source: plant-7}"},
    {"rename", "rename", "fields: {value: temp, sensor: meta.sensor}"},
    {"drop", "drop", "fields: [unit, ok]"},
    {"keep", "keep", "fields: [ts, sensor, value]"},
    {"enrich", "enrich",
     "tags: {region: eu-west, line: '3'}\nagent_id: true\nhostname: true\nconfig_version: true"},
    {"sample", "sample", "rate: 0.1"},
    {"parse-json", "parse", "format: json", Shape::kMessageJson},
    {"parse-logfmt", "parse", "format: logfmt", Shape::kMessageLogfmt},
};

int64_t threadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Rewrites each sensor record of `in` into the case's shape (not timed).
void reshape(Shape shape, const RecordBatch& in, RecordBatch& out, std::string& text) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    text.clear();
    if (shape == Shape::kMessageJson) {
      text = in[i];
    } else {
      JsonObjectReader reader(in[i]);
      std::string_view k, v;
      while (reader.next(&k, &v)) {
        if (!text.empty()) text.push_back(' ');
        text += k;
        text.push_back('=');
        text += jsonKindOf(v) == JsonKind::kString ? v.substr(1, v.size() - 2) : v;
      }
    }
    std::string& d = out.mutableData();
    d += "{\"message\":";
    appendJsonString(d, text);
    d.push_back('}');
    out.commitRecord();
  }
}

class NullSink final : public TickSink {
 public:
  void emit(std::string_view, const RecordBatch& batch) override { records += batch.size(); }
  uint64_t records = 0;
};

int runCase(const ProcessorCase& c, uint64_t records,
            const std::function<void(RecordBatch&, uint64_t)>& gen) {
  const PluginDescriptor* d = PluginRegistry::builtin().find(PluginKind::kProcessor, c.processor);
  if (d == nullptr) {
    std::fprintf(stderr, "processors: %.*s is not built in; case %.*s skipped\n",
                 static_cast<int>(c.processor.size()), c.processor.data(),
                 static_cast<int>(c.name.size()), c.name.data());
    return 0;
  }
  auto opts = optionsFromYaml(c.options, d->options);
  if (!opts.isOk()) {
    std::fprintf(stderr, "processors: case %.*s: %s\n", static_cast<int>(c.name.size()),
                 c.name.data(), opts.status().toString().c_str());
    return 1;
  }
  MetricsRegistry metrics;
  PluginContext ctx{"bench", std::string(c.name), "/nonexistent", &systemClock(), &metrics, d};
  auto made = d->make_processor(ctx, *opts);
  if (!made.isOk()) {
    std::fprintf(stderr, "processors: case %.*s: %s\n", static_cast<int>(c.name.size()),
                 c.name.data(), made.status().toString().c_str());
    return 1;
  }
  Processor& p = **made;
  RecordBatch in, out, shaped;
  std::string text;
  in.reserve(1000, 1000 * 110);
  out.reserve(1000, 1000 * 200);
  ProcessResult result;
  uint64_t records_out = 0;
  int64_t busy_ns = 0;
  const auto wall0 = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < records;) {
    in.clear();
    for (int k = 0; k < 1000 && i < records; ++k, ++i) gen(in, i);
    if (c.shape != Shape::kSensor) {
      reshape(c.shape, in, shaped, text);
      in.clear();
      in.appendAll(shaped);
    }
    out.clear();
    result.filtered = 0;
    result.dropped.clear();
    const int64_t t0 = threadCpuNs();
    Status st = p.process("sensors", in, out, result);
    busy_ns += threadCpuNs() - t0;
    if (!st.isOk()) {
      std::fprintf(stderr, "processors: case %.*s: %s\n", static_cast<int>(c.name.size()),
                   c.name.data(), st.toString().c_str());
      return 1;
    }
    records_out += out.size();
  }
  if (p.tickInterval() > Duration::zero()) {
    NullSink sink;
    const int64_t t0 = threadCpuNs();
    p.tick(systemClock().now(), /*final=*/true, sink, result);
    busy_ns += threadCpuNs() - t0;
    records_out += sink.records;
  }
  const double secs = static_cast<double>(busy_ns) / 1e9;
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  std::printf(
      "{\"scenario\":\"processors\",\"case\":\"%.*s\",\"processor\":\"%.*s\",\"records\":%llu,"
      "\"records_out\":%llu,"
      "\"seconds\":%.3f,\"ns_per_record\":%.1f,\"records_per_s\":%.0f,\"wall_seconds\":%.3f,\"peak_"
      "rss_mb\":%.1f,"
      "\"disk_bytes_per_input_byte\":0,\"upstream_bytes_per_input_byte\":0}\n",
      static_cast<int>(c.name.size()), c.name.data(), static_cast<int>(c.processor.size()),
      c.processor.data(), static_cast<unsigned long long>(records),
      static_cast<unsigned long long>(records_out), secs, secs * 1e9 / static_cast<double>(records),
      static_cast<double>(records) / secs, wall, peakRssMb());
  std::fflush(stdout);
  return 0;
}

}  // namespace

int processorScenario(uint64_t records, const std::function<void(RecordBatch&, uint64_t)>& gen,
                      const std::string& only) {
  int rc = 0;
  bool any = false;
  for (const ProcessorCase& c : kCases) {
    if (!only.empty() && only != c.name && only != c.processor) continue;
    any = true;
    rc |= runCase(c, records, gen);
  }
  if (!any) {
    std::fprintf(stderr, "processors: no case named %s\n", only.c_str());
    return 2;
  }
  return rc;
}

}  // namespace ferry::bench
