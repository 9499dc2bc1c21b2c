// ferry-bench scenario `formats`: the cost of turning one line into a record, per format
// (agent/formats/line_format), on one thread. For each format, `records` lines of the same
// sensor readings as the other scenarios (written in that format, 45 to 95 bytes) are made
// first in one arena (not timed); then one LineParser parses them all into a RecordBatch
// cleared every 1000 records, as an input would. Printed per format: ns_per_record and
// records_per_s (wall clock), cpu_ns_per_record (this thread's CPU time: on a busy machine
// the wall figure includes time the thread waited for a core), plus the standard fields.
// `json_padded` is json through parsePadded() (the caller's buffer has the padding simdjson needs:
// no copy), as the tail input can use it.
#include "agent/bench/format_scenarios.h"

#include <time.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "agent/bench/bench_util.h"
#include "agent/formats/line_format.h"

namespace ferry::bench {
namespace {

struct Case {
  const char* name;
  LineFormat format;
  bool padded = false;
};

constexpr Case kCases[] = {
    {"json", LineFormat::kJson},   {"json_padded", LineFormat::kJson, true},
    {"text", LineFormat::kText},   {"logfmt", LineFormat::kLogfmt},
    {"csv", LineFormat::kCsv},     {"influx", LineFormat::kInflux},
    {"regex", LineFormat::kRegex},
};

double threadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

constexpr const char* kRegexPattern =
    R"(^(?<time>\S+) (?<site>\S+) (?<sensor>[^:]+): value=(?<value>\S+) unit=(?<unit>\S+)$)";

// Appends reading i as one line of `format` (no newline) to `out`.
void appendLine(std::string& out, LineFormat format, uint64_t i) {
  if (format == LineFormat::kJson) {
    RecordBatch one;
    sensorRecord(one, i);
    out.append(one[0]);
    return;
  }
  const SensorReading r = sensorReading(i);
  LineWriter w;
  switch (format) {
    case LineFormat::kText:
    case LineFormat::kRegex:  // "1764000000123 plant-7 temp-042: value=27.45 unit=C"
      w.num(r.ts_ms).put(" plant-7 ").sensor(r.sensor).put(": value=").centi(r.centi);
      w.put(" unit=C");
      break;
    case LineFormat::kLogfmt:
      w.put("ts=").num(r.ts_ms).put(" sensor=").sensor(r.sensor).put(" site=plant-7 value=");
      w.centi(r.centi).put(" unit=C ok=true");
      break;
    case LineFormat::kCsv:
      w.num(r.ts_ms).put(",").sensor(r.sensor).put(",plant-7,").centi(r.centi).put(",C,true");
      break;
    case LineFormat::kInflux:
      w.put("sensors,sensor=").sensor(r.sensor).put(",site=plant-7 value=").centi(r.centi);
      w.put(",unit=\"C\",ok=t ").num(r.ts_ms * 1000000);
      break;
    case LineFormat::kJson:
      break;
  }
  out.append(w.text());
}

int runCase(const Case& c, uint64_t records) {
  LineFormatSpec spec;
  spec.format = c.format;
  if (c.format == LineFormat::kCsv) spec.columns = {"ts", "sensor", "site", "value", "unit", "ok"};
  if (c.format == LineFormat::kRegex) spec.pattern = kRegexPattern;
  Result<LineParser> made = LineParser::make(spec);
  if (!made.isOk()) {
    std::fprintf(stderr, "%s: %s\n", c.name, made.status().toString().c_str());
    return 1;
  }
  LineParser& parser = *made;

  std::string arena;
  std::vector<uint32_t> ends;
  ends.reserve(records);
  for (uint64_t i = 0; i < records; ++i) {
    appendLine(arena, c.format, i);
    ends.push_back(static_cast<uint32_t>(arena.size()));
    arena.push_back('\n');
  }
  const uint64_t input_bytes = arena.size() - records;
  arena.append(kLinePadding, ' ');

  RecordBatch batch;
  batch.reserve(1000, 1000 * 200);
  uint64_t appended = 0;
  uint64_t refused = 0;
  const double cpu0 = threadCpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  size_t begin = 0;
  for (uint64_t i = 0; i < records; ++i) {
    const std::string_view line(arena.data() + begin, ends[i] - begin);
    begin = ends[i] + 1;
    const LineOutcome o = c.padded ? parser.parsePadded(line, batch) : parser.parse(line, batch);
    appended += o.appended();
    refused += o.refused();
    if (batch.size() == 1000) batch.clear();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = threadCpuSeconds() - cpu0;
  if (appended != records) {
    std::fprintf(stderr, "%s: only %llu of %llu lines became records (%llu refused)\n", c.name,
                 static_cast<unsigned long long>(appended),
                 static_cast<unsigned long long>(records),
                 static_cast<unsigned long long>(refused));
    return 1;
  }
  std::printf(
      "{\"scenario\":\"formats\",\"format\":\"%s\",\"records\":%llu,\"seconds\":%.3f,"
      "\"records_per_s\":%.0f,\"ns_per_record\":%.1f,\"cpu_ns_per_record\":%.1f,\"peak_rss_mb\":%."
      "1f,"
      "\"disk_bytes_per_input_byte\":0,\"upstream_bytes_per_input_byte\":0,"
      "\"bytes_per_line\":%.1f}\n",
      c.name, static_cast<unsigned long long>(records), secs, static_cast<double>(records) / secs,
      secs * 1e9 / static_cast<double>(records), cpu * 1e9 / static_cast<double>(records),
      peakRssMb(), static_cast<double>(input_bytes) / static_cast<double>(records));
  std::fflush(stdout);
  return 0;
}

}  // namespace

int formatsScenario(uint64_t records) {
  int rc = 0;
  for (const Case& c : kCases) rc |= runCase(c, records);
  return rc;
}

}  // namespace ferry::bench
