#include "plugins/inputs/sysmetrics/sysmetrics.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/log.h"
#include "tests/support/log_capture.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

using test::TempDir;
using test::writeFile;

// 2026-11-24T14:00:00.123Z
constexpr int64_t kWallMs = 1795528800123;

class ManualClock final : public Clock {
 public:
  SteadyTime now() const override { return SteadyTime{}; }
  int64_t wallMs() const override { return wall_ms; }
  int64_t wall_ms = kWallMs;
};

// Keeps a copy of every batch it is handed; answers with `answer`.
class CaptureEmitter final : public Emitter {
 public:
  Status emit(const RecordBatch& batch, std::string_view /*stream*/) override {
    std::vector<std::string> records;
    for (size_t i = 0; i < batch.size(); ++i) records.emplace_back(batch[i]);
    batches.push_back(std::move(records));
    return answer;
  }
  Status emitWithCheckpoint(const RecordBatch& batch, const SourceCheckpoint& /*cp*/,
                            std::string_view stream) override {
    return emit(batch, stream);
  }
  Status tryEmit(const RecordBatch& batch, Duration, std::string_view stream) override { return emit(batch, stream); }
  Result<uint64_t> emitTracked(const RecordBatch& batch, std::string_view stream, Duration) override {
    Status st = emit(batch, stream);
    if (!st.isOk()) return st;
    return static_cast<uint64_t>(batches.size());
  }
  Status waitForRoom(uint64_t, Duration) override { return answer; }
  Status waitCommitted(uint64_t, Duration) override { return Status::ok(); }
  Status deadLetter(const RecordBatch&, std::string_view) override { return Status::ok(); }
  void countDropped(std::string_view, uint64_t) override {}
  const CheckpointReader& checkpoints() const override { return none_; }
  bool stopping() const override { return false; }
  bool waitFor(Duration /*d*/) override { return false; }

  std::vector<std::vector<std::string>> batches;
  Status answer;

 private:
  class NoCheckpoints final : public CheckpointReader {
   public:
    std::optional<std::string> get(std::string_view) const override { return std::nullopt; }
    std::vector<std::pair<std::string, std::string>> list(std::string_view) const override { return {}; }
  };
  NoCheckpoints none_;
};

using test::LogCapture;

constexpr std::string_view kStat1 =
    "cpu  100 0 100 700 100 0 0 0 0 0\n"
    "cpu0 50 0 50 350 50 0 0 0 0 0\n"
    "cpu1 50 0 50 350 50 0 0 0 0 0\n"
    "intr 12345 1 2 3\n"
    "ctxt 999\n"
    "cpu_not_a_cpu_line_after_intr 1 2 3 4\n";
// Deltas from kStat1: user 300, nice 0, system 50 + irq 30 + softirq 20, idle 300, iowait 100.
constexpr std::string_view kStat2 =
    "cpu  400 0 150 1000 200 30 20 0 0 0\n"
    "cpu0 200 0 75 500 100 15 10 0 0 0\n"
    "cpu1 200 0 75 500 100 15 10 0 0 0\n"
    "intr 23456 1 2 3\n";

constexpr std::string_view kMeminfo =
    "MemTotal:       16000000 kB\n"
    "MemFree:         1000000 kB\n"
    "MemAvailable:    4000000 kB\n"
    "Buffers:          200000 kB\n"
    "Cached:          2000000 kB\n"
    "SwapCached:            0 kB\n"
    "SwapTotal:       2097148 kB\n"
    "SwapFree:        1048574 kB\n"
    "HugePages_Total:       0\n";

constexpr std::string_view kNetDev =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n"
    "    lo:    3267      29    0    0    0     0          0         0     3267      29    0    "
    "0    0     0       0          0\n"
    "  eth0: 19666559     565    1    2    0     0          0         0    28355     329    3    "
    "4    0     0       0          0\n"
    "wlan0:100 10 0 0 0 0 0 0 200 20 0 0 0 0 0 0\n";

constexpr std::string_view kDiskstats =
    "   7       0 loop0 5 0 10 1 0 0 0 0 0 1 1 0 0 0 0 0 0\n"
    "   1       0 ram0 0 0 0 0 0 0 0 0 0 0 0\n"
    "   8       0 sda 1000 20 64000 300 500 10 16000 700 2 900 1000 0 0 0 0 0 0\n"
    "   8       1 sda1 900 20 60000 290 500 10 16000 700 0 880 990\n"
    " 179       0 mmcblk0 7 0 8 9 10 0 12 13 0 14 15\n"
    "   8      16 sdb 1 2 3\n";  // torn: skipped

// Writes a complete fake procfs under `dir`.
void writeProc(const TempDir& dir, std::string_view stat = kStat1) {
  std::filesystem::create_directories(dir.path() / "net");
  writeFile(dir.file("diskstats"), std::string(kDiskstats));
  writeFile(dir.file("stat"), std::string(stat));
  writeFile(dir.file("meminfo"), std::string(kMeminfo));
  writeFile(dir.file("net/dev"), std::string(kNetDev));
  writeFile(dir.file("loadavg"), "0.52 1.25 2.00 1/234 5678\n");
  writeFile(dir.file("uptime"), "12345.67 54321.00\n");
}

Options procOptions(const TempDir& dir, std::vector<std::string> collect = {}) {
  Options opts;
  opts.set("proc_root", dir.path().string(), {});
  if (!collect.empty()) opts.set("collect", std::move(collect), {});
  return opts;
}

struct Harness {
  ManualClock clock;
  CaptureEmitter emitter;
  std::unique_ptr<Input> input;

  Status make(const Options& opts, std::string agent = "edge-01") {
    PluginContext ctx;
    ctx.agent_id = std::move(agent);
    ctx.name = "host";
    ctx.clock = &clock;
    Result<std::unique_ptr<Input>> r = sysmetricsInputDescriptor().make_input(ctx, opts);
    if (!r.isOk()) return r.status();
    input = std::move(r).value();
    return Status::ok();
  }
  // Records of the last emitted batch.
  const std::vector<std::string>& last() const { return emitter.batches.back(); }
};

// The raw JSON text of `key`'s value in a flat record (up to the next ',' or '}'; string
// values here never contain those).
std::string field(std::string_view record, std::string_view key) {
  const std::string needle = "\"" + std::string(key) + "\":";
  const size_t at = record.find(needle);
  if (at == std::string_view::npos) return "<absent>";
  const size_t begin = at + needle.size();
  const size_t end = record.find_first_of(",}", begin);
  return std::string(record.substr(begin, end - begin));
}

std::vector<std::string> ofMetric(const std::vector<std::string>& records, std::string_view m) {
  std::vector<std::string> out;
  const std::string needle = "\"metric\":\"" + std::string(m) + "\"";
  for (const std::string& r : records) {
    if (r.find(needle) != std::string::npos) out.push_back(r);
  }
  return out;
}

// A small structural check: one flat JSON object on one line, strings closed, no raw
// control characters, balanced quotes outside escapes.
bool looksLikeJsonObject(std::string_view r) {
  if (r.size() < 2 || r.front() != '{' || r.back() != '}') return false;
  bool in_string = false;
  for (size_t i = 1; i + 1 < r.size(); ++i) {
    const auto c = static_cast<unsigned char>(r[i]);
    if (c < 0x20) return false;
    if (in_string && c == '\\') {
      ++i;
      continue;
    }
    if (c == '"') in_string = !in_string;
    if (!in_string && (c == '{' || c == '}' || c == '[' || c == ']')) return false;
  }
  return !in_string;
}

TEST_SUITE("inputs.sysmetrics") {
  TEST_CASE("descriptor names the plugin, its options and a factory") {
    const PluginDescriptor& d = sysmetricsInputDescriptor();
    CHECK(d.kind == PluginKind::kInput);
    CHECK(d.name == "sysmetrics");
    CHECK(!d.summary.empty());
    CHECK((d.make_input != nullptr));
    CHECK((d.make_output == nullptr));
    std::vector<std::string_view> keys;
    for (const OptionSpec& o : d.options) keys.push_back(o.key);
    CHECK(keys ==
          std::vector<std::string_view>{"interval", "collect", "disks", "interfaces", "devices", "proc_root",
                                        "sys_root"});
    CHECK(d.options[0].type == OptionType::kDuration);
    CHECK(d.options[0].default_value == "10s");
    CHECK(d.options[1].default_value == "[cpu, memory, disk, network, load, uptime, diskio, thermal]");
    CHECK(d.options[1].choices.size() == kMetricGroupCount);
    CHECK(d.options[2].default_value == "[/]");
    CHECK(d.options[3].default_value == "[]");
    CHECK(d.options[5].default_value == "/proc");
  }

  TEST_CASE("interval: default, explicit value, and below 100ms rejected with its location") {
    Harness h;
    REQUIRE(h.make(Options{}).isOk());
    CHECK(h.input->interval() == std::chrono::seconds(10));

    Options ok;
    ok.set("interval", Duration(std::chrono::milliseconds(100)), {});
    REQUIRE(h.make(ok).isOk());
    CHECK(h.input->interval() == std::chrono::milliseconds(100));

    Options bad;
    bad.set("interval", Duration(std::chrono::milliseconds(50)),
            SourceLocation{"ferry.yaml", 4, "inputs[0].interval"});
    Status st = h.make(bad);
    CHECK(st.code() == StatusCode::kInvalidArgument);
    CHECK(st.message().find("ferry.yaml:4: inputs[0].interval") != std::string::npos);
    CHECK(st.message().find("50ms") != std::string::npos);
    CHECK(st.message().find("100ms") != std::string::npos);

    Options zero;
    zero.set("interval", Duration::zero(), SourceLocation{"ferry.yaml", 4, "inputs[0].interval"});
    CHECK(h.make(zero).code() == StatusCode::kInvalidArgument);
  }

  TEST_CASE("unknown collect name is rejected naming the key and the valid names") {
    Harness h;
    Options opts;
    opts.set("collect", std::vector<std::string>{"cpu", "gpu"},
             SourceLocation{"ferry.yaml", 7, "inputs[0].collect"});
    Status st = h.make(opts);
    CHECK(st.code() == StatusCode::kInvalidArgument);
    CHECK(st.message().find("ferry.yaml:7: inputs[0].collect[1]") != std::string::npos);
    CHECK(st.message().find("\"gpu\"") != std::string::npos);
    CHECK(st.message().find("cpu, memory, disk, network, load, uptime") != std::string::npos);

    // Without a location the key is still named.
    Options bare;
    bare.set("collect", std::vector<std::string>{"temperature"}, {});
    st = h.make(bare);
    CHECK(st.message().find("collect[0]") != std::string::npos);
  }

  TEST_CASE("a relative disks entry is rejected") {
    Harness h;
    Options opts;
    opts.set("disks", std::vector<std::string>{"/", "data"},
             SourceLocation{"ferry.yaml", 9, "inputs[0].disks"});
    Status st = h.make(opts);
    CHECK(st.code() == StatusCode::kInvalidArgument);
    CHECK(st.message().find("ferry.yaml:9: inputs[0].disks[1]") != std::string::npos);
  }

  TEST_CASE("every record starts with ts, agent and metric; one batch per collect") {
    TempDir dir;
    writeProc(dir);
    Harness h;
    REQUIRE(h.make(procOptions(dir, {"load", "uptime"}), "edge \"01\"").isOk());
    REQUIRE(h.input->collect(h.emitter).isOk());
    REQUIRE(h.emitter.batches.size() == 1);
    REQUIRE(h.last().size() == 2);
    CHECK(h.last()[0] ==
          "{\"ts\":\"2026-11-24T14:00:00.123Z\",\"agent\":\"edge \\\"01\\\"\",\"metric\":\"load\","
          "\"load1\":0.52,\"load5\":1.25,\"load15\":2.00}");
    CHECK(h.last()[1] ==
          "{\"ts\":\"2026-11-24T14:00:00.123Z\",\"agent\":\"edge \\\"01\\\"\",\"metric\":"
          "\"uptime\",\"uptime_s\":12345}");

    // The batch is reused: the next collect carries only its own records, new timestamp.
    h.clock.wall_ms = kWallMs + 10'000;
    REQUIRE(h.input->collect(h.emitter).isOk());
    REQUIRE(h.emitter.batches.size() == 2);
    REQUIRE(h.last().size() == 2);
    CHECK(field(h.last()[0], "ts") == "\"2026-11-24T14:00:10.123Z\"");
  }

  TEST_CASE("cpu percentages: since boot first, then over the delta between collects") {
    TempDir dir;
    writeProc(dir, kStat1);
    Harness h;
    REQUIRE(h.make(procOptions(dir, {"cpu"})).isOk());

    REQUIRE(h.input->collect(h.emitter).isOk());
    REQUIRE(h.last().size() == 1);
    CHECK(h.last()[0] ==
          "{\"ts\":\"2026-11-24T14:00:00.123Z\",\"agent\":\"edge-01\",\"metric\":\"cpu\","
          "\"usage_pct\":20.00,\"user_pct\":10.00,\"system_pct\":10.00,\"iowait_pct\":10.00,"
          "\"idle_pct\":70.00,\"cores\":2}");

    writeFile(dir.file("stat"), std::string(kStat2));
    REQUIRE(h.input->collect(h.emitter).isOk());
    const std::string& r = h.last()[0];
    // Total delta 800: user 300, system 100, iowait 100, idle 300.
    CHECK(field(r, "usage_pct") == "50.00");
    CHECK(field(r, "user_pct") == "37.50");
    CHECK(field(r, "system_pct") == "12.50");
    CHECK(field(r, "iowait_pct") == "12.50");
    CHECK(field(r, "idle_pct") == "37.50");
    CHECK(field(r, "cores") == "2");

    // No tick in between: the last figures are repeated instead of a 0/0 sample.
    REQUIRE(h.input->collect(h.emitter).isOk());
    CHECK(field(h.last()[0], "usage_pct") == "50.00");
    CHECK(field(h.last()[0], "idle_pct") == "37.50");

    // Counters going backwards (CPU unplugged) do not wrap around.
    writeFile(dir.file("stat"), "cpu  100 0 100 1100 200 30 20 0 0 0\ncpu0 1 1 1 1\n");
    REQUIRE(h.input->collect(h.emitter).isOk());
    CHECK(field(h.last()[0], "idle_pct") == "100.00");
    CHECK(field(h.last()[0], "usage_pct") == "0.00");
    CHECK(field(h.last()[0], "cores") == "1");
  }

  TEST_CASE("memory from meminfo, with the pre-3.14 fallback for MemAvailable") {
    TempDir dir;
    writeProc(dir);
    Harness h;
    REQUIRE(h.make(procOptions(dir, {"memory"})).isOk());
    REQUIRE(h.input->collect(h.emitter).isOk());
    REQUIRE(h.last().size() == 1);
    CHECK(h.last()[0] ==
          "{\"ts\":\"2026-11-24T14:00:00.123Z\",\"agent\":\"edge-01\",\"metric\":\"memory\","
          "\"total_bytes\":16384000000,\"available_bytes\":4096000000,\"used_pct\":75.00,"
          "\"swap_total_bytes\":2147479552,\"swap_free_bytes\":1073739776}");

    writeFile(dir.file("meminfo"),
              "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 100 kB\n");
    REQUIRE(h.input->collect(h.emitter).isOk());
    const std::string& r = h.last()[0];
    CHECK(field(r, "available_bytes") == "256000");
    CHECK(field(r, "used_pct") == "75.00");
    CHECK(field(r, "swap_total_bytes") == "0");
  }

  TEST_CASE("network: every interface but lo by default, counters as read") {
    TempDir dir;
    writeProc(dir);
    Harness h;
    REQUIRE(h.make(procOptions(dir, {"network"})).isOk());
    REQUIRE(h.input->collect(h.emitter).isOk());
    REQUIRE(h.last().size() == 2);
    CHECK(h.last()[0] ==
          "{\"ts\":\"2026-11-24T14:00:00.123Z\",\"agent\":\"edge-01\",\"metric\":\"network\","
          "\"interface\":\"eth0\",\"rx_bytes\":19666559,\"tx_bytes\":28355,\"rx_packets\":565,"
          "\"tx_packets\":329,\"rx_errors\":1,\"tx_errors\":3,\"rx_dropped\":2,"
          "\"tx_dropped\":4}");
    // No space after the colon (long names) is parsed too.
    CHECK(field(h.last()[1], "interface") == "\"wlan0\"");
    CHECK(field(h.last()[1], "rx_bytes") == "100");
    CHECK(field(h.last()[1], "tx_packets") == "20");
  }

  TEST_CASE("network: an explicit interfaces list, lo included when asked for") {
    TempDir dir;
    writeProc(dir);
    Harness h;
    Options opts = procOptions(dir, {"network"});
    opts.set("interfaces", std::vector<std::string>{"lo", "wlan0", "absent0"}, {});
    REQUIRE(h.make(opts).isOk());
    REQUIRE(h.input->collect(h.emitter).isOk());
    REQUIRE(h.last().size() == 2);
    CHECK(field(h.last()[0], "interface") == "\"lo\"");
    CHECK(field(h.last()[0], "rx_bytes") == "3267");
    CHECK(field(h.last()[1], "interface") == "\"wlan0\"");
  }

  TEST_CASE("network: odd interface names are escaped into valid JSON") {
    TempDir dir;
    writeProc(dir);
    writeFile(dir.file("net/dev"), std::string(kNetDev.substr(0, kNetDev.find("    lo:"))) +
                                       "a\"b\\c\xff\xc3\xa9: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 "
                                       "15 16\n");
    Harness h;
    REQUIRE(h.make(procOptions(dir, {"network"})).isOk());
    REQUIRE(h.input->collect(h.emitter).isOk());
    REQUIRE(h.last().size() == 1);
    CHECK(h.last()[0].find("\"interface\":\"a\\\"b\\\\c\\ufffd\xc3\xa9\"") != std::string::npos);
    CHECK(field(h.last()[0], "tx_dropped") == "12");
    CHECK(looksLikeJsonObject(h.last()[0]));
  }

  TEST_CASE("load and uptime") {
    TempDir dir;
    writeProc(dir);
    writeFile(dir.file("loadavg"), "10.07 0.00 123.45 3/999 1\n");
    writeFile(dir.file("uptime"), "86400.99 1.00\n");
    Harness h;
    REQUIRE(h.make(procOptions(dir, {"uptime", "load"})).isOk());
    REQUIRE(h.input->collect(h.emitter).isOk());
    REQUIRE(h.last().size() == 2);
    // Batch order is the fixed group order, not the order of `collect`.
    CHECK(field(h.last()[0], "metric") == "\"load\"");
    CHECK(field(h.last()[0], "load1") == "10.07");
    CHECK(field(h.last()[0], "load5") == "0.00");
    CHECK(field(h.last()[0], "load15") == "123.45");
    CHECK(field(h.last()[1], "uptime_s") == "86400");
  }

  TEST_CASE("disk: statvfs of each mount; a failing mount is skipped and logged once") {
    LogCapture log;
    TempDir dir;
    writeProc(dir);
    Harness h;
    Options opts = procOptions(dir, {"disk"});
    opts.set("disks", std::vector<std::string>{"/", dir.file("missing"), dir.path().string()}, {});
    REQUIRE(h.make(opts).isOk());
    for (int i = 0; i < 3; ++i) REQUIRE(h.input->collect(h.emitter).isOk());
    REQUIRE(h.emitter.batches.size() == 3);
    REQUIRE(h.last().size() == 2);
    CHECK(field(h.last()[0], "mount") == "\"/\"");
    CHECK(field(h.last()[1], "mount") == "\"" + dir.path().string() + "\"");
    for (const std::string& r : h.last()) {
      CHECK(looksLikeJsonObject(r));
      CHECK(std::stoull(field(r, "total_bytes")) > 0);
      CHECK(std::stoull(field(r, "free_bytes")) <= std::stoull(field(r, "total_bytes")));
      CHECK(std::stoull(field(r, "avail_bytes")) <= std::stoull(field(r, "free_bytes")));
      const double used = std::stod(field(r, "used_pct"));
      CHECK(used >= 0);
      CHECK(used <= 100);
    }
    CHECK(log.count("skipping disk " + dir.file("missing")) == 1);

    // Once the mount works again it is reported, and a later failure is logged anew.
    std::filesystem::create_directory(dir.file("missing"));
    REQUIRE(h.input->collect(h.emitter).isOk());
    CHECK(h.last().size() == 3);
    CHECK(log.count("is readable again") == 1);
    std::filesystem::remove(dir.file("missing"));
    REQUIRE(h.input->collect(h.emitter).isOk());
    CHECK(h.last().size() == 2);
    CHECK(log.count("skipping disk " + dir.file("missing")) == 2);
  }

  TEST_CASE("a missing proc file skips only its group, logged once until it works again") {
    LogCapture log;
    TempDir dir;
    writeProc(dir);
    std::filesystem::remove(dir.file("meminfo"));
    Harness h;
    Options opts = procOptions(dir);
    opts.set("disks", std::vector<std::string>{dir.path().string()}, {});
    REQUIRE(h.make(opts).isOk());

    REQUIRE(h.input->collect(h.emitter).isOk());
    REQUIRE(h.input->collect(h.emitter).isOk());
    REQUIRE(h.emitter.batches.size() == 2);
    for (const auto& batch : h.emitter.batches) {
      CHECK(ofMetric(batch, "memory").empty());
      CHECK(ofMetric(batch, "cpu").size() == 1);
      CHECK(ofMetric(batch, "disk").size() == 1);
      CHECK(ofMetric(batch, "network").size() == 2);
      CHECK(ofMetric(batch, "load").size() == 1);
      CHECK(ofMetric(batch, "uptime").size() == 1);
    }
    CHECK(log.count("skipping memory metrics") == 1);
    CHECK(log.count(dir.file("meminfo")) == 1);

    writeFile(dir.file("meminfo"), std::string(kMeminfo));
    REQUIRE(h.input->collect(h.emitter).isOk());
    CHECK(ofMetric(h.last(), "memory").size() == 1);
    CHECK(log.count("memory metrics are readable again") == 1);

    // A file that is there but unparsable is treated the same way.
    writeFile(dir.file("loadavg"), "garbage\n");
    REQUIRE(h.input->collect(h.emitter).isOk());
    CHECK(ofMetric(h.last(), "load").empty());
    CHECK(ofMetric(h.last(), "uptime").size() == 1);
    CHECK(log.count("skipping load metrics") == 1);
  }

  TEST_CASE("nothing collectable: an error and no emit") {
    LogCapture log;
    TempDir dir;  // empty: no proc files at all
    Harness h;
    REQUIRE(h.make(procOptions(dir, {"cpu", "load"})).isOk());
    Status st = h.input->collect(h.emitter);
    CHECK(st.code() == StatusCode::kIoError);
    CHECK(h.emitter.batches.empty());
  }

  TEST_CASE("a refused batch returns the emitter's status; the next collect starts afresh") {
    TempDir dir;
    writeProc(dir);
    Harness h;
    REQUIRE(h.make(procOptions(dir, {"load", "uptime"})).isOk());
    h.emitter.answer = resourceExhausted("buffer full");
    CHECK(h.input->collect(h.emitter).code() == StatusCode::kResourceExhausted);
    h.emitter.answer = cancelled("stopping");
    CHECK(h.input->collect(h.emitter).code() == StatusCode::kCancelled);
    h.emitter.answer = Status::ok();
    CHECK(h.input->collect(h.emitter).isOk());
    REQUIRE(h.emitter.batches.size() == 3);
    CHECK(h.last().size() == 2);  // the dropped samples are not carried over
  }

  TEST_CASE("proc_root with a trailing slash") {
    TempDir dir;
    writeProc(dir);
    Harness h;
    Options opts;
    opts.set("proc_root", dir.path().string() + "/", {});
    opts.set("collect", std::vector<std::string>{"uptime"}, {});
    REQUIRE(h.make(opts).isOk());
    REQUIRE(h.input->collect(h.emitter).isOk());
    CHECK(field(h.last()[0], "uptime_s") == "12345");
  }

  TEST_CASE("diskio: every device but loop/ram by default, counters as read, torn lines skipped") {
    TempDir dir;
    writeProc(dir);
    Harness h;
    REQUIRE(h.make(procOptions(dir, {"diskio"})).isOk());
    REQUIRE(h.input->collect(h.emitter).isOk());
    auto recs = ofMetric(h.last(), "diskio");
    REQUIRE(recs.size() == 3);  // sda, sda1, mmcblk0
    CHECK(field(recs[0], "device") == "\"sda\"");
    CHECK(field(recs[0], "reads") == "1000");
    CHECK(field(recs[0], "writes") == "500");
    CHECK(field(recs[0], "read_bytes") == std::to_string(64000ull * 512));
    CHECK(field(recs[0], "write_bytes") == std::to_string(16000ull * 512));
    CHECK(field(recs[0], "read_time_ms") == "300");
    CHECK(field(recs[0], "write_time_ms") == "700");
    CHECK(field(recs[0], "in_progress") == "2");
    CHECK(field(recs[0], "io_time_ms") == "900");
    CHECK(field(recs[2], "device") == "\"mmcblk0\"");
    CHECK(field(recs[2], "io_time_ms") == "14");

    Harness only;
    Options opts = procOptions(dir, {"diskio"});
    opts.set("devices", std::vector<std::string>{"mmcblk0", "loop0"}, {});
    REQUIRE(only.make(opts).isOk());
    REQUIRE(only.input->collect(only.emitter).isOk());
    recs = ofMetric(only.last(), "diskio");
    REQUIRE(recs.size() == 2);
    CHECK(field(recs[0], "device") == "\"loop0\"");
    CHECK(field(recs[1], "device") == "\"mmcblk0\"");
  }

  TEST_CASE("thermal: zones in order with type and degrees; unreadable zones left out; no class is no error") {
    TempDir dir;
    writeProc(dir);
    TempDir sys;
    auto zone = [&](const std::string& name, const std::string& temp, const std::string& type) {
      std::filesystem::create_directories(sys.path() / "class/thermal" / name);
      if (!temp.empty()) writeFile(sys.file("class/thermal/" + name + "/temp"), temp);
      writeFile(sys.file("class/thermal/" + name + "/type"), type);
    };
    zone("thermal_zone10", "-5500\n", "battery\n");
    zone("thermal_zone2", "48250\n", "cpu-thermal\n");
    zone("thermal_zone3", "", "gpu\n");          // no temp file: left out
    zone("thermal_zone4", "garbage\n", "x\n");  // unparsable: left out
    std::filesystem::create_directories(sys.path() / "class/thermal/cooling_device0");
    Harness h;
    Options opts = procOptions(dir, {"thermal"});
    opts.set("sys_root", sys.path().string(), {});
    REQUIRE(h.make(opts).isOk());
    REQUIRE(h.input->collect(h.emitter).isOk());
    auto recs = ofMetric(h.last(), "thermal");
    REQUIRE(recs.size() == 2);
    CHECK(field(recs[0], "zone") == "\"thermal_zone2\"");
    CHECK(field(recs[0], "type") == "\"cpu-thermal\"");
    CHECK(field(recs[0], "temp_c") == "48.25");
    CHECK(field(recs[1], "zone") == "\"thermal_zone10\"");
    CHECK(field(recs[1], "temp_c") == "-5.50");

    // A host without /sys/class/thermal (VMs, containers): no records, not a failure.
    LogCapture log;
    Harness none;
    TempDir empty;
    Options o2 = procOptions(dir, {"thermal", "uptime"});
    o2.set("sys_root", empty.path().string(), {});
    REQUIRE(none.make(o2).isOk());
    REQUIRE(none.input->collect(none.emitter).isOk());
    CHECK(ofMetric(none.last(), "thermal").empty());
    CHECK(log.count("skipping thermal") == 0);
  }

  TEST_CASE("real /proc and statvfs(\"/\"): every group, every record a JSON object") {
    Harness h;
    Options opts;  // defaults: /proc, disks [/], all groups
    // lo is the one interface every host (and container) has.
    opts.set("interfaces", std::vector<std::string>{"lo"}, {});
    REQUIRE(h.make(opts, "real").isOk());
    h.clock.wall_ms = systemClock().wallMs();
    REQUIRE(h.input->collect(h.emitter).isOk());
    REQUIRE(h.input->collect(h.emitter).isOk());
    REQUIRE(h.emitter.batches.size() == 2);
    for (const auto& batch : h.emitter.batches) {
      for (std::string_view group : {"cpu", "memory", "disk", "network", "load", "uptime"}) {
        CAPTURE(group);
        CHECK(ofMetric(batch, group).size() == 1);
      }
      for (const std::string& r : batch) {
        CAPTURE(r);
        CHECK(looksLikeJsonObject(r));
        CHECK(r.starts_with("{\"ts\":\""));
        CHECK(field(r, "agent") == "\"real\"");
        CHECK(r.find('\n') == std::string::npos);
      }
    }
    const std::string cpu = ofMetric(h.last(), "cpu")[0];
    CHECK(std::stoull(field(cpu, "cores")) >= 1);
    const double usage = std::stod(field(cpu, "usage_pct"));
    CHECK(usage >= 0);
    CHECK(usage <= 100);
    CHECK(std::stoull(field(ofMetric(h.last(), "memory")[0], "total_bytes")) > 0);
    CHECK(std::stoull(field(ofMetric(h.last(), "disk")[0], "total_bytes")) > 0);
    CHECK(field(ofMetric(h.last(), "network")[0], "interface") == "\"lo\"");
  }
}

}  // namespace
}  // namespace ferry
