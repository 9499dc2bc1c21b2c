// The `sysmetrics` input: host metrics (CPU, memory, disks, network, load, uptime, per-device
// disk I/O counters, temperatures) sampled every `interval` from procfs, sysfs and statvfs(2).
//
// Each collect() reads the selected groups and emits ONE RecordBatch holding one record per
// group (one per mount for `disk`, one per interface for `network`). Records are JSON
// objects that start with "ts", "agent" and "metric" (see README.md for every field).
//
// Steady state allocates nothing: the batch, the file read buffer and the paths are members
// whose capacity is kept between collects; records are formatted with to_chars/snprintf
// straight into the batch arena. (Warnings and error statuses do allocate; they are rare.)
//
// Failures are per group: a proc file that cannot be read or parsed skips that group for
// this collect and is logged once until it works again; a mount whose statvfs fails is
// skipped and logged the same way. The other groups are still emitted. Only when nothing
// at all could be collected does collect() return an error.
//
// Back-pressure: a sample is a snapshot of one moment, so a batch the core does not accept
// (kResourceExhausted, kCancelled) is dropped, not held: the status is returned for the
// core to count, and the next collect() starts a fresh batch. CPU percentages always cover
// the time since the previous successful read of the stat file, emitted or not.
//
// Threading: constructed on the control thread (by the factory); interval() and collect()
// are then called only from the input's own thread. No internal locking.
// Ownership: the clock is borrowed and must outlive the input.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/clock.h"
#include "ferry/input.h"
#include "ferry/options.h"
#include "ferry/plugin.h"
#include "ferry/record.h"
#include "ferry/status.h"

namespace ferry {

// The metric groups, in the order their records appear in a batch.
enum class MetricGroup : uint8_t { kCpu = 0, kMemory, kDisk, kNetwork, kLoad, kUptime, kDiskIo, kThermal };
inline constexpr size_t kMetricGroupCount = 8;

// The config names of the groups (the `metric` field of the records), indexed by MetricGroup.
std::string_view metricGroupName(MetricGroup group);

// The options of one instance after validation and defaulting.
struct SysmetricsSettings {
  Duration interval = std::chrono::seconds(10);
  std::array<bool, kMetricGroupCount> groups = {true, true, true, true, true, true, true, true};
  std::vector<std::string> disks = {"/"};  // mount points for statvfs
  std::vector<std::string> interfaces;     // empty: every interface except lo
  std::vector<std::string> devices;        // diskio: empty = every device but loop*, ram*, zram*
  std::string proc_root = "/proc";
  std::string sys_root = "/sys";

  // Reads `opts` (validated against the descriptor's table). Unset or empty values take
  // the documented defaults, so an empty Options is valid. Errors name the key's location:
  // an interval below 100ms, an unknown `collect` name, a `disks` entry that is not an
  // absolute path.
  static Result<SysmetricsSettings> fromOptions(const Options& opts);
};

class SysmetricsInput final : public Input {
 public:
  // `instance` is the input's name in the config (used in log lines), `agent_id` goes into
  // every record. `clock` provides the records' timestamps (wallMs).
  SysmetricsInput(SysmetricsSettings settings, std::string instance, std::string_view agent_id,
                  const Clock& clock);

  Duration interval() const override { return settings_.interval; }

  // Reads every selected group and emits one batch. Returns the emitter's status when it
  // refuses the batch (the batch is dropped), kIoError when no group could be collected.
  Status collect(Emitter& emitter) override;

 private:
  // Jiffies of the aggregate "cpu" line of /proc/stat (guest time is already in user/nice).
  struct CpuTimes {
    uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  };
  struct CpuPercent {
    double usage = 0, user = 0, system = 0, iowait = 0, idle = 0;
  };

  // Each returns OK after appending its records, or the reason the group was skipped.
  Status collectCpu();
  Status collectMemory();
  Status collectNetwork();
  Status collectLoad();
  Status collectUptime();
  Status collectDiskIo();
  Status collectThermal();
  // Appends one record per mount that statvfs accepts; false when none did.
  bool collectDisks();

  // Reads the whole file at `path` into file_buf_ (capacity reused).
  Status readFile(const std::string& path);

  // Record framing: `{"ts":..,"agent":..,"metric":"<group>"` ... `}` then commitRecord().
  void beginRecord(std::string_view group);
  void endRecord();

  // Logs a group's failure once until the group works again; logs its recovery.
  void noteGroup(MetricGroup group, const Status& status);

  const SysmetricsSettings settings_;
  const std::string instance_;
  const Clock& clock_;
  std::string agent_json_;  // the agent id, already a JSON string literal with quotes

  // Paths under proc_root, built once.
  std::string stat_path_, meminfo_path_, netdev_path_, loadavg_path_, uptime_path_, diskstats_path_;
  std::string thermal_dir_;  // <sys_root>/class/thermal
  std::string path_buf_;     // a thermal zone's file path, rebuilt in place
  std::string type_buf_;     // a thermal zone's type
  std::vector<std::string> zones_;  // thermal zone directory names of this sample

  RecordBatch batch_;     // reused for every collect
  std::string file_buf_;  // contents of the file being parsed
  char ts_[32] = {};      // timestamp of the current collect, RFC 3339 UTC with ms
  size_t ts_len_ = 0;

  CpuTimes prev_cpu_;  // zero before the first read: the first sample covers the time since boot
  CpuPercent last_cpu_;
  bool have_cpu_pct_ = false;

  std::array<bool, kMetricGroupCount> group_failing_ = {};
  std::vector<char> disk_failing_;  // per entry of settings_.disks
};

// The descriptor the generated plugin table points at (plugins/CMakeLists.txt).
const PluginDescriptor& sysmetricsInputDescriptor();

}  // namespace ferry
